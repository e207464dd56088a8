"""The public port refuses a frozen account's and an ended session's tokens at once, although
the token itself is still within its 15 minutes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.auth.domain.account import Account
from services.auth.domain.contacts import Phone, VerifiedContact
from services.auth.domain.events import NO_CLIENT, Actor, RevokeReason
from services.auth.domain.sessions import Session
from services.auth.service.context import AuthContext
from services.auth.service.fakes import (
    FAKE_ISSUER,
    FAKE_SIGNING_KEYS_LABEL,
    FakeAccountReads,
    FakeClock,
    FakeStore,
)
from services.auth.verifiers import ActiveSessionVerifier
from walletcore.errors import FailedPrecondition, Unauthenticated
from walletcore.identity import CallerKind
from walletcore.tokens import AccessTokenVerifier, SigningKeyRing, StaticKeySet


@pytest.fixture
def verifier(store: FakeStore, clock: FakeClock) -> ActiveSessionVerifier:
    ring = SigningKeyRing.development(FAKE_SIGNING_KEYS_LABEL)
    tokens = AccessTokenVerifier(StaticKeySet(ring.public_jwks()), FAKE_ISSUER, clock=clock)
    return ActiveSessionVerifier(tokens, FakeAccountReads(store), clock)


def signed_in(store: FakeStore, ctx: AuthContext, account_id: str) -> str:
    """Stores an account with one session; returns that session's access token."""
    now = ctx.clock()
    contact = VerifiedContact("c-" + account_id, Phone("+8613800138000"), now)
    account, _ = Account.register(
        id=account_id, password_hash="h", contact=contact, origin=NO_CLIENT, now=now
    )
    session, _ = Session.start(
        id="s-" + account_id,
        account_id=account_id,
        origin=NO_CLIENT,
        first_token_id="t-" + account_id,
        first_token="secret",
        hasher=ctx.secrets,
        now=now,
    )
    store.accounts[account.id] = account
    store.sessions[session.id] = session
    return ctx.tokens.access_token(account_id=account_id, session_id=session.id).token


async def test_a_live_session_of_an_active_account_passes(
    verifier: ActiveSessionVerifier, store: FakeStore, ctx: AuthContext
) -> None:
    token = signed_in(store, ctx, "a1")

    caller = await verifier.verify(token)

    assert (caller.kind, caller.subject, caller.session_id) == (CallerKind.USER, "a1", "s-a1")


async def test_a_frozen_account_is_refused_as_frozen(
    verifier: ActiveSessionVerifier, store: FakeStore, ctx: AuthContext
) -> None:
    token = signed_in(store, ctx, "a1")
    store.accounts["a1"].freeze_by_officer(
        officer=Actor.security_officer("officer-1"),
        reason="stolen phone",
        ticket_ref="SEC-1",
        origin=NO_CLIENT,
        now=ctx.clock(),
    )

    with pytest.raises(FailedPrecondition) as refused:
        await verifier.verify(token)

    assert refused.value.reason == "ACCOUNT_FROZEN"


async def test_a_revoked_session_is_refused(
    verifier: ActiveSessionVerifier, store: FakeStore, ctx: AuthContext
) -> None:
    token = signed_in(store, ctx, "a1")
    store.sessions["s-a1"].revoke(RevokeReason.SIGN_OUT, ctx.clock())

    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(token)

    assert refused.value.reason == "SESSION_REVOKED"


async def test_a_token_naming_another_accounts_session_is_refused(
    verifier: ActiveSessionVerifier, store: FakeStore, ctx: AuthContext
) -> None:
    signed_in(store, ctx, "a1")
    signed_in(store, ctx, "a2")
    forged = ctx.tokens.access_token(account_id="a1", session_id="s-a2").token

    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(forged)

    assert refused.value.reason == "SESSION_REVOKED"


async def test_an_expired_token_is_refused_before_any_lookup(
    verifier: ActiveSessionVerifier, store: FakeStore, ctx: AuthContext, clock: FakeClock
) -> None:
    token = signed_in(store, ctx, "a1")
    clock.advance(timedelta(minutes=16))

    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(token)

    assert refused.value.reason == "TOKEN_EXPIRED"
