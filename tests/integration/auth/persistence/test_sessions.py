"""Sessions, refresh tokens and pending sign-ins on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from services.auth.domain.events import Origin, RevokeReason
from services.auth.domain.proofs import ChallengePurpose, FactorMethod, VerifiedFactor
from services.auth.domain.reasons import Reason
from services.auth.domain.sessions import PendingSignIn
from tests.integration.auth.persistence.builders import (
    SHANGHAI,
    START,
    NewUnitOfWork,
    add_sessions,
    make_account,
    postgres_only,
    start_session,
    store,
)
from walletcore.crypto import SecretHasher
from walletcore.errors import Unauthenticated


@pytest.fixture(autouse=True)
async def accounts(new_uow: NewUnitOfWork) -> None:
    await store(new_uow, make_account("acc-1"), make_account("acc-2", phone=None, email="b@x.org"))


async def test_a_session_and_its_first_token_come_back_with_their_origin(
    new_uow: NewUnitOfWork, hasher: SecretHasher, origin: Origin
) -> None:
    session, token = start_session(hasher, "s-1", origin=origin, at=START.astimezone(SHANGHAI))
    await add_sessions(new_uow, (session, token))

    async with new_uow() as uow:
        loaded = await uow.sessions.get("s-1")
        loaded_token = await uow.sessions.get_refresh_token(token.id)

    assert loaded == session
    assert loaded is not None
    assert loaded.created_at.tzinfo is UTC
    assert loaded_token == token


async def test_a_session_without_a_client_comes_back_without_one(
    new_uow: NewUnitOfWork, hasher: SecretHasher
) -> None:
    session, token = start_session(hasher, "s-1", origin=Origin())
    await add_sessions(new_uow, (session, token))

    async with new_uow() as uow:
        loaded = await uow.sessions.get("s-1")

    assert loaded is not None
    assert loaded.origin == Origin()


async def test_sessions_are_listed_newest_first_for_their_account_only(
    new_uow: NewUnitOfWork, hasher: SecretHasher
) -> None:
    await add_sessions(
        new_uow,
        start_session(hasher, "s-old", at=START),
        start_session(hasher, "s-new", at=START + timedelta(hours=2)),
        start_session(hasher, "s-mid", at=START + timedelta(hours=1)),
        start_session(hasher, "s-other", account_id="acc-2"),
    )

    async with new_uow() as uow:
        listed = await uow.sessions.list_for_account("acc-1")

    assert [session.id for session in listed] == ["s-new", "s-mid", "s-old"]


async def test_a_rotation_saves_the_session_the_used_token_and_the_next_one(
    new_uow: NewUnitOfWork, hasher: SecretHasher, origin: Origin
) -> None:
    await add_sessions(new_uow, start_session(hasher, "s-1", origin=origin))
    later = START + timedelta(hours=1)

    async with new_uow() as uow:
        session = await uow.sessions.get("s-1", for_update=True)
        presented = await uow.sessions.get_refresh_token("s-1-token-1", for_update=True)
        assert session is not None
        assert presented is not None
        next_token = session.rotate(
            presented,
            new_token_id="s-1-token-2",
            new_token="second-secret",
            hasher=hasher,
            origin=Origin("198.51.100.4"),
            now=later,
        ).new_token_or_raise()
        await uow.sessions.save(session)
        await uow.sessions.save_refresh_token(presented)
        await uow.sessions.add_refresh_token(next_token)
        await uow.commit()

    async with new_uow() as uow:
        assert await uow.sessions.get("s-1") == session
        assert await uow.sessions.get_refresh_token("s-1-token-1") == presented
        assert await uow.sessions.get_refresh_token("s-1-token-2") == next_token
    assert presented.used_at == later
    assert session.origin.client_address == "198.51.100.4"


async def test_revoke_all_ends_only_the_accounts_active_sessions(
    new_uow: NewUnitOfWork, hasher: SecretHasher
) -> None:
    revoked_before, token = start_session(hasher, "s-revoked")
    revoked_before.revoke(RevokeReason.SIGN_OUT, START)
    await add_sessions(
        new_uow,
        start_session(hasher, "s-active"),
        start_session(hasher, "s-expired", at=START - timedelta(days=91)),
        (revoked_before, token),
        start_session(hasher, "s-other", account_id="acc-2"),
    )
    now = START + timedelta(hours=1)

    async with new_uow() as uow:
        held = await uow.sessions.get("s-active")
        revoked = await uow.sessions.revoke_all("acc-1", RevokeReason.ACCOUNT_FROZEN, now)
        assert held is not None
        # A session read before the revocation must not be saved back to life.
        await uow.sessions.save(held)
        await uow.commit()

    async with new_uow() as uow:
        sessions = {s.id: s for s in await uow.sessions.list_for_account("acc-1")}
        other = await uow.sessions.get("s-other")
    assert revoked == 1
    assert (sessions["s-active"].revoked_at, sessions["s-active"].revoke_reason) == (
        now,
        RevokeReason.ACCOUNT_FROZEN,
    )
    assert sessions["s-revoked"].revoke_reason is RevokeReason.SIGN_OUT
    assert sessions["s-expired"].revoked_at is None
    assert other is not None
    assert other.is_active(now)


@postgres_only
async def test_of_two_refreshes_with_one_token_only_the_first_marks_it_used(
    new_uow: NewUnitOfWork, hasher: SecretHasher
) -> None:
    await add_sessions(new_uow, start_session(hasher, "s-1"))
    later = START + timedelta(minutes=1)

    async with new_uow() as first, new_uow() as second:
        mine = await first.sessions.get_refresh_token("s-1-token-1")
        theirs = await second.sessions.get_refresh_token("s-1-token-1")
        assert mine is not None
        assert theirs is not None
        mine.used_at = theirs.used_at = later
        await first.sessions.save_refresh_token(mine)
        await first.commit()
        with pytest.raises(Unauthenticated) as refused:
            await second.sessions.save_refresh_token(theirs)

    assert refused.value.reason == Reason.REFRESH_TOKEN_INVALID


async def test_a_pending_sign_in_comes_back_and_its_completion_is_saved(
    new_uow: NewUnitOfWork, hasher: SecretHasher, origin: Origin
) -> None:
    pending = PendingSignIn.start(
        id="p-1",
        account_id="acc-1",
        ticket="ticket-secret",
        hasher=hasher,
        origin=origin,
        now=START,
    )
    async with new_uow() as uow:
        await uow.pending_sign_ins.add(pending)
        await uow.commit()

    async with new_uow() as uow:
        loaded = await uow.pending_sign_ins.get("p-1", for_update=True)
        assert loaded == pending
        assert loaded is not None
        proof = VerifiedFactor("acc-1", FactorMethod.TOTP, ChallengePurpose.SIGN_IN, START)
        loaded.complete(proof, START + timedelta(minutes=1))
        await uow.pending_sign_ins.save(loaded)
        await uow.commit()

    async with new_uow() as uow:
        assert await uow.pending_sign_ins.get("p-1") == loaded
        assert await uow.pending_sign_ins.get("unknown") is None
