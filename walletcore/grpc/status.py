"""The one mapping between domain errors and gRPC's richer error model (google.rpc.Status).

Servers: `to_grpc_status(error, domain)` gives the status an interceptor aborts the call with:
a canonical code, the error's client-safe message, and details: always an ErrorInfo (reason,
domain, metadata), plus BadRequest for InvalidArgument and RetryInfo + QuotaFailure for
ResourceExhausted.

Clients (tests, and services calling each other): `error_details(exc)` reads those details back
from an RpcError, and `domain_error_from_rpc(exc)` rebuilds the DomainError so a service can
pass a peer's refusal on (e.g. auth's ACCOUNT_FROZEN) instead of turning it into INTERNAL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar, cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from walletcore.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaViolation,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

_CODES: Final[Mapping[type[DomainError], grpc.StatusCode]] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Aborted: grpc.StatusCode.ABORTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_M = TypeVar("_M", bound=Message)

_ERRORS_BY_CODE: Final = {code: error_type for error_type, code in _CODES.items()}

# What a peer's status without a domain equivalent (INTERNAL, UNKNOWN, ...) becomes: the peer's
# message may describe its internals, so it is not passed on.
_UPSTREAM_FAILURE_REASON: Final = "UPSTREAM_FAILURE"
_UPSTREAM_FAILURE_MESSAGE: Final = "a service this request depends on failed"


def status_code_of(error: DomainError) -> grpc.StatusCode | None:
    """The canonical code of a domain error; None for a DomainError outside the known
    subclasses, which is a bug in the code that raised it."""
    for error_type in type(error).__mro__:
        if error_type in _CODES:
            return _CODES[error_type]
    return None


def to_rpc_status(error: DomainError, domain: str) -> status_pb2.Status:
    """The google.rpc.Status for `error`; `domain` is the raising service's, e.g. auth.wallet."""
    code = status_code_of(error)
    if code is None:
        raise TypeError(f"{type(error).__name__} subclasses no mapped DomainError")
    details: list[Message] = [
        error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=error.metadata)
    ]
    if isinstance(error, InvalidArgument):
        details.append(_bad_request(error))
    if isinstance(error, ResourceExhausted):
        details.extend(_rate_limit_details(error))
    return status_pb2.Status(
        code=code.value[0], message=error.message, details=[_packed(d) for d in details]
    )


def to_grpc_status(error: DomainError, domain: str) -> grpc.Status:
    """What `ServicerContext.abort_with_status` takes."""
    status: grpc.Status = rpc_status.to_status(to_rpc_status(error, domain))
    return status


def _packed(detail: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


def _bad_request(error: InvalidArgument) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]
    )


def _rate_limit_details(
    error: ResourceExhausted,
) -> tuple[error_details_pb2.RetryInfo, error_details_pb2.QuotaFailure]:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(round(max(error.retry_after_seconds, 0.0) * 1e9))
    quota = error_details_pb2.QuotaFailure(
        violations=[
            error_details_pb2.QuotaFailure.Violation(subject=v.subject, description=v.description)
            for v in error.violations
        ]
    )
    return error_details_pb2.RetryInfo(retry_delay=delay), quota


@dataclass(frozen=True, slots=True)
class RpcErrorDetails:
    """A failed call's status and google.rpc details, as a client reads them."""

    code: grpc.StatusCode
    message: str
    reason: str | None = None
    domain: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    retry_after: float | None = None
    """Seconds, from RetryInfo."""
    quota_violations: tuple[QuotaViolation, ...] = ()


class _FinishedCall(Protocol):
    """What a failed call exposes, on the sync stubs' errors and on grpc.aio.AioRpcError."""

    def code(self) -> grpc.StatusCode: ...
    def details(self) -> str | None: ...
    def trailing_metadata(self) -> Any: ...


def error_details(exc: grpc.aio.AioRpcError | grpc.RpcError) -> RpcErrorDetails:
    """Read code, message and rich details from a failed call (sync or asyncio stub).

    Details whose code or message disagree with the call's own status are ignored, as
    grpc_status does: they were not produced for this status.
    """
    if not isinstance(exc, grpc.aio.AioRpcError | grpc.Call):
        raise TypeError("the error carries no gRPC status")
    call = cast(_FinishedCall, exc)
    code, message = call.code(), call.details() or ""
    try:
        rich: status_pb2.Status | None = rpc_status.from_call(call)
    except ValueError:
        rich = None
    if rich is None:
        return RpcErrorDetails(code=code, message=message)
    info = _find(rich, error_details_pb2.ErrorInfo)
    bad_request = _find(rich, error_details_pb2.BadRequest)
    retry = _find(rich, error_details_pb2.RetryInfo)
    quota = _find(rich, error_details_pb2.QuotaFailure)
    return RpcErrorDetails(
        code=code,
        message=message,
        reason=info.reason if info else None,
        domain=info.domain if info else None,
        metadata=dict(info.metadata) if info else {},
        field_violations=tuple(
            FieldViolation(v.field, v.description)
            for v in (bad_request.field_violations if bad_request else ())
        ),
        retry_after=retry.retry_delay.ToNanoseconds() / 1e9 if retry else None,
        quota_violations=tuple(
            QuotaViolation(v.subject, v.description) for v in (quota.violations if quota else ())
        ),
    )


def _find(status: status_pb2.Status, detail_type: type[_M]) -> _M | None:
    for detail in status.details:
        if detail.Is(detail_type.DESCRIPTOR):
            found = detail_type()
            detail.Unpack(found)
            return found
    return None


def domain_error_from_rpc(exc: grpc.RpcError) -> DomainError:
    """The DomainError a peer's failed call stands for, keeping its reason and details."""
    details = error_details(exc)
    error_type = _ERRORS_BY_CODE.get(details.code)
    if error_type is None:
        return Unavailable(_UPSTREAM_FAILURE_MESSAGE, reason=_UPSTREAM_FAILURE_REASON)
    reason = details.reason
    if error_type is InvalidArgument:
        return InvalidArgument(details.field_violations, details.message, reason=reason)
    if error_type is ResourceExhausted:
        return ResourceExhausted(
            details.message,
            retry_after_seconds=details.retry_after or 0.0,
            violations=details.quota_violations,
            reason=reason,
        )
    return error_type(details.message, reason=reason, metadata=details.metadata)
