"""The per-identifier sign-in limit under attack, through real gRPC: a stranger who floods an
identifier with wrong passwords is throttled, and the owner's device that signed in before
(it presents its device token) or the owner's address that did keeps getting in.

Stranger and owner come from different addresses, as they would: the app trusts
`x-forwarded-for` here, as behind the production proxy. Limits per address are not what is
under test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Final

import grpc
import grpc.aio
import pytest

from services.auth.domain.device_tokens import MAX_DEVICE_TOKEN_LENGTH
from services.auth.service.context import AuthRules
from services.auth.service.fakes import FakeClock
from tests.api.auth.conftest import (
    DEFAULT_CLIENT,
    DEFAULT_PASSWORD,
    AuthTestApp,
    Metadata,
    Registered,
    StartAuth,
    request_id,
)
from tests.support.device_tokens import tampered_device_tokens
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.common.v1 import contact_pb2
from walletcore.clock import utc_now
from walletcore.grpc.status import RpcErrorDetails, error_details
from walletcore.ratelimit import SIGN_IN_PER_ACCOUNT_MINUTE, Policy
from walletcore.validation import text_problem

STRANGER: Final = (("x-forwarded-for", "203.0.113.7"),)
OWNER: Final = (("x-forwarded-for", "198.51.100.20"),)
OWNER_ELSEWHERE: Final = (("x-forwarded-for", "192.0.2.44"),)
WRONG_PASSWORD: Final = "not the password at all"


def well_spelled(tokens: list[str]) -> list[str]:
    """The tokens the edge lets through: a NUL or an over-long token is INVALID_ARGUMENT on
    `device_token` before the limit is charged (the request-strings walk covers that)."""
    return [t for t in tokens if text_problem(t, max_length=MAX_DEVICE_TOKEN_LENGTH) is None]


def sign_in_request(
    identifier: contact_pb2.Contact, password: str, device_token: str = ""
) -> pb.SignInRequest:
    return pb.SignInRequest(
        request_id=request_id(),
        identifier=identifier,
        password=password,
        client=DEFAULT_CLIENT,
        device_token=device_token,
    )


async def sign_in(
    app: AuthTestApp,
    identifier: contact_pb2.Contact,
    password: str = DEFAULT_PASSWORD,
    *,
    device_token: str = "",
    metadata: Metadata = OWNER,
) -> pb.SignInResponse:
    return await app.public.SignIn(
        sign_in_request(identifier, password, device_token), metadata=metadata
    )


async def refused(
    app: AuthTestApp,
    identifier: contact_pb2.Contact,
    password: str = DEFAULT_PASSWORD,
    *,
    device_token: str = "",
    metadata: Metadata = OWNER,
) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await sign_in(app, identifier, password, device_token=device_token, metadata=metadata)
    return error_details(error.value)


async def flood(app: AuthTestApp, identifier: contact_pb2.Contact) -> RpcErrorDetails:
    """The stranger's wrong passwords until the identifier's limit refuses them."""
    for _ in range(SIGN_IN_PER_ACCOUNT_MINUTE.limit + 1):
        refusal = await refused(app, identifier, WRONG_PASSWORD, metadata=STRANGER)
        if refusal.reason == "RATE_LIMITED":
            return refusal
    raise AssertionError("the identifier's limit never refused the stranger")


def rate_limited_on(refusal: RpcErrorDetails) -> tuple[grpc.StatusCode, str | None, list[str]]:
    return (refusal.code, refusal.reason, [v.subject for v in refusal.quota_violations])


@pytest.fixture
async def app(start_auth: StartAuth) -> AsyncIterator[AuthTestApp]:
    async with start_auth(trusted_proxy_header="x-forwarded-for") as started:
        yield started


async def test_a_right_password_issues_a_device_token_with_tokens_or_a_second_factor(
    app: AuthTestApp,
) -> None:
    owner = await app.register(email=app.new_email())

    first = await sign_in(app, owner.contact)
    renewed = await sign_in(app, owner.contact, device_token=first.device_token)
    wrong = await refused(app, owner.contact, WRONG_PASSWORD, device_token=first.device_token)

    assert first.HasField("tokens")
    assert first.device_token
    assert renewed.HasField("tokens")
    assert renewed.device_token
    assert wrong.reason == "CREDENTIALS_INVALID"


async def test_a_stranger_flooding_an_identifier_stays_throttled_while_the_owners_device_signs_in(
    app: AuthTestApp,
) -> None:
    owner = await app.register(email=app.new_email())
    device_token = (await sign_in(app, owner.contact)).device_token

    stranger = await flood(app, owner.contact)
    owner_with_token = await sign_in(app, owner.contact, device_token=device_token)
    owner_elsewhere = await sign_in(
        app, owner.contact, device_token=device_token, metadata=OWNER_ELSEWHERE
    )
    stranger_again = await refused(app, owner.contact, WRONG_PASSWORD, metadata=STRANGER)

    assert rate_limited_on(stranger) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
        ["sign_in_per_account_minute"],
    )
    assert owner_with_token.HasField("tokens")
    assert owner_elsewhere.HasField("tokens")
    assert rate_limited_on(stranger_again) == rate_limited_on(stranger)


async def test_without_a_token_the_owner_passes_from_a_known_address_only(
    app: AuthTestApp,
) -> None:
    """Documented (docs/decisions/sign-in-device-tokens.md): without its device token, a
    device at an address the account never signed in from is indistinguishable from the
    stranger, and is refused with them."""
    owner = await app.register(email=app.new_email())
    await sign_in(app, owner.contact)

    await flood(app, owner.contact)
    from_known_address = await sign_in(app, owner.contact, metadata=OWNER)
    from_new_address = await refused(app, owner.contact, metadata=OWNER_ELSEWHERE)

    assert from_known_address.HasField("tokens")
    assert rate_limited_on(from_new_address) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
        ["sign_in_per_account_minute"],
    )


async def test_a_forged_device_token_or_another_accounts_is_treated_as_none(
    app: AuthTestApp,
) -> None:
    owner = await app.register(email=app.new_email())
    stranger_account: Registered = await app.register(email=app.new_email())
    owner_token = (await sign_in(app, owner.contact)).device_token
    strangers_own_token = (
        await sign_in(app, stranger_account.contact, metadata=STRANGER)
    ).device_token

    await flood(app, owner.contact)
    refusals = [
        await refused(app, owner.contact, device_token=token, metadata=OWNER_ELSEWHERE)
        for token in [*well_spelled(tampered_device_tokens(owner_token)), strangers_own_token]
    ]
    owner_with_token = await sign_in(
        app, owner.contact, device_token=owner_token, metadata=OWNER_ELSEWHERE
    )

    assert [rate_limited_on(refusal) for refusal in refusals] == [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED", ["sign_in_per_account_minute"])
    ] * len(refusals)
    assert owner_with_token.HasField("tokens")


async def test_a_device_token_that_fails_the_password_ten_times_is_itself_locked_out(
    start_auth: StartAuth,
) -> None:
    clock = FakeClock(utc_now())
    # The device's attempts a minute are not under test here: real time barely moves.
    generous = Policy("sign_in_per_device_token_minute", 100, 60)
    async with start_auth(
        clock=clock,
        rules=AuthRules(sign_in_per_device_token=generous),
        trusted_proxy_header="x-forwarded-for",
    ) as app:
        owner = await app.register(email=app.new_email())
        stolen = (await sign_in(app, owner.contact)).device_token
        answers = []
        for _ in range(10):
            refusal = await refused(
                app, owner.contact, WRONG_PASSWORD, device_token=stolen, metadata=STRANGER
            )
            answers.append(refusal.reason)
            clock.advance(timedelta(minutes=2))  # past each growing delay
        locked = await refused(app, owner.contact, device_token=stolen)
        owner_without_it = await sign_in(app, owner.contact)
        clock.advance(timedelta(minutes=16))
        unlocked = await sign_in(app, owner.contact, device_token=stolen)

    assert answers == ["CREDENTIALS_INVALID"] * 10
    assert (locked.code, locked.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SIGN_IN_THROTTLED")
    assert owner_without_it.HasField("tokens")
    assert unlocked.HasField("tokens")
