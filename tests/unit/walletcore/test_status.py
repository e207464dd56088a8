from __future__ import annotations

import grpc
import grpc.aio
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from walletcore.grpc.status import (
    domain_error_from_rpc,
    error_details,
    to_grpc_status,
)

DOMAIN = "auth.wallet"


def as_client_error(status: grpc.Status) -> grpc.aio.AioRpcError:
    """What a stub raises when the server aborts with `status`."""
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details,
    )


def round_trip(error: DomainError) -> grpc.aio.AioRpcError:
    return as_client_error(to_grpc_status(error, DOMAIN))


SIMPLE_ERRORS = [
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (Aborted, grpc.StatusCode.ABORTED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
]


@pytest.mark.parametrize(("error_type", "code"), SIMPLE_ERRORS)
def test_each_error_maps_to_its_code_with_error_info(
    error_type: type[DomainError], code: grpc.StatusCode
) -> None:
    error = error_type("account is frozen", reason="ACCOUNT_FROZEN", metadata={"since": "today"})

    details = error_details(round_trip(error))

    assert details.code is code
    assert details.message == "account is frozen"
    assert (details.reason, details.domain) == ("ACCOUNT_FROZEN", DOMAIN)
    assert details.metadata == {"since": "today"}


@pytest.mark.parametrize(("error_type", "code"), SIMPLE_ERRORS)
def test_a_peer_error_comes_back_as_the_same_domain_error(
    error_type: type[DomainError], code: grpc.StatusCode
) -> None:
    error = error_type("account is frozen", reason="ACCOUNT_FROZEN", metadata={"k": "v"})

    rebuilt = domain_error_from_rpc(round_trip(error))

    assert type(rebuilt) is error_type
    assert (rebuilt.message, rebuilt.reason, rebuilt.metadata) == (
        "account is frozen",
        "ACCOUNT_FROZEN",
        {"k": "v"},
    )


def test_invalid_argument_carries_field_violations_both_ways() -> None:
    error = InvalidArgument(
        [FieldViolation("contact.phone", "not E.164"), FieldViolation("password", "too short")]
    )

    call = round_trip(error)
    details = error_details(call)
    rebuilt = domain_error_from_rpc(call)

    assert details.code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "INVALID_ARGUMENT"
    assert details.field_violations == error.violations
    assert isinstance(rebuilt, InvalidArgument)
    assert rebuilt.violations == error.violations


def test_resource_exhausted_carries_retry_info_and_quota_failure_both_ways() -> None:
    error = ResourceExhausted(
        "too many codes",
        retry_after_seconds=42.5,
        violations=[QuotaViolation("otp-per-destination-minute", "1 per minute")],
    )

    call = round_trip(error)
    details = error_details(call)
    rebuilt = domain_error_from_rpc(call)

    assert details.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.reason == "RATE_LIMITED"
    assert details.retry_after == 42.5
    assert details.quota_violations == error.violations
    assert isinstance(rebuilt, ResourceExhausted)
    assert rebuilt.retry_after_seconds == 42.5
    assert rebuilt.violations == error.violations


def test_subclasses_of_a_mapped_error_keep_its_code() -> None:
    class AccountFrozen(FailedPrecondition):
        reason = "ACCOUNT_FROZEN"

    details = error_details(round_trip(AccountFrozen("account is frozen")))

    assert (details.code, details.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ACCOUNT_FROZEN",
    )


def test_a_bare_domain_error_has_no_status() -> None:
    with pytest.raises(TypeError):
        to_grpc_status(DomainError("unclassified"), DOMAIN)


def test_a_status_without_details_reads_as_code_and_message_only() -> None:
    call = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "connect failed"
    )

    details = error_details(call)

    assert (details.code, details.message, details.reason) == (
        grpc.StatusCode.UNAVAILABLE,
        "connect failed",
        None,
    )


def test_a_peer_internal_error_becomes_unavailable_without_its_message() -> None:
    call = grpc.aio.AioRpcError(
        grpc.StatusCode.INTERNAL,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        "KeyError in repository.py",
    )

    rebuilt = domain_error_from_rpc(call)

    assert isinstance(rebuilt, Unavailable)
    assert "repository" not in rebuilt.message


metadata_text = st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4)
reasons = st.from_regex(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", fullmatch=True)
violations = st.lists(st.builds(FieldViolation, st.text(), st.text()), min_size=1, max_size=4)
quotas = st.lists(st.builds(QuotaViolation, st.text(), st.text()), max_size=4)
simple_errors = st.builds(
    lambda error_type, message, reason, metadata: error_type(
        message, reason=reason, metadata=metadata
    ),
    st.sampled_from([error_type for error_type, _ in SIMPLE_ERRORS]),
    st.text(),
    reasons,
    metadata_text,
)
invalid_arguments = st.builds(
    lambda found, message, reason: InvalidArgument(found, message, reason=reason),
    violations,
    st.text(),
    reasons,
)
exhausted = st.builds(
    lambda message, seconds, found: ResourceExhausted(
        message, retry_after_seconds=seconds, violations=found
    ),
    st.text(),
    st.integers(min_value=0, max_value=10**6).map(lambda ms: ms / 1000),
    quotas,
)


@given(st.one_of(simple_errors, invalid_arguments, exhausted))
def test_any_domain_error_survives_the_round_trip(error: DomainError) -> None:
    rebuilt = domain_error_from_rpc(round_trip(error))

    assert type(rebuilt) is type(error)
    assert (rebuilt.message, rebuilt.reason, rebuilt.metadata) == (
        error.message,
        error.reason,
        error.metadata,
    )
    if isinstance(error, InvalidArgument):
        assert isinstance(rebuilt, InvalidArgument)
        assert rebuilt.violations == error.violations
    if isinstance(error, ResourceExhausted):
        assert isinstance(rebuilt, ResourceExhausted)
        assert rebuilt.violations == error.violations
        assert rebuilt.retry_after_seconds == error.retry_after_seconds
