"""The per-call pipeline on a real port: error mapping, authentication, rate limits."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2

from tests.api.walletcore.probe import (
    OFFICER,
    PROBE,
    REVIEWER,
    USER,
    Client,
    FakeLimiter,
    FakeVerifier,
    ProbeServicer,
    StartServer,
    method,
    probe_service,
)
from walletcore.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Unavailable,
)
from walletcore.grpc.access import AUTHENTICATED, PUBLIC, require_roles, service_policy
from walletcore.grpc.interceptors import RateRule, by_caller, by_client_address
from walletcore.grpc.server import Port, PortKind
from walletcore.grpc.status import error_details
from walletcore.identity import Caller
from walletcore.ratelimit.base import Decision, Policy

WHO_AM_I = method(PROBE, "WhoAmI")
LIMITED = method(PROBE, "Limited")
TOKENS = {"user": USER, "officer": OFFICER, "reviewer": REVIEWER}
PER_ADDRESS = Policy("signin-per-address", limit=30, period_seconds=60)
PER_CALLER = Policy("signin-per-caller", limit=5, period_seconds=60)
PER_DESTINATION = Policy("codes-per-destination", limit=1, period_seconds=60)


def by_destination(request: Any, caller: Caller, address: str) -> str | None:
    return request.value or None


def port(servicer: ProbeServicer, **rules: Any) -> Port:
    return Port(
        PortKind.PUBLIC,
        [probe_service(servicer)],
        service_policy(
            PROBE,
            {
                "WhoAmI": rules.get("who_am_i", PUBLIC),
                "Limited": PUBLIC,
                "Count": PUBLIC,
            },
        ),
        verifier=FakeVerifier(TOKENS),
        rate_rules={
            LIMITED: [
                RateRule(PER_ADDRESS, by_client_address),
                RateRule(PER_CALLER, by_caller),
                RateRule(PER_DESTINATION, by_destination),
            ]
        },
    )


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def failure_of(
    start_server: StartServer,
    servicer: ProbeServicer,
    full_method: str = WHO_AM_I,
    limiter: FakeLimiter | None = None,
    **call: Any,
) -> grpc.aio.AioRpcError:
    servers = start_server([port(servicer, **call.pop("rules", {}))], limiter)
    async with servers as running, running.client() as client:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await client.unary(full_method)(wrappers_pb2.StringValue(), **call)
    return failed.value


async def test_a_domain_error_arrives_as_its_code_with_error_info(
    start_server: StartServer,
) -> None:
    servicer = ProbeServicer(error=FailedPrecondition("账户已冻结", reason="ACCOUNT_FROZEN"))

    details = error_details(await failure_of(start_server, servicer))

    assert details.code is grpc.StatusCode.FAILED_PRECONDITION
    assert details.message == "账户已冻结"
    assert (details.reason, details.domain) == ("ACCOUNT_FROZEN", "probe.wallet")


@pytest.mark.parametrize(
    "error",
    [FailedPrecondition("frozen", reason="ACCOUNT_FROZEN"), KeyError("accounts.password_hash")],
    ids=["domain error", "unexpected exception"],
)
async def test_a_failed_call_still_echoes_its_request_id(
    start_server: StartServer, error: Exception
) -> None:
    """The id rides in the trailing metadata, which a rich status's details replace unless
    both are sent."""
    servicer = ProbeServicer(error=error)

    failure = await failure_of(start_server, servicer, metadata=(("x-request-id", "req-failed"),))

    assert dict(failure.trailing_metadata() or ())["x-request-id"] == "req-failed"
    if isinstance(error, FailedPrecondition):
        assert error_details(failure).reason == "ACCOUNT_FROZEN"


async def test_invalid_input_arrives_with_field_violations(start_server: StartServer) -> None:
    violation = FieldViolation("contact.phone", "must be in E.164 format")
    servicer = ProbeServicer(error=InvalidArgument([violation]))

    details = error_details(await failure_of(start_server, servicer))

    assert details.code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "INVALID_ARGUMENT"
    assert details.field_violations == (violation,)


async def test_an_unexpected_exception_is_internal_without_a_trace(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    servicer = ProbeServicer(error=KeyError("accounts.password_hash"))

    with caplog.at_level(logging.INFO, logger="probe"):
        failure = await failure_of(start_server, servicer)

    assert failure.code() is grpc.StatusCode.INTERNAL
    assert failure.details() == "internal error"
    assert "password_hash" not in str(failure.debug_error_string())
    assert error_details(failure).reason is None
    logged = next(r for r in caplog.records if r.exc_info)
    assert "password_hash" in str(logged.exc_info[1])  # type: ignore[index]


async def test_an_error_after_streamed_responses_still_maps(start_server: StartServer) -> None:
    servicer = ProbeServicer(error=FailedPrecondition("frozen", reason="ACCOUNT_FROZEN"))
    received: list[str] = []

    async def count(client: Client) -> None:
        async for response in client.stream(method(PROBE, "Count"))(
            wrappers_pb2.StringValue(value="n")
        ):
            received.append(response.value)

    async with start_server([port(servicer)]) as running, running.client() as client:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await count(client)

    assert received == ["n-0", "n-1", "n-2"]
    assert error_details(failed.value).reason == "ACCOUNT_FROZEN"


async def test_every_rpc_is_logged_once_with_method_and_code(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    servicer = ProbeServicer(error=FailedPrecondition("frozen", reason="ACCOUNT_FROZEN"))

    with caplog.at_level(logging.INFO, logger="probe"):
        await failure_of(start_server, servicer)

    (line,) = [r for r in caplog.records if r.getMessage() == "rpc finished"]
    assert line.__dict__["grpc_method"] == WHO_AM_I
    assert line.__dict__["grpc_code"] == "FAILED_PRECONDITION"
    assert line.__dict__["duration_ms"] >= 0


async def test_a_missing_token_is_unauthenticated(start_server: StartServer) -> None:
    failure = await failure_of(start_server, ProbeServicer(), rules={"who_am_i": AUTHENTICATED})

    assert failure.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_details(failure).reason == "TOKEN_MISSING"


@pytest.mark.parametrize(
    "metadata",
    [bearer("forged"), (("authorization", "Basic dXNlcjpwYXNz"),)],
    ids=["unknown-token", "not-bearer"],
)
async def test_a_bad_token_is_unauthenticated_on_methods_that_need_one(
    start_server: StartServer, metadata: tuple[tuple[str, str], ...]
) -> None:
    failure = await failure_of(
        start_server, ProbeServicer(), rules={"who_am_i": AUTHENTICATED}, metadata=metadata
    )

    assert failure.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_a_public_method_runs_anonymously_when_the_token_given_is_bad(
    start_server: StartServer,
) -> None:
    """A signed-out app may still send its expired access token (say, to refresh its
    session): public methods need no token, so a bad one is ignored rather than refused."""
    servers = start_server([port(ProbeServicer())], None)
    async with servers as running, running.client() as client:
        answer = await client.unary(WHO_AM_I)(wrappers_pb2.StringValue(), metadata=bearer("forged"))

    assert answer.value == "anonymous:"


async def test_the_wrong_role_is_permission_denied(start_server: StartServer) -> None:
    failure = await failure_of(
        start_server,
        ProbeServicer(),
        rules={"who_am_i": require_roles("security_officer")},
        metadata=bearer("reviewer"),
    )

    assert failure.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_details(failure).reason == "ROLE_REQUIRED"


async def test_a_method_missing_from_the_policy_is_denied(start_server: StartServer) -> None:
    failure = await failure_of(
        start_server, ProbeServicer(), method(PROBE, "Unlisted"), metadata=bearer("officer")
    )

    assert failure.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_details(failure).reason == "METHOD_NOT_ALLOWED"


async def test_the_handler_sees_the_verified_caller(start_server: StartServer) -> None:
    rules = {"who_am_i": require_roles("security_officer")}
    async with (
        start_server([port(ProbeServicer(), **rules)]) as running,
        running.client() as client,
    ):
        answer = await client.unary(WHO_AM_I)(
            wrappers_pb2.StringValue(), metadata=bearer("officer")
        )
        anonymous = await client.unary(LIMITED)(wrappers_pb2.StringValue())

    assert answer.value == "operator:op-1"
    assert anonymous.value == "anonymous:"


async def test_all_rules_of_a_call_go_to_one_limiter_check(start_server: StartServer) -> None:
    limiter = FakeLimiter()
    async with (
        start_server([port(ProbeServicer())], limiter) as running,
        running.client() as client,
    ):
        limited = client.unary(LIMITED)
        await limited(wrappers_pb2.StringValue(value="+8613800138000"), metadata=bearer("user"))
        await limited(wrappers_pb2.StringValue())
        await client.unary(WHO_AM_I)(wrappers_pb2.StringValue())

    first, second = limiter.checks
    assert {(hit.policy, hit.subject) for hit in first} == {
        (PER_ADDRESS, "127.0.0.1"),
        (PER_CALLER, "user:acct-1"),
        (PER_DESTINATION, "+8613800138000"),
    }
    assert {(hit.policy, hit.subject) for hit in second} == {(PER_ADDRESS, "127.0.0.1")}


async def test_a_refused_call_is_resource_exhausted_with_retry_and_quota_details(
    start_server: StartServer,
) -> None:
    servicer = ProbeServicer(error=AssertionError("the handler must not run"))
    limiter = FakeLimiter(
        Decision(allowed=False, retry_after_seconds=42.0, exceeded=(PER_DESTINATION,))
    )

    failure = await failure_of(start_server, servicer, LIMITED, limiter)

    details = error_details(failure)
    assert details.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.retry_after == 42.0
    assert [v.subject for v in details.quota_violations] == ["codes-per-destination"]
    assert len(limiter.checks) == 1


async def test_an_unreachable_limiter_fails_closed(start_server: StartServer) -> None:
    servicer = ProbeServicer(error=AssertionError("the handler must not run"))
    limiter = FakeLimiter(failure=Unavailable("rate limits cannot be checked"))

    failure = await failure_of(start_server, servicer, LIMITED, limiter)

    assert failure.code() is grpc.StatusCode.UNAVAILABLE


async def address_counted(
    start_server: StartServer, metadata: tuple[tuple[str, str], ...] = (), **settings: Any
) -> str:
    limiter = FakeLimiter()
    servers = start_server([port(ProbeServicer())], limiter, **settings)
    async with servers as running, running.client() as client:
        await client.unary(LIMITED)(wrappers_pb2.StringValue(), metadata=metadata)
    ((hit,),) = limiter.checks
    return hit.subject


async def test_the_client_address_is_the_peer_whatever_headers_say(
    start_server: StartServer,
) -> None:
    forged = (("x-forwarded-for", "203.0.113.9"),)

    assert await address_counted(start_server, forged) == "127.0.0.1"


async def test_an_ipv6_peer_is_counted_by_its_address(start_server: StartServer) -> None:
    assert await address_counted(start_server, host="::1") == "::1"


async def test_behind_a_trusted_proxy_its_last_forwarded_address_counts(
    start_server: StartServer,
) -> None:
    forwarded = (("x-forwarded-for", "198.51.100.1, 203.0.113.9"),)

    address = await address_counted(start_server, forwarded, trusted_proxy_header="X-Forwarded-For")

    assert address == "203.0.113.9"


async def test_bytes_that_are_not_the_request_message_are_invalid_argument(
    start_server: StartServer,
) -> None:
    """Undecodable input is the client's mistake: INVALID_ARGUMENT with a field violation,
    never UNKNOWN with the parser's text, and the handler never runs."""
    servicer = ProbeServicer()
    servers = start_server([port(servicer)], None)
    async with servers as running, running.client() as client:
        raw = client.channel.unary_unary(
            WHO_AM_I,
            request_serializer=lambda data: data,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await raw(b"\xff\xff\xff\xff not protobuf")

    details = error_details(failed.value)
    assert details.code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "MALFORMED_REQUEST"
    assert [v.field for v in details.field_violations] == ["request"]
    assert "protobuf" not in details.message.lower()
