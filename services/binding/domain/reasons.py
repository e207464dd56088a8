"""The stable ErrorInfo reasons binding raises, as wallet/binding/v1/*.proto list them, and
constructors for the errors that several modules raise alike. Messages never carry a card
number, a contact or any other personal data."""

from __future__ import annotations

import enum

from walletcore.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound


class Reason(enum.StrEnum):
    CARD_NUMBER_INVALID = "CARD_NUMBER_INVALID"
    CARD_BRAND_UNSUPPORTED = "CARD_BRAND_UNSUPPORTED"
    CARD_EXPIRED = "CARD_EXPIRED"
    KYC_NOT_APPROVED = "KYC_NOT_APPROVED"
    HOLDER_NAME_MISMATCH = "HOLDER_NAME_MISMATCH"
    CARD_ALREADY_BOUND = "CARD_ALREADY_BOUND"
    CARD_NOT_FOUND = "CARD_NOT_FOUND"
    CARD_NOT_ACTIVE = "CARD_NOT_ACTIVE"
    REFUND_IN_FLIGHT = "REFUND_IN_FLIGHT"
    INSTRUMENT_NOT_FOUND = "INSTRUMENT_NOT_FOUND"
    INSTRUMENT_UNAVAILABLE = "INSTRUMENT_UNAVAILABLE"
    CONTACT_IN_USE = "CONTACT_IN_USE"
    CONTACT_UNCHANGED = "CONTACT_UNCHANGED"
    CODE_INVALID = "CODE_INVALID"
    CODE_EXPIRED = "CODE_EXPIRED"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    CHANGE_NOT_FOUND = "CHANGE_NOT_FOUND"
    ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"


def card_not_found() -> NotFound:
    return NotFound("the account has no card with this id", reason=Reason.CARD_NOT_FOUND)


def card_already_bound() -> AlreadyExists:
    # The same words whichever account holds it: the caller learns nothing about the holder.
    return AlreadyExists("this card is already bound", reason=Reason.CARD_ALREADY_BOUND)


def instrument_not_found() -> NotFound:
    return NotFound(
        "the account has no instrument with this id", reason=Reason.INSTRUMENT_NOT_FOUND
    )


def kyc_not_approved() -> FailedPrecondition:
    return FailedPrecondition(
        "the account has no approved identity verification", reason=Reason.KYC_NOT_APPROVED
    )


def change_not_found() -> NotFound:
    return NotFound("no contact change in progress has this id", reason=Reason.CHANGE_NOT_FOUND)


def code_expired() -> FailedPrecondition:
    return FailedPrecondition("the code is no longer valid", reason=Reason.CODE_EXPIRED)


def too_many_attempts() -> FailedPrecondition:
    return FailedPrecondition(
        "too many wrong codes: start the change again", reason=Reason.TOO_MANY_ATTEMPTS
    )


def contact_in_use() -> AlreadyExists:
    return AlreadyExists("this contact already belongs to an account", reason=Reason.CONTACT_IN_USE)


def text_field(raw: str, *, field: str, max_length: int) -> str:
    """A free-text field (holder name, reason, ticket): trimmed, 1 to `max_length` printable
    characters (no NUL or control characters, which PostgreSQL or logs would choke on)."""
    value = raw.strip()
    if not value or len(value) > max_length or not value.isprintable():
        raise InvalidArgument.field(field, f"must be 1 to {max_length} printable characters")
    return value
