"""The stable ErrorInfo reasons auth's domain raises, as wallet/auth/v1/auth_service.proto lists
them, and constructors for the errors that several modules raise alike."""

from __future__ import annotations

import enum

from walletcore.errors import FailedPrecondition, FieldViolation, InvalidArgument


class Reason(enum.StrEnum):
    ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
    PASSWORD_REJECTED = "PASSWORD_REJECTED"  # noqa: S105 (a name, not a password)
    CODE_INVALID = "CODE_INVALID"
    CODE_EXPIRED = "CODE_EXPIRED"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    SECOND_FACTOR_REQUIRED = "SECOND_FACTOR_REQUIRED"
    TOTP_ALREADY_ENABLED = "TOTP_ALREADY_ENABLED"
    TOTP_NOT_ENABLED = "TOTP_NOT_ENABLED"
    ENROLLMENT_NOT_FOUND = "ENROLLMENT_NOT_FOUND"
    GRANT_INVALID = "GRANT_INVALID"
    STEP_UP_METHOD_UNAVAILABLE = "STEP_UP_METHOD_UNAVAILABLE"
    OBJECT_REQUIRED = "OBJECT_REQUIRED"
    CONTACT_KIND_ALREADY_VERIFIED = "CONTACT_KIND_ALREADY_VERIFIED"
    CONTACT_NOT_FOUND = "CONTACT_NOT_FOUND"
    SIGN_IN_THROTTLED = "SIGN_IN_THROTTLED"
    CREDENTIAL_RESET_REQUIRED = "CREDENTIAL_RESET_REQUIRED"
    TICKET_INVALID = "TICKET_INVALID"
    REFRESH_TOKEN_INVALID = "REFRESH_TOKEN_INVALID"  # noqa: S105 (a name, not a password)
    REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"  # noqa: S105 (a name, not a password)
    SESSION_REVOKED = "SESSION_REVOKED"
    NOT_A_SECURITY_OFFICER = "NOT_A_SECURITY_OFFICER"


def account_frozen() -> FailedPrecondition:
    return FailedPrecondition("the account is frozen", reason=Reason.ACCOUNT_FROZEN)


def code_invalid(field: str = "code", *, attempts_left: int | None = None) -> InvalidArgument:
    """A wrong or malformed code; `attempts_left` tells the client how many tries remain."""
    error = InvalidArgument(
        [FieldViolation(field, "the code is not correct")],
        "the code is not correct",
        reason=Reason.CODE_INVALID,
    )
    if attempts_left is not None:
        error.metadata["attempts_left"] = str(attempts_left)
    return error


def code_expired() -> FailedPrecondition:
    return FailedPrecondition("the code is no longer valid", reason=Reason.CODE_EXPIRED)


def too_many_attempts() -> FailedPrecondition:
    return FailedPrecondition(
        "too many wrong codes: request a new one", reason=Reason.TOO_MANY_ATTEMPTS
    )
