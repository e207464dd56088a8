"""Document checks per type, expiry, birth date and the holder's age."""

from __future__ import annotations

from datetime import date

import pytest

from services.kyc.domain.documents import DocumentType, IdentityDocument, age_on
from services.kyc.domain.reasons import Reason
from walletcore.errors import FailedPrecondition, InvalidArgument

TODAY = date(2026, 12, 3)


def parse(**overrides: object) -> IdentityDocument:
    values: dict[str, object] = {
        "document_type": DocumentType.CN_RESIDENT_ID,
        "number": "11010519491231002X",
        "issuing_country": "CN",
        "expiry_date": None,
        "date_of_birth": None,
        "today": TODAY,
    }
    values.update(overrides)
    return IdentityDocument.parse(**values)  # type: ignore[arg-type]


def refusal(**overrides: object) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as refused:
        parse(**overrides)
    return refused.value


def test_a_resident_id_gives_its_birth_date() -> None:
    assert parse().date_of_birth == date(1949, 12, 31)


def test_a_resident_id_needs_china_as_country() -> None:
    assert refusal(issuing_country="HK").reason == Reason.COUNTRY_INVALID


def test_a_given_birth_date_must_agree_with_the_number() -> None:
    error = refusal(date_of_birth=date(1950, 1, 1))
    assert error.reason == Reason.DATE_OF_BIRTH_INVALID
    assert parse(date_of_birth=date(1949, 12, 31)).date_of_birth == date(1949, 12, 31)


@pytest.mark.parametrize(
    ("document_type", "number", "canonical"),
    [
        (DocumentType.PASSPORT, "e1234 5678", "E12345678"),
        (DocumentType.NATIONAL_ID, "ab-1234", "AB-1234"),
        (DocumentType.DRIVING_LICENCE, "DL 9876-54", "DL9876-54"),
    ],
)
def test_other_types_get_their_format_check(
    document_type: DocumentType, number: str, canonical: str
) -> None:
    document = parse(
        document_type=document_type,
        number=number,
        issuing_country="DE",
        date_of_birth=date(1990, 5, 17),
    )
    assert document.number == canonical


@pytest.mark.parametrize(
    ("document_type", "number"),
    [
        (DocumentType.PASSPORT, "AB12"),  # too short
        (DocumentType.PASSPORT, "AB-12345"),  # no dashes in a passport number
        (DocumentType.PASSPORT, "A" * 21),
        (DocumentType.NATIONAL_ID, "A" * 31),
        (DocumentType.DRIVING_LICENCE, "AB_123"),
        (DocumentType.NATIONAL_ID, "ÄB1234"),
    ],
)
def test_a_malformed_number_is_refused(document_type: DocumentType, number: str) -> None:
    error = refusal(
        document_type=document_type,
        number=number,
        issuing_country="DE",
        date_of_birth=date(1990, 5, 17),
    )
    assert error.reason == Reason.DOCUMENT_NUMBER_INVALID


def test_other_types_need_a_birth_date() -> None:
    error = refusal(document_type=DocumentType.PASSPORT, number="E12345678", issuing_country="DE")
    assert error.reason == Reason.DATE_OF_BIRTH_INVALID


@pytest.mark.parametrize("country", ["de", "DEU", "", "D1"])
def test_the_country_is_two_upper_case_letters(country: str) -> None:
    error = refusal(
        document_type=DocumentType.PASSPORT,
        number="E12345678",
        issuing_country=country,
        date_of_birth=date(1990, 5, 17),
    )
    assert error.reason == Reason.COUNTRY_INVALID


def test_an_expired_document_is_refused() -> None:
    assert refusal(expiry_date=date(2026, 12, 2)).reason == Reason.DOCUMENT_EXPIRED
    assert parse(expiry_date=TODAY).expiry_date == TODAY


def test_a_holder_comes_of_age_on_the_18th_birthday() -> None:
    document = parse(
        document_type=DocumentType.PASSPORT,
        number="E12345678",
        issuing_country="DE",
        date_of_birth=date(2008, 12, 3),
    )
    document.require_adult(TODAY)
    with pytest.raises(FailedPrecondition) as refused:
        document.require_adult(date(2026, 12, 2))
    assert refused.value.reason == Reason.UNDERAGE


def test_a_leap_day_birthday_comes_of_age_on_the_first_of_march() -> None:
    assert age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert age_on(date(2008, 2, 29), date(2026, 3, 1)) == 18


def test_the_repr_holds_no_number() -> None:
    assert "1101" not in repr(parse())
