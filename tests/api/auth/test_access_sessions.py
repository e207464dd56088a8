"""Sessions through real gRPC calls: refresh rotation, reuse detection, sign-out, revocation."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.api.auth.access_helpers import failure
from tests.api.auth.harness import AuthTestApp, bearer, request_id
from tests.support.figures import record
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from walletcore.grpc.status import error_details


async def refresh(auth_app: AuthTestApp, refresh_token: str) -> types_pb2.TokenPair:
    reply = await auth_app.public.RefreshSession(
        pb.RefreshSessionRequest(request_id=request_id(), refresh_token=refresh_token)
    )
    return reply.tokens


async def test_a_reused_refresh_token_ends_the_session_and_every_token_of_it(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    rotated = await refresh(auth_app, user.tokens.refresh_token)

    reuse = await failure(refresh(auth_app, user.tokens.refresh_token))
    after_reuse = await failure(refresh(auth_app, rotated.refresh_token))
    access = await failure(
        auth_app.public.GetAccount(pb.GetAccountRequest(), metadata=bearer(rotated.access_token))
    )

    assert rotated.session_id == user.tokens.session_id
    assert rotated.refresh_token != user.tokens.refresh_token
    assert (reuse.code, reuse.reason) == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    assert (after_reuse.code, after_reuse.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )
    assert (access.code, access.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_REVOKED")


async def test_a_retried_refresh_returns_the_same_pair_instead_of_a_reuse(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    request = pb.RefreshSessionRequest(
        request_id=request_id(), refresh_token=user.tokens.refresh_token
    )

    first = await auth_app.public.RefreshSession(request)
    retried = await auth_app.public.RefreshSession(request)

    assert retried == first
    assert (
        await refresh(auth_app, first.tokens.refresh_token)
    ).session_id == first.tokens.session_id


async def test_after_signing_out_the_access_and_refresh_tokens_are_refused(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()

    await auth_app.public.SignOut(
        pb.SignOutRequest(request_id=request_id()), metadata=user.metadata
    )

    access = await failure(
        auth_app.public.GetAccount(pb.GetAccountRequest(), metadata=user.metadata)
    )
    refreshed = await failure(refresh(auth_app, user.tokens.refresh_token))
    assert (access.code, access.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_REVOKED")
    assert (refreshed.code, refreshed.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )


async def test_another_users_session_id_is_not_found_like_a_missing_one(
    auth_app: AuthTestApp,
) -> None:
    alice = await auth_app.register()
    mallory = await auth_app.register()

    theirs = await failure(
        auth_app.public.RevokeSession(
            pb.RevokeSessionRequest(request_id=request_id(), session_id=alice.tokens.session_id),
            metadata=mallory.metadata,
        )
    )
    missing = await failure(
        auth_app.public.RevokeSession(
            pb.RevokeSessionRequest(request_id=request_id(), session_id="0" * 32),
            metadata=mallory.metadata,
        )
    )

    assert (theirs.code, theirs.reason) == (grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")
    assert (missing.code, missing.reason, missing.message) == (
        theirs.code,
        theirs.reason,
        theirs.message,
    )
    still_alice = await auth_app.public.GetAccount(pb.GetAccountRequest(), metadata=alice.metadata)
    assert still_alice.account.account_id == alice.account_id


async def test_revoking_a_lost_device_ends_only_that_session(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()
    lost = await auth_app.signed_in(user)

    await auth_app.public.RevokeSession(
        pb.RevokeSessionRequest(request_id=request_id(), session_id=lost.session_id),
        metadata=user.metadata,
    )

    listed = await auth_app.public.ListSessions(pb.ListSessionsRequest(), metadata=user.metadata)
    assert [s.session_id for s in listed.sessions] == [user.tokens.session_id]
    refused = await failure(
        auth_app.public.GetAccount(pb.GetAccountRequest(), metadata=bearer(lost.access_token))
    )
    assert refused.reason == "SESSION_REVOKED"


@pytest.mark.parametrize("auth_backend", ["postgresql"], indirect=True)
async def test_two_concurrent_refreshes_with_one_token_one_wins_and_the_reuse_ends_the_session(
    auth_app: AuthTestApp,
) -> None:
    """A thief and the owner refresh with the same token at once (two requests, not a retry of
    one): on PostgreSQL, where both really run together, one rotation wins and the other is a
    reuse, which revokes the session, the winner's new tokens included (SPEC 3)."""
    user = await auth_app.register()

    raced = await asyncio.gather(
        refresh(auth_app, user.tokens.refresh_token),
        refresh(auth_app, user.tokens.refresh_token),
        return_exceptions=True,
    )

    won = [r for r in raced if isinstance(r, types_pb2.TokenPair)]
    lost = [error_details(r) for r in raced if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert [(r.code, r.reason) for r in lost] == [
        (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    ]
    winners_refresh = await failure(refresh(auth_app, won[0].refresh_token))
    winners_access = await failure(
        auth_app.public.GetAccount(pb.GetAccountRequest(), metadata=bearer(won[0].access_token))
    )
    assert winners_refresh.reason == "REFRESH_TOKEN_INVALID"
    assert winners_access.reason == "SESSION_REVOKED"
    record(
        "refresh-token race (PostgreSQL)",
        "2 concurrent refreshes with one token: 1 rotated, 1 REFRESH_TOKEN_REUSED, and the "
        "reuse revoked the session (the winner's new refresh and access tokens refused)",
    )
