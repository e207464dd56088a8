"""GB 11643-1999 resident identity numbers: examples, each rule, and generated numbers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.kyc.domain.documents import ADULT_AGE, age_on
from services.kyc.domain.reasons import Reason
from services.kyc.domain.resident_id import PROVINCES, ResidentIdNumber
from walletcore.errors import InvalidArgument

TODAY = date(2026, 12, 3)
PUBLISHED_EXAMPLES = ("11010519491231002X", "440524188001010014")
"""The two numbers GB 11643-1999 itself gives as examples."""


def reference_check(first_17: str) -> str:
    """ISO 7064 MOD 11-2 as the standard writes it, independent of the module's tables:
    the check value c satisfies (sum of a_i * 2^(i-1) for i = 18..2, plus c) = 1 mod 11."""
    total = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(first_17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def reference_valid(number: str, today: date = TODAY) -> bool:
    """An independent oracle for generated numbers."""
    number = number.upper()
    if len(number) != 18 or not number[:17].isdigit() or not number.isascii():
        return False
    if number[:2] not in PROVINCES or number[2:6] == "0000":
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return born <= today and reference_check(number[:17]) == number[17]


def reason_of(number: str, today: date = TODAY) -> str:
    with pytest.raises(InvalidArgument) as refused:
        ResidentIdNumber.parse(number, today=today)
    assert [v.field for v in refused.value.violations] == ["document.number"]
    return refused.value.reason


@pytest.mark.parametrize("number", PUBLISHED_EXAMPLES)
def test_the_standards_examples_pass(number: str) -> None:
    assert ResidentIdNumber.parse(number, today=TODAY).value == number


def test_the_birth_date_is_read_from_the_number() -> None:
    assert ResidentIdNumber.parse("11010519491231002X", today=TODAY).birth_date == date(
        1949, 12, 31
    )


def test_a_lower_case_x_is_read_as_upper_case() -> None:
    assert ResidentIdNumber.parse("11010519491231002x", today=TODAY).value == "11010519491231002X"


def test_spaces_are_ignored() -> None:
    assert ResidentIdNumber.parse(" 110105 19491231 002X ", today=TODAY).value == (
        "11010519491231002X"
    )


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002",  # 17 characters
        "11010519491231002XX",  # 19
        "1101051949123100AX",  # a letter in the body
        "11010519491231002Y",  # not a check character
        "".join(chr(ord(c) + 0xFEE0) for c in "11010519491231002X"),  # full-width
    ],
)
def test_malformed_numbers_are_refused(number: str) -> None:
    assert reason_of(number) == Reason.DOCUMENT_NUMBER_INVALID


def with_check(first_17: str) -> str:
    return first_17 + reference_check(first_17)


def test_an_unknown_province_is_refused() -> None:
    assert reason_of(with_check("99010519491231002")) == Reason.DOCUMENT_NUMBER_INVALID
    assert reason_of(with_check("81000019491231002")) == Reason.DOCUMENT_NUMBER_INVALID


def test_a_province_level_code_alone_is_refused() -> None:
    assert reason_of(with_check("11000019491231002")) == Reason.DOCUMENT_NUMBER_INVALID


@pytest.mark.parametrize("birth", ["19490230", "19491301", "19490000", "20230229"])
def test_impossible_birth_dates_are_refused(birth: str) -> None:
    assert reason_of(with_check(f"110105{birth}002")) == Reason.DOCUMENT_NUMBER_INVALID


def test_a_birth_date_in_the_future_is_refused() -> None:
    tomorrow = (TODAY + timedelta(days=1)).strftime("%Y%m%d")
    assert reason_of(with_check(f"110105{tomorrow}002")) == Reason.DOCUMENT_NUMBER_INVALID


def test_a_wrong_check_character_is_refused() -> None:
    assert reason_of("110105194912310021") == Reason.DOCUMENT_NUMBER_INVALID


def test_the_error_never_repeats_the_number() -> None:
    number = "110105194912310021"
    with pytest.raises(InvalidArgument) as refused:
        ResidentIdNumber.parse(number, today=TODAY)
    text = refused.value.message + "".join(v.description for v in refused.value.violations)
    assert "1101051949" not in text
    assert "1101051949" not in repr(ResidentIdNumber.parse("11010519491231002X", today=TODAY))


# -- generated numbers -------------------------------------------------------------------------

regions = st.builds(
    lambda province, rest: province + rest,
    st.sampled_from(sorted(PROVINCES)),
    st.from_regex(r"[0-9]{4}", fullmatch=True).filter(lambda rest: rest != "0000"),
)
adult_birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=TODAY).filter(
    lambda born: age_on(born, TODAY) >= ADULT_AGE
)
sequences = st.from_regex(r"[0-9]{3}", fullmatch=True)


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    first_17 = draw(regions) + draw(adult_birth_dates).strftime("%Y%m%d") + draw(sequences)
    return with_check(first_17)


@given(valid_numbers())
def test_every_well_formed_number_of_an_adult_passes(number: str) -> None:
    parsed = ResidentIdNumber.parse(number, today=TODAY)
    assert parsed.value == number
    assert age_on(parsed.birth_date, TODAY) >= ADULT_AGE


@given(valid_numbers(), st.integers(min_value=0, max_value=17), st.sampled_from("0123456789Xx"))
def test_changing_one_character_is_refused_unless_still_valid(
    number: str, position: int, replacement: str
) -> None:
    changed = number[:position] + replacement + number[position + 1 :]
    if reference_valid(changed):
        # Only x for X at the end, or the same character put back, can get here: MOD 11-2
        # detects every single substitution.
        assert ResidentIdNumber.parse(changed, today=TODAY).value == changed.upper()
        assert changed.upper() == number
    else:
        with pytest.raises(InvalidArgument):
            ResidentIdNumber.parse(changed, today=TODAY)


def test_a_retired_county_code_is_still_accepted() -> None:
    # 110103 was Beijing's Chongwen district until 2010; its holders keep the code for life.
    number = with_check("11010319800101001")
    assert ResidentIdNumber.parse(number, today=TODAY).birth_date == date(1980, 1, 1)
