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

import phonenumbers

from walletcore.contacts import MAX_EMAIL_LENGTH as MAX_EMAIL_LENGTH
from walletcore.contacts import normalized_email, normalized_phone

_E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")


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
        return cls(normalized_phone(raw, field=field))

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
        return cls(normalized_email(raw, field=field))

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
