"""Normalising a phone number or email address the one way every service compares them.

Auth stores verified contacts and writes a new contact into a CHANGE_PHONE / CHANGE_EMAIL
grant's object in this form; binding reads the same contact from its own request and must
arrive at the identical string, or the grant would not match. So the rules live here once:

- a phone: international notation with a leading "+" (spaces, dashes and brackets allowed),
  a valid, mobile-capable number, returned in E.164 ("+8613800138000");
- an email: syntax checked (not deliverability), returned as the local part as written, "@",
  and the domain in lower-case IDNA (ASCII).

Both raise InvalidArgument on the request field given, never echoing the input.
"""

from __future__ import annotations

import re
from typing import Final

import email_validator
import phonenumbers

from walletcore.errors import InvalidArgument

MAX_EMAIL_LENGTH: Final = 254
# Longer than any phone number however it is spaced; keeps the parser's work bounded.
_MAX_RAW_PHONE_LENGTH: Final = 64
# "+", digits and the usual visual separators only: the parser would otherwise turn
# letters into keypad digits ("+86138abcd8000" became "+8613822238000").
_PHONE_SPELLING: Final = re.compile(r"\+[0-9 ()\-]+")
_MOBILE_CAPABLE: Final = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


def normalized_phone(raw: str, *, field: str = "phone") -> str:
    """The E.164 form of a valid, mobile-capable number written internationally."""
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
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalized_email(raw: str, *, field: str = "email") -> str:
    """The address with its domain in lower-case IDNA form and its local part as written."""
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
    return address
