"""Contacts are parsed strictly, normalised for comparison, and only ever shown masked."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.auth.domain.contacts import ContactKind, Email, Phone, parse_contact
from walletcore.errors import InvalidArgument

T = TypeVar("T")


@pytest.mark.parametrize(
    "raw", ["+8613800138000", "+86 138 0013 8000", "+86-138-0013-8000", " +86 (138) 0013 8000 "]
)
def test_phone_spellings_normalise_to_e164(raw: str) -> None:
    assert Phone.parse(raw).e164 == "+8613800138000"


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",  # no country code
        "+86138",  # too short
        "+999123456789",  # no such country
        "+86 10 6552 9988",  # a Beijing landline cannot receive SMS
        "phone",
        "",
        "+" + "1" * 100,
        "+86138abcd8000",  # letters are not keypad digits here
        "+8613800138000\x00",
        "+86\u00a0138\u00a000138000",
    ],
)
def test_phone_rejects_what_cannot_receive_codes_without_echoing_it(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Phone.parse(raw, field="contact.phone")
    (violation,) = caught.value.violations
    assert violation.field == "contact.phone"
    if raw:
        assert raw not in violation.description
        assert raw not in caught.value.message


def test_phone_mask_shows_country_code_and_last_four_only() -> None:
    assert Phone.parse("+8613800138000").masked() == "+86 *** **** 8000"
    assert Phone.parse("+1 650 253 0000").masked() == "+1 *** **** 0000"


def test_phone_exposes_national_number() -> None:
    assert Phone.parse("+8613800138000").national_number == "13800138000"


def test_phone_refuses_unnormalised_construction() -> None:
    with pytest.raises(ValueError, match=r"Phone\.parse"):
        Phone("8613800138000")


def test_email_domain_is_lower_cased_and_local_part_kept() -> None:
    assert Email.parse("Alice.Smith@Example.COM").address == "Alice.Smith@example.com"


def test_email_international_domain_is_stored_as_idna() -> None:
    assert Email.parse("li@例え.jp").address == "li@xn--r8jz45g.jp"


def test_email_case_variants_share_a_lookup_key() -> None:
    assert Email.parse("Bob@example.com").lookup_key == Email.parse("bob@EXAMPLE.com").lookup_key


@pytest.mark.parametrize(
    "raw", ["bob", "bob@", "@example.com", "a..b@example.com", "bob@localhost", "x" * 250 + "@a.io"]
)
def test_email_rejects_malformed_addresses(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Email.parse(raw)
    assert [v.field for v in caught.value.violations] == ["email"]


def test_email_mask_keeps_first_character_and_domain() -> None:
    assert Email.parse("alice@example.com").masked() == "a***@example.com"


def test_email_refuses_unnormalised_construction() -> None:
    with pytest.raises(ValueError, match=r"Email\.parse"):
        Email("alice@EXAMPLE.com")


def test_parse_contact_dispatches_on_kind() -> None:
    assert parse_contact(ContactKind.PHONE, "+8613800138000", field="p").kind is ContactKind.PHONE
    assert parse_contact(ContactKind.EMAIL, "a@example.com", field="e").kind is ContactKind.EMAIL


def parsed_or_refusal(parse: Callable[[str], T], raw: str) -> T | InvalidArgument:
    try:
        return parse(raw)
    except InvalidArgument as refusal:
        return refusal


@given(st.text(max_size=80))
def test_any_text_is_a_phone_or_an_invalid_argument(raw: str) -> None:
    result = parsed_or_refusal(Phone.parse, raw)
    if isinstance(result, InvalidArgument):
        assert [v.field for v in result.violations] == ["phone"]
    else:
        assert Phone.parse(result.e164) == result


@given(st.one_of(st.text(max_size=80), st.emails()))
def test_any_text_is_an_email_or_an_invalid_argument(raw: str) -> None:
    result = parsed_or_refusal(Email.parse, raw)
    if isinstance(result, InvalidArgument):
        assert [v.field for v in result.violations] == ["email"]
    else:
        assert Email.parse(result.address) == result
