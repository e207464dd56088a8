"""Phone numbers and email addresses: parsing, normalisation and masking.

Full contacts are personal data: they go to the outbox (to deliver codes and notices) and to
the database, never to logs, error messages or other users. Everything shown back to people
uses `masked()`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final

import email_validator
import phonenumbers

from walletcore.errors import InvalidArgument

MAX_EMAIL_LENGTH: Final = 254
# Longer than any phone number however it is spaced; keeps the parser's work bounded.
_MAX_RAW_PHONE_LENGTH: Final = 64
_E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")
# "+", digits and the usual visual separators only: the parser would otherwise turn
# letters into keypad digits ("+86138abcd8000" became "+8613822238000").
_PHONE_SPELLING: Final = re.compile(r"\+[0-9 ()\-]+")
_MOBILE_CAPABLE: Final = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


class ContactKind(enum.StrEnum):
    PHONE = "phone"
    EMAIL = "email"


@dataclass(frozen=True, slots=True)
class Phone:
    """A mobile-capable phone number in E.164 form, e.g. "+8613800138000"."""

    kind: ClassVar[ContactKind] = ContactKind.PHONE
    e164: str

    def __post_init__(self) -> None:
        # Only the shape: numbering plans change, and a number stored under an older plan
        # must still load. `parse` does the full check for new input.
        if not _E164.fullmatch(self.e164):
            raise ValueError("a Phone holds an E.164 number; use Phone.parse for input")

    @classmethod
    def parse(cls, raw: str, *, field: str = "phone") -> Phone:
        """Accepts international notation with a leading "+" (spaces, dashes and brackets
        allowed); raises InvalidArgument on `field` for anything that is not a valid,
        mobile-capable number."""
        invalid = InvalidArgument.field(
            field, "must be a valid mobile number in international format, starting with +"
        )
        if len(raw) > _MAX_RAW_PHONE_LENGTH or not _PHONE_SPELLING.fullmatch(raw.strip()):
            raise invalid
        try:
            number = phonenumbers.parse(raw, None)
        except phonenumbers.NumberParseException:
            raise invalid from None
        if (
            not phonenumbers.is_valid_number(number)
            or phonenumbers.number_type(number) not in _MOBILE_CAPABLE
        ):
            raise invalid
        return cls(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))

    @property
    def value(self) -> str:
        return self.e164

    @property
    def national_number(self) -> str:
        """The digits after the country code, e.g. "13800138000"."""
        return phonenumbers.national_significant_number(phonenumbers.parse(self.e164, None))

    def masked(self) -> str:
        """Country code and last four digits, e.g. "+86 *** **** 1234". The mask has a fixed
        shape so it does not reveal the number's length either."""
        country_code = phonenumbers.parse(self.e164, None).country_code
        return f"+{country_code} *** **** {self.e164[-4:]}"


@dataclass(frozen=True, slots=True)
class Email:
    """An email address with its domain in lower-case IDNA (ASCII) form and its local part as
    written, e.g. "Alice@example.com"."""

    kind: ClassVar[ContactKind] = ContactKind.EMAIL
    address: str

    def __post_init__(self) -> None:
        local_part, at, domain = self.address.rpartition("@")
        if not (at and local_part and domain) or domain != domain.lower():
            raise ValueError("an Email holds a normalised address; use Email.parse for input")

    @classmethod
    def parse(cls, raw: str, *, field: str = "email") -> Email:
        """Raises InvalidArgument on `field` for a malformed address. Deliverability (DNS) is
        not checked: the verification code proves the address works."""
        invalid = InvalidArgument.field(field, "must be a valid email address")
        if len(raw) > MAX_EMAIL_LENGTH:
            raise invalid
        try:
            checked = email_validator.validate_email(raw, check_deliverability=False)
        except email_validator.EmailNotValidError:
            raise invalid from None
        address = f"{checked.local_part}@{checked.ascii_domain}"
        if len(address) > MAX_EMAIL_LENGTH:
            raise invalid
        return cls(address)

    @property
    def value(self) -> str:
        return self.address

    @property
    def lookup_key(self) -> str:
        """The address case-folded: what "one email belongs to one account" compares, since
        mail providers treat local parts case-insensitively in practice."""
        return self.address.casefold()

    def masked(self) -> str:
        """First character of the local part and the domain, e.g. "a***@example.com"."""
        local_part, _, domain = self.address.rpartition("@")
        return f"{local_part[0]}***@{domain}"


Contact = Phone | Email


def parse_contact(kind: ContactKind, raw: str, *, field: str) -> Contact:
    if kind is ContactKind.PHONE:
        return Phone.parse(raw, field=field)
    return Email.parse(raw, field=field)


@dataclass(frozen=True, slots=True)
class VerifiedContact:
    """A contact the account holder proved they receive codes at."""

    id: str
    value: Contact
    verified_at: datetime

    @property
    def kind(self) -> ContactKind:
        return self.value.kind
