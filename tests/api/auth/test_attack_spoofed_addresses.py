"""A credential stuffer behind one address forges forwarding headers on every call, hoping each
looks like a new client: auth trusts no such header unless configured behind a proxy that
overwrites it (`trusted_proxy_header`, unset by default), so the per-address sign-in limit of
the TCP peer counts every call, on PostgreSQL with the Redis limiter as in production."""

from __future__ import annotations

import grpc
import pytest

from services.auth.bootstrap import sign_in_rate_rules
from tests.api.auth.access_helpers import failure
from tests.api.auth.harness import DEFAULT_CLIENT, AuthTestApp, phone_contact, request_id
from tests.support.figures import record
from wallet.auth.v1 import auth_service_pb2 as pb
from walletcore.grpc.status import RpcErrorDetails

WRONG_PASSWORD = "a stuffed password"


def forged(n: int) -> tuple[tuple[str, str], ...]:
    """Every forwarding header a proxy might set, each naming another documentation address."""
    address = f"198.51.{n // 250}.{n % 250 + 1}"
    return (
        ("x-forwarded-for", address),
        ("forwarded", f"for={address}"),
        ("x-real-ip", address),
        ("x-client-ip", address),
        ("true-client-ip", address),
        ("cf-connecting-ip", address),
    )


async def stuffed_sign_in(auth_app: AuthTestApp, n: int) -> RpcErrorDetails:
    """One wrong password for a number no account has, from a forged address."""
    return await failure(
        auth_app.public.SignIn(
            pb.SignInRequest(
                request_id=request_id(),
                identifier=phone_contact(auth_app.new_phone()),
                password=WRONG_PASSWORD,
                client=DEFAULT_CLIENT,
            ),
            metadata=forged(n),
        )
    )


@pytest.mark.parametrize("auth_backend", ["postgresql"], indirect=True)
async def test_forged_forwarding_headers_never_move_the_per_address_sign_in_limit(
    auth_app: AuthTestApp,
) -> None:
    (rule,) = sign_in_rate_rules()["/wallet.auth.v1.AuthService/SignIn"]
    limit = rule.policy.limit
    attempts = limit + 10

    answers = [await stuffed_sign_in(auth_app, n) for n in range(attempts)]

    before, after = answers[:limit], answers[limit:]
    checked = sum(a.reason == "CREDENTIALS_INVALID" for a in before)
    throttled = sum(a.reason == "SIGN_IN_THROTTLED" for a in before)
    # Every call counted against the one peer: the limit's call is the last one admitted,
    # whatever address the headers claimed, and the forged ones after it change nothing.
    assert checked + throttled == limit
    assert {(a.code, a.reason) for a in after} == {
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    }
    assert {v.subject for a in after for v in a.quota_violations} == {rule.policy.name}
    record(
        "forged forwarding headers (PostgreSQL, Redis limiter)",
        f"{attempts} sign-ins from one peer, each claiming another address in 6 headers: "
        f"{checked} reached a password check, {throttled} throttled by the peer's failure count, "
        f"{len(after)} refused by {rule.policy.name} ({limit}); 0 counted for a forged address",
    )
