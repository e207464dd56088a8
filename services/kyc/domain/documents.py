"""Identity documents: the number's format per type, the issuing country, expiry, the holder's
date of birth and age.

The mainland resident ID is checked fully (services.kyc.domain.resident_id) and gives the birth
date; other types get the format checks they have (kyc_service.proto): a passport 5 to 20
letters and digits, a national identity card or driving licence 4 to 30 letters, digits and
dashes. Spaces are ignored and letters are upper-cased, so one document has one canonical
number (which is what its blind index is computed from).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date
from typing import Final

from services.kyc.domain.reasons import Reason, invalid, underage
from services.kyc.domain.resident_id import ResidentIdNumber

ADULT_AGE: Final = 18
CN: Final = "CN"
_COUNTRY = re.compile(r"[A-Z]{2}")
_FORMATS: Final = {
    "PASSPORT": re.compile(r"[A-Z0-9]{5,20}"),
    "NATIONAL_ID": re.compile(r"[A-Z0-9-]{4,30}"),
    "DRIVING_LICENCE": re.compile(r"[A-Z0-9-]{4,30}"),
}


class DocumentType(enum.StrEnum):
    CN_RESIDENT_ID = "CN_RESIDENT_ID"
    PASSPORT = "PASSPORT"
    NATIONAL_ID = "NATIONAL_ID"
    DRIVING_LICENCE = "DRIVING_LICENCE"

    @property
    def needs_back_image(self) -> bool:
        return self is not DocumentType.PASSPORT


def age_on(born: date, today: date) -> int:
    """Completed years (someone born on 29 February comes of age on 1 March)."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass(frozen=True, slots=True)
class IdentityDocument:
    """A checked document and its holder's birth date. Personal data: the repr shows only the
    type and country."""

    type: DocumentType
    number: str
    issuing_country: str
    expiry_date: date | None
    date_of_birth: date

    def __repr__(self) -> str:
        return f"IdentityDocument({self.type.value}, {self.issuing_country})"

    @property
    def index_value(self) -> str:
        """What the blind index is computed from: the same document of the same country
        gives the same value, whoever submits it."""
        return f"{self.type.value}:{self.issuing_country}:{self.number}"

    @classmethod
    def parse(
        cls,
        *,
        document_type: DocumentType,
        number: str,
        issuing_country: str,
        expiry_date: date | None,
        date_of_birth: date | None,
        today: date,
    ) -> IdentityDocument:
        """Raises InvalidArgument (DOCUMENT_NUMBER_INVALID, COUNTRY_INVALID, DOCUMENT_EXPIRED,
        DATE_OF_BIRTH_INVALID) on the field at fault; the holder's age is `require_adult`'s."""
        country = issuing_country.strip()
        if not _COUNTRY.fullmatch(country):
            raise invalid(
                "document.issuing_country",
                "must be an ISO 3166-1 alpha-2 code in upper case",
                Reason.COUNTRY_INVALID,
            )
        if expiry_date is not None and expiry_date < today:
            raise invalid("document.expiry_date", "has passed", Reason.DOCUMENT_EXPIRED)
        if date_of_birth is not None and date_of_birth > today:
            raise invalid(
                "date_of_birth", "must not be in the future", Reason.DATE_OF_BIRTH_INVALID
            )
        if document_type is DocumentType.CN_RESIDENT_ID:
            if country != CN:
                raise invalid(
                    "document.issuing_country",
                    "must be CN for a mainland resident identity card",
                    Reason.COUNTRY_INVALID,
                )
            resident = ResidentIdNumber.parse(number, today=today)
            if date_of_birth is not None and date_of_birth != resident.birth_date:
                raise invalid(
                    "date_of_birth",
                    "differs from the birth date in the document number",
                    Reason.DATE_OF_BIRTH_INVALID,
                )
            return cls(document_type, resident.value, country, expiry_date, resident.birth_date)
        canonical = "".join(number.split()).upper()
        if not canonical.isascii() or not _FORMATS[document_type.value].fullmatch(canonical):
            raise invalid(
                "document.number",
                "does not have this document type's format",
                Reason.DOCUMENT_NUMBER_INVALID,
            )
        if date_of_birth is None:
            raise invalid(
                "date_of_birth",
                "is required for this document type",
                Reason.DATE_OF_BIRTH_INVALID,
            )
        return cls(document_type, canonical, country, expiry_date, date_of_birth)

    def require_adult(self, today: date) -> None:
        """FAILED_PRECONDITION / UNDERAGE below 18 on `today`."""
        if age_on(self.date_of_birth, today) < ADULT_AGE:
            raise underage()
