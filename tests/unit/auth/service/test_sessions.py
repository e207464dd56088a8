"""Sessions: refresh rotation and reuse detection, sign-out, revocation and the session list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from services.auth.domain.events import RevokeReason
from services.auth.domain.reasons import Reason
from services.auth.service import sessions
from services.auth.service.context import AuthContext
from services.auth.service.fakes import FAKE_ISSUER, FakeClock, FakeStore, FakeTransactions
from services.auth.service.ports import AuthUnitOfWork
from services.auth.service.sessions import TokenPair
from tests.unit.auth.service.access_helpers import (
    EMAIL,
    ORIGIN,
    PHONE,
    event_types,
    freeze,
    refusal,
    register,
)
from walletcore.errors import InvalidArgument, NotFound, Unauthenticated
from walletcore.tokens import AccessTokenVerifier, SigningKeyRing, StaticKeySet

Work = Callable[[AuthUnitOfWork], Awaitable[object]]


def refresh(
    ctx: AuthContext, refresh_token: str
) -> Callable[[AuthUnitOfWork], Awaitable[TokenPair]]:
    async def work(uow: AuthUnitOfWork) -> TokenPair:
        return await sessions.refresh_session(uow, ctx, refresh_token=refresh_token, origin=ORIGIN)

    return work


def revoke(ctx: AuthContext, account_id: str, session_id: str, current: str | None) -> Work:
    async def work(uow: AuthUnitOfWork) -> None:
        await sessions.revoke_session(
            uow,
            ctx,
            account_id=account_id,
            session_id=session_id,
            current_session_id=current,
            origin=ORIGIN,
        )

    return work


def listing(
    ctx: AuthContext, account_id: str, page_size: int = 50, page_token: str = ""
) -> Callable[[AuthUnitOfWork], Awaitable[sessions.SessionPage]]:
    async def work(uow: AuthUnitOfWork) -> sessions.SessionPage:
        return await sessions.list_sessions(
            uow, ctx, account_id=account_id, page_size=page_size, page_token=page_token
        )

    return work


async def test_a_refresh_gives_a_new_pair_for_the_same_session(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    first = (await register(tx, ctx)).tokens

    second = await tx.run(refresh(ctx, first.refresh_token))

    assert second.session_id == first.session_id
    assert second.refresh_token != first.refresh_token
    keys = StaticKeySet(SigningKeyRing.development("auth-access-tokens").public_jwks())
    verifier = AccessTokenVerifier(keys, FAKE_ISSUER, clock=ctx.clock)
    caller = await verifier.verify(second.access_token)
    assert (caller.subject, caller.session_id) == (
        store.sessions[first.session_id].account_id,
        first.session_id,
    )


async def test_a_reused_refresh_token_ends_the_whole_session(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    registered = await register(tx, ctx)
    first = registered.tokens
    second = await tx.run(refresh(ctx, first.refresh_token))

    reuse = await refusal(tx, refresh(ctx, first.refresh_token))
    rotated = await refusal(tx, refresh(ctx, second.refresh_token))

    assert isinstance(reuse, Unauthenticated)
    assert reuse.reason == Reason.REFRESH_TOKEN_REUSED
    assert rotated.reason == Reason.REFRESH_TOKEN_INVALID
    assert store.sessions[first.session_id].revoke_reason is RevokeReason.REFRESH_TOKEN_REUSED
    assert event_types(store, registered.account_id)[-1] == "REFRESH_TOKEN_REUSED"
    assert [n.event.type.value for n in store.notifier.notices_to(PHONE)] == [
        "REFRESH_TOKEN_REUSED"
    ]


@pytest.mark.parametrize("shape", ["no-dot", "unknown.secret", "forged"])
async def test_a_token_that_is_not_ours_is_invalid(
    tx: FakeTransactions, ctx: AuthContext, shape: str
) -> None:
    tokens = (await register(tx, ctx)).tokens
    token_id = tokens.refresh_token.partition(".")[0]
    presented = {"no-dot": "garbage", "unknown.secret": "unknown.secret"}.get(
        shape, f"{token_id}.not-the-secret"
    )

    error = await refusal(tx, refresh(ctx, presented))

    assert error.reason == Reason.REFRESH_TOKEN_INVALID


async def test_a_refresh_token_expires_after_thirty_days_unused(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    tokens = (await register(tx, ctx)).tokens
    clock.advance(timedelta(days=30))

    error = await refusal(tx, refresh(ctx, tokens.refresh_token))

    assert error.reason == Reason.REFRESH_TOKEN_INVALID


async def test_a_frozen_account_cannot_refresh(tx: FakeTransactions, ctx: AuthContext) -> None:
    registered = await register(tx, ctx)
    await freeze(tx, ctx, registered.account_id)

    error = await refusal(tx, refresh(ctx, registered.tokens.refresh_token))

    assert error.reason == Reason.ACCOUNT_FROZEN


async def test_signing_out_ends_the_session_and_its_refresh_token(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    registered = await register(tx, ctx)
    session_id = registered.tokens.session_id

    await tx.run(
        lambda uow: sessions.sign_out(
            uow, ctx, account_id=registered.account_id, session_id=session_id, origin=ORIGIN
        )
    )

    assert store.sessions[session_id].revoke_reason is RevokeReason.SIGN_OUT
    assert event_types(store, registered.account_id)[-1] == "SIGN_OUT"
    error = await refusal(tx, refresh(ctx, registered.tokens.refresh_token))
    assert error.reason == Reason.REFRESH_TOKEN_INVALID


async def test_another_accounts_session_is_not_found_like_a_missing_one(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    alice = await register(tx, ctx, PHONE)
    mallory = await register(tx, ctx, EMAIL)

    theirs = await refusal(
        tx, revoke(ctx, mallory.account_id, alice.tokens.session_id, mallory.tokens.session_id)
    )
    missing = await refusal(
        tx, revoke(ctx, mallory.account_id, "no-such-session", mallory.tokens.session_id)
    )

    assert isinstance(theirs, NotFound)
    assert (theirs.reason, theirs.message) == (missing.reason, missing.message)
    assert theirs.reason == "SESSION_NOT_FOUND"
    assert store.sessions[alice.tokens.session_id].revoked_at is None


async def test_revoking_another_own_session_is_a_revocation_not_a_sign_out(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    registered = await register(tx, ctx)
    other = await tx.run(
        lambda uow: sessions.open_session(uow, ctx, account_id=registered.account_id, origin=ORIGIN)
    )

    await tx.run(revoke(ctx, registered.account_id, other.session_id, registered.tokens.session_id))

    assert store.sessions[other.session_id].revoke_reason is RevokeReason.REVOKED_BY_USER
    assert store.sessions[registered.tokens.session_id].revoked_at is None
    assert event_types(store, registered.account_id)[-1] == "SESSION_REVOKED"


async def test_the_list_holds_active_sessions_most_recently_used_first_in_pages(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    registered = await register(tx, ctx)
    account_id = registered.account_id
    opened = []
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        opened.append(
            await tx.run(
                lambda uow: sessions.open_session(uow, ctx, account_id=account_id, origin=ORIGIN)
            )
        )
    await tx.run(revoke(ctx, account_id, opened[1].session_id, None))
    clock.advance(timedelta(minutes=1))
    await tx.run(refresh(ctx, registered.tokens.refresh_token))

    first = await tx.run(listing(ctx, account_id, page_size=2))
    second = await tx.run(listing(ctx, account_id, page_size=2, page_token=first.next_page_token))

    assert [s.id for s in first.sessions + second.sessions] == [
        registered.tokens.session_id,
        opened[2].session_id,
        opened[0].session_id,
    ]
    assert second.next_page_token == ""


async def test_a_page_token_that_is_not_of_this_list_is_refused(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    alice = await register(tx, ctx, PHONE)
    mallory = await register(tx, ctx, EMAIL)

    error = await refusal(tx, listing(ctx, mallory.account_id, page_token=alice.tokens.session_id))

    assert isinstance(error, InvalidArgument)
    assert error.reason == "PAGE_TOKEN_INVALID"
    assert [v.field for v in error.violations] == ["page.page_token"]
