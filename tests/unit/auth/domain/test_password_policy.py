"""The password policy: NFKC, 8 to 128 code points, no composition rules, no common passwords,
and not the account's own contact."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.auth.domain.contacts import Contact, Email, Phone
from services.auth.domain.passwords import PasswordPolicy, common_passwords
from walletcore.errors import InvalidArgument

POLICY = PasswordPolicy.default()
PHONE = Phone.parse("+8613800138000")
EMAIL = Email.parse("alice.smith@example.com")


def rejection(password: str, *, contacts: tuple[Contact, ...] = (), field: str = "password") -> str:
    with pytest.raises(InvalidArgument) as caught:
        POLICY.check(password, contacts=contacts, field=field)
    assert caught.value.reason == "PASSWORD_REJECTED"
    (violation,) = caught.value.violations
    return f"{violation.field}: {violation.description}"


@pytest.mark.parametrize(
    "password",
    ["tqzmwplx", "correct horse battery staple", "Zq9-wmR!", "密码安全性很重要吗", "x" * 128],
)
def test_any_uncommon_password_of_8_to_128_characters_passes(password: str) -> None:
    assert POLICY.check(password) == password


def test_length_is_counted_after_nfkc_normalisation() -> None:
    # Seven code points; the ligature "ﬁ" normalises to "fi", making eight.
    assert POLICY.check("Zq9ﬁwmR") == "Zq9fiwmR"
    # 128 decomposed characters compose into 64.
    decomposed = "e\u0301" * 64
    assert POLICY.check(decomposed) == unicodedata.normalize("NFKC", decomposed)


def test_too_short_and_too_long_are_rejected_on_the_named_field() -> None:
    assert rejection("Zq9wmR!", field="new_password").startswith("new_password: must be at least 8")
    assert "at most 128" in rejection("x" * 129)
    assert "at most 128" in rejection("x" * 100_000)


@pytest.mark.parametrize(
    "password", ["password1", "Password1", "PASSWORD", "iloveyou", "qwertyuiop", "jennifer"]
)
def test_common_passwords_are_rejected_whatever_their_case(password: str) -> None:
    assert "too common" in rejection(password)


def test_the_refused_list_holds_the_ten_thousand_most_common_passwords() -> None:
    refused = common_passwords()
    assert len(refused) >= 10_000
    assert {"123456789", "football", "sunshine", "princess"} <= refused


@pytest.mark.parametrize(
    "password",
    ["+8613800138000", "8613800138000", "13800138000", "Alice.Smith@example.com", "alice.smith"],
)
def test_own_contact_is_rejected_as_password(password: str) -> None:
    assert "phone number or email" in rejection(password, contacts=(PHONE, EMAIL))


def test_unencodable_text_is_rejected() -> None:
    assert "valid Unicode" in rejection("abcdefgh\ud800")


def checked_or_refusal(password: str) -> str | InvalidArgument:
    try:
        return POLICY.check(password)
    except InvalidArgument as refusal:
        return refusal


# Surrogates included: Python callers can pass them even though protobuf cannot.
@given(st.text(st.characters(exclude_categories=()), max_size=200))
def test_any_text_passes_or_is_rejected_on_the_password_field(password: str) -> None:
    result = checked_or_refusal(password)
    if isinstance(result, InvalidArgument):
        assert result.reason == "PASSWORD_REJECTED"
        assert [v.field for v in result.violations] == ["password"]
    else:
        normalized = result
        assert 8 <= len(normalized) <= 128
        assert normalized == unicodedata.normalize("NFKC", password)
        assert normalized.casefold() not in common_passwords()
