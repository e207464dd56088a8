"""The stable ErrorInfo reasons kyc raises, as wallet/kyc/v1/*.proto list them, and
constructors for the errors several modules raise alike. Messages never carry a name, a
document number, an image or any other personal data."""

from __future__ import annotations

import enum

from walletcore.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound


class Reason(enum.StrEnum):
    DOCUMENT_NUMBER_INVALID = "DOCUMENT_NUMBER_INVALID"
    DOCUMENT_EXPIRED = "DOCUMENT_EXPIRED"
    DOCUMENT_TYPE_UNSUPPORTED = "DOCUMENT_TYPE_UNSUPPORTED"
    COUNTRY_INVALID = "COUNTRY_INVALID"
    DATE_OF_BIRTH_INVALID = "DATE_OF_BIRTH_INVALID"
    LEGAL_NAME_INVALID = "LEGAL_NAME_INVALID"
    IMAGE_REQUIRED = "IMAGE_REQUIRED"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    IMAGE_TYPE_UNSPECIFIED = "IMAGE_TYPE_UNSPECIFIED"
    IMAGE_TYPE_UNSUPPORTED = "IMAGE_TYPE_UNSUPPORTED"
    UNDERAGE = "UNDERAGE"
    VERIFICATION_PENDING = "VERIFICATION_PENDING"
    ALREADY_VERIFIED = "ALREADY_VERIFIED"
    VERIFICATION_REJECTED_FINAL = "VERIFICATION_REJECTED_FINAL"
    VERIFICATION_NOT_FOUND = "VERIFICATION_NOT_FOUND"
    CASE_NOT_FOUND = "CASE_NOT_FOUND"
    CASE_ALREADY_DECIDED = "CASE_ALREADY_DECIDED"
    REASON_REQUIRED = "REASON_REQUIRED"
    REASON_NOT_ALLOWED = "REASON_NOT_ALLOWED"
    NOTE_INVALID = "NOTE_INVALID"
    KYC_NOT_APPROVED = "KYC_NOT_APPROVED"
    PAGE_TOKEN_INVALID = "PAGE_TOKEN_INVALID"  # noqa: S105 (a reason, not a password)


def invalid(field: str, description: str, reason: Reason) -> InvalidArgument:
    """One bad field; the ErrorInfo reason says which rule it broke."""
    return InvalidArgument([FieldViolation(field, description)], reason=reason)


def underage() -> FailedPrecondition:
    return FailedPrecondition("the holder must be 18 or older", reason=Reason.UNDERAGE)


def case_not_found() -> NotFound:
    return NotFound("no verification case has this id", reason=Reason.CASE_NOT_FOUND)


def verification_not_found() -> NotFound:
    return NotFound(
        "nothing was submitted for verification yet", reason=Reason.VERIFICATION_NOT_FOUND
    )


def kyc_not_approved() -> FailedPrecondition:
    return FailedPrecondition(
        "the account has no approved identity verification", reason=Reason.KYC_NOT_APPROVED
    )


def page_token_invalid() -> InvalidArgument:
    return InvalidArgument(
        [FieldViolation("page.page_token", "is not a token of this list")],
        "the page token does not fit this list",
        reason=Reason.PAGE_TOKEN_INVALID,
    )
