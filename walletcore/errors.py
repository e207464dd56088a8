"""Domain errors: the one vocabulary every service layer raises.

The domain and service layers raise these and never touch gRPC. `walletcore.grpc.status`
is the one place that turns them into a canonical status code with google.rpc details
(ErrorInfo, BadRequest, RetryInfo, QuotaFailure). Messages are written for the client:
they never contain secrets, personal data or internals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request: `field` is the proto field path, e.g. `contact.phone`."""

    field: str
    description: str


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    """One exhausted limit: `subject` names what was limited (never the raw key)."""

    subject: str
    description: str


class DomainError(Exception):
    """Base of every error a client may see. `reason` is UPPER_SNAKE_CASE and stable."""

    reason: str = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(DomainError):
    """The request itself is malformed; retrying it unchanged will fail again."""

    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        violations: Sequence[FieldViolation],
        message: str = "the request has invalid fields",
        *,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = tuple(violations)

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class FailedPrecondition(DomainError):
    """The system is not in a state that allows the action (e.g. ACCOUNT_FROZEN)."""


class NotFound(DomainError):
    reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    reason = "ALREADY_EXISTS"


class Aborted(DomainError):
    """A concurrency conflict: the state changed under the request (e.g. a row version moved);
    retrying the whole request may succeed."""

    reason = "ABORTED"


class Unauthenticated(DomainError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    reason = "PERMISSION_DENIED"


class ResourceExhausted(DomainError):
    """A rate limit was hit; `retry_after_seconds` feeds RetryInfo."""

    reason = "RATE_LIMITED"

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float,
        violations: Sequence[QuotaViolation] = (),
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after_seconds = retry_after_seconds
        self.violations = tuple(violations)


class Unavailable(DomainError):
    """A dependency (Redis, another service) cannot be reached; the client may retry."""

    reason = "UNAVAILABLE"


class DeadlineExceeded(DomainError):
    reason = "DEADLINE_EXCEEDED"
