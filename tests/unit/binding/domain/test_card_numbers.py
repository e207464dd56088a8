"""Card numbers as users type them: normalisation, brands by IIN, lengths, Luhn and the
UnionPay exception; nothing about a refused number leaks into the error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.binding.domain.cards import CardBrand, CardNumber, brand_of, luhn_valid
from tests.support.profiles import examples
from walletcore.errors import InvalidArgument

pytestmark = pytest.mark.fuzz

# Public test numbers the networks and acquirers publish for integration testing.
PUBLIC_TEST_CARDS = {
    "4242424242424242": CardBrand.VISA,
    "4111111111111111": CardBrand.VISA,
    "4222222222222": CardBrand.VISA,
    "5555555555554444": CardBrand.MASTERCARD,
    "2223003122003222": CardBrand.MASTERCARD,
    "378282246310005": CardBrand.AMERICAN_EXPRESS,
    "371449635398431": CardBrand.AMERICAN_EXPRESS,
    "3530111333300000": CardBrand.JCB,
    "3566002020360505": CardBrand.JCB,
    "6200000000000005": CardBrand.UNIONPAY,
    "6205500000000000004": CardBrand.UNIONPAY,
}


def reason_of(raw: str) -> str:
    with pytest.raises(InvalidArgument) as caught:
        CardNumber.parse(raw)
    error = caught.value
    assert [violation.field for violation in error.violations] == ["card_number"]
    return error.reason


@pytest.mark.parametrize(("number", "brand"), PUBLIC_TEST_CARDS.items())
def test_public_test_cards_are_accepted_with_their_brand(number: str, brand: CardBrand) -> None:
    parsed = CardNumber.parse(number)

    assert (parsed.brand, parsed.digits, parsed.last4) == (brand, number, number[-4:])
    assert parsed.check_digit_valid


@pytest.mark.parametrize(
    "raw", ["4242 4242 4242 4242", "4242-4242-4242-4242", " 4242424242424242 "]
)
def test_spaces_and_dashes_are_ignored(raw: str) -> None:
    assert CardNumber.parse(raw).digits == "4242424242424242"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "4242.4242.4242.4242",
        "4242424242424242\x00",
        "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢",  # Arabic-Indic digits are digits to str.isdigit, not to a card
        "42424242424",  # 11 digits
        "42424242424242424242",  # 20 digits
        "4" * 70,
    ],
)
def test_malformed_numbers_are_invalid(raw: str) -> None:
    assert reason_of(raw) == "CARD_NUMBER_INVALID"


@pytest.mark.parametrize(
    "number",
    [
        "4242424242424241",  # the last digit changed
        "4242424242424252",  # one digit in the middle changed
        "5555555555554445",
        "378282246310006",
        "3530111333300001",
    ],
)
def test_a_one_digit_change_of_a_real_number_is_refused_by_luhn(number: str) -> None:
    assert reason_of(number) == "CARD_NUMBER_INVALID"


@pytest.mark.parametrize(
    "number",
    [
        "6011111111111117",  # Discover
        "36227206271667",  # Diners Club
        "3056930009020004",  # Diners Club
        "5018000000000009",  # Maestro
        "1234567812345670",
        "9999999999999995",
    ],
)
def test_numbers_of_other_brands_are_unsupported(number: str) -> None:
    assert luhn_valid(number)
    assert reason_of(number) == "CARD_BRAND_UNSUPPORTED"


@pytest.mark.parametrize(
    "number",
    [
        "424242424242",  # Visa with 12 digits
        "55555555555544448",  # Mastercard with 17
        "3782822463100053",  # American Express with 16
        "353011133330004",  # JCB with 15
    ],
)
def test_a_brand_with_the_wrong_length_is_invalid(number: str) -> None:
    assert reason_of(number) == "CARD_NUMBER_INVALID"


def test_mastercard_2_series_bounds() -> None:
    assert brand_of("2221000000000009") is CardBrand.MASTERCARD
    assert brand_of("2720990000000007") is CardBrand.MASTERCARD
    assert brand_of("2220990000000000") is None
    assert brand_of("2721000000000000") is None


def test_jcb_bounds() -> None:
    assert brand_of("3528000000000007") is CardBrand.JCB
    assert brand_of("3589000000000003") is CardBrand.JCB
    assert brand_of("3527000000000000") is None
    assert brand_of("3590000000000000") is None


def test_a_unionpay_number_failing_luhn_is_accepted_and_says_so() -> None:
    number = "6200000000000006"
    assert not luhn_valid(number)

    parsed = CardNumber.parse(number)

    assert parsed.brand is CardBrand.UNIONPAY
    assert not parsed.check_digit_valid


def with_check_digit(body: str) -> str:
    return next(body + check for check in "0123456789" if luhn_valid(body + check))


def off_by_one(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


@pytest.mark.parametrize("body", ["622126000000000", "622925999999999", "622500000000000000"])
def test_a_discover_cobadged_unionpay_number_must_pass_luhn(body: str) -> None:
    valid = with_check_digit(body)

    assert CardNumber.parse(valid).brand is CardBrand.UNIONPAY
    assert reason_of(off_by_one(valid)) == "CARD_NUMBER_INVALID"


@pytest.mark.parametrize("body", ["622125999999999", "622926000000000", "620550000000000000"])
def test_outside_the_cobadged_range_unionpay_may_fail_luhn(body: str) -> None:
    assert not CardNumber.parse(off_by_one(with_check_digit(body))).check_digit_valid


def test_the_number_never_shows_in_its_repr_or_str() -> None:
    parsed = CardNumber.parse("4242 4242 4242 4242")

    for text in (repr(parsed), str(parsed), f"{parsed}"):
        assert "42424242" not in text
        assert "4242" in text  # the last 4, as the user sees them


@settings(max_examples=examples(200))
@given(digits=st.text(alphabet="0123456789", min_size=11, max_size=18))
def test_appending_the_luhn_digit_passes_and_any_other_digit_fails(digits: str) -> None:
    passing = [check for check in "0123456789" if luhn_valid(digits + check)]

    assert len(passing) == 1


@settings(max_examples=examples(200))
@given(raw=st.text(max_size=40))
def test_refusals_never_echo_the_input(raw: str) -> None:
    try:
        CardNumber.parse(raw)
    except InvalidArgument as error:
        digits = "".join(char for char in raw if char.isdigit())
        texts = [error.message, *(violation.description for violation in error.violations)]
        if len(digits) >= 4:
            assert all(digits not in text for text in texts)
