"""The messages a service sends: an SMS to an E.164 number, a plain-text e-mail.

They carry one-time codes and contacts in full, so their repr masks the destination and hides
the text: a message that ends up in a log line or a traceback shows neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from walletcore.errors import FieldViolation, InvalidArgument

_E164 = re.compile(r"\+[1-9]\d{1,14}")
_HIDDEN = "<hidden>"


def mask_phone(number: str) -> str:
    """`+8613812345678` -> `+*********5678`: enough to tell two contacts apart, no more."""
    return "+" + "*" * max(len(number) - 5, 0) + number[-4:]


def mask_email(address: str) -> str:
    """`alice@example.com` -> `a***@example.com`."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _require_text(field: str, value: str) -> list[FieldViolation]:
    return [] if value.strip() else [FieldViolation(field, "must not be empty")]


@dataclass(frozen=True, slots=True, repr=False)
class SmsMessage:
    to: str
    """E.164, e.g. `+8613812345678`."""
    text: str

    def __post_init__(self) -> None:
        violations = _require_text("text", self.text)
        if not _E164.fullmatch(self.to):
            violations.append(FieldViolation("to", "must be a phone number in E.164 format"))
        if violations:
            raise InvalidArgument(violations)

    def __repr__(self) -> str:
        return f"SmsMessage(to={mask_phone(self.to)!r}, text={_HIDDEN})"


@dataclass(frozen=True, slots=True, repr=False)
class EmailMessage:
    to: str
    subject: str
    text: str
    """The plain-text body."""

    def __post_init__(self) -> None:
        violations = _require_text("subject", self.subject) + _require_text("text", self.text)
        if "\r" in self.subject or "\n" in self.subject:
            violations.append(FieldViolation("subject", "must be a single line"))
        try:
            # Shape only: auth decides which addresses are verified contacts. The test
            # environment flag also admits the reserved .test domain development mails to.
            validate_email(self.to, check_deliverability=False, test_environment=True)
        except EmailNotValidError:
            # The validator's message quotes the address; say only what is wrong with it.
            violations.append(FieldViolation("to", "must be an e-mail address"))
        if violations:
            raise InvalidArgument(violations)

    def __repr__(self) -> str:
        return f"EmailMessage(to={mask_email(self.to)!r}, subject={_HIDDEN}, text={_HIDDEN})"
