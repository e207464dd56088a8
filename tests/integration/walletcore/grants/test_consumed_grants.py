"""Consumed-grant rows on SQLite and PostgreSQL: a grant is spent once, with its action.

Each test builds a tiny service schema: the consumed-grant table from
`define_consumed_grants_table` next to an `actions` table standing for what a grant allows
(an unbind, a refund), both written in one transaction as a service's unit of work does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, String, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.integration.locks import wait_until_a_backend_waits_on_a_lock
from walletcore.db import create_engine, dialect_name, make_metadata, session_factory
from walletcore.errors import PermissionDenied
from walletcore.fakes import FakeClock
from walletcore.grants import (
    MAX_GRANT_LIFETIME,
    PURGE_MARGIN,
    ExpiredGrantRows,
    GrantAcceptance,
    SqlConsumedGrants,
    define_consumed_grants_table,
)
from walletcore.idempotency import RetentionPurge
from walletcore.keys import generate_key
from walletcore.tokens import (
    CLOCK_SKEW_LEEWAY,
    GrantVerifier,
    SigningKeyRing,
    StaticKeySet,
    TokenIssuer,
)

AUTH_ISSUER = "wallet-auth"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

metadata = make_metadata()
consumed_grants = define_consumed_grants_table(metadata)
actions = Table("actions", metadata, Column("id", String(64), primary_key=True))


@dataclass
class Auth:
    issuer: TokenIssuer
    verifier: GrantVerifier

    def unbind_grant(self) -> str:
        return self.issuer.step_up_grant(
            account_id="acc-1", purpose="UNBIND_CARD", object_id="card-1"
        ).token


@pytest.fixture
def auth() -> Auth:
    ring = SigningKeyRing([generate_key("auth-1")])
    return Auth(
        TokenIssuer(AUTH_ISSUER, ring, lambda: NOW),
        GrantVerifier(StaticKeySet(ring.public_jwks()), AUTH_ISSUER, clock=lambda: NOW),
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def unbind(session: AsyncSession, auth: Auth, token: str, action_id: str) -> None:
    """A use case: the grant accepted, then the action, in the session's transaction."""
    grants = GrantAcceptance(auth.verifier, SqlConsumedGrants(session, consumed_grants))
    await grants.accept(token, account_id="acc-1", purpose="UNBIND_CARD", object_id="card-1")
    await session.execute(insert(actions).values(id=action_id))


async def count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(table))).scalar_one()


async def test_two_concurrent_uses_of_one_grant_exactly_one_wins(
    engine: AsyncEngine, auth: Auth
) -> None:
    sessions = session_factory(engine)
    token = auth.unbind_grant()
    both_open = asyncio.Barrier(2)
    first_consumed = asyncio.Event()

    async def use(action_id: str) -> str:
        async with sessions() as session:
            postgres = dialect_name(session) == "postgresql"
            if postgres:
                # Both transactions are open before either consumes. (On SQLite the second
                # would wait here for the first's write lock: SQLite runs them in turn.)
                await session.execute(text("SELECT 1"))
                await both_open.wait()
            try:
                await unbind(session, auth, token, action_id)
            except PermissionDenied as error:
                await session.rollback()
                return error.reason
            if postgres and not first_consumed.is_set():
                first_consumed.set()
                # The winner commits only once the other use is blocked on its row.
                await wait_until_a_backend_waits_on_a_lock(engine)
            await session.commit()
            return "ACCEPTED"

    outcomes = await asyncio.gather(use("unbind-a"), use("unbind-b"))

    assert sorted(outcomes) == ["ACCEPTED", "GRANT_ALREADY_USED"]
    assert await count(engine, actions) == 1
    assert await count(engine, consumed_grants) == 1


async def test_a_rolled_back_action_leaves_the_grant_usable(
    engine: AsyncEngine, auth: Auth
) -> None:
    sessions = session_factory(engine)
    token = auth.unbind_grant()
    async with sessions() as session:
        await unbind(session, auth, token, "unbind-a")
        await session.rollback()

    async with sessions() as session:
        await unbind(session, auth, token, "unbind-b")
        await session.commit()

    async with sessions() as session:
        with pytest.raises(PermissionDenied) as again:
            await unbind(session, auth, token, "unbind-c")
    assert again.value.reason == "GRANT_ALREADY_USED"
    assert await count(engine, actions) == 1


async def test_the_row_records_when_the_grant_expires(engine: AsyncEngine, auth: Auth) -> None:
    token = auth.unbind_grant()
    async with session_factory(engine)() as session:
        await unbind(session, auth, token, "unbind-a")
        await session.commit()

    async with engine.connect() as connection:
        stored = (await connection.execute(select(consumed_grants.c.expires_at))).scalar_one()
    assert stored == NOW + timedelta(minutes=5)


async def test_the_purge_deletes_only_rows_whose_grants_can_no_longer_be_accepted(
    engine: AsyncEngine,
) -> None:
    clock = FakeClock(NOW)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        rows = SqlConsumedGrants(session, consumed_grants)
        await rows.consume("long-gone", NOW - PURGE_MARGIN - timedelta(seconds=1))
        # Expired, but a replica whose clock runs behind may still accept it: kept.
        await rows.consume("just-expired", NOW - CLOCK_SKEW_LEEWAY)
        await rows.consume("live", NOW + timedelta(minutes=4))
    purge = RetentionPurge(ExpiredGrantRows(consumed_grants, clock=clock), sessions)

    first = await purge.run_once()
    clock.advance(PURGE_MARGIN + timedelta(minutes=5))
    later = await purge.run_once()

    assert (first, later) == (1, 2)
    assert await count(engine, consumed_grants) == 0


async def test_a_grant_whose_row_was_purged_is_still_refused(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    clock = FakeClock(NOW)
    ring = SigningKeyRing([generate_key("auth-1")])
    auth = Auth(
        TokenIssuer(AUTH_ISSUER, ring, lambda: NOW),
        GrantVerifier(StaticKeySet(ring.public_jwks()), AUTH_ISSUER, clock=clock),
    )
    token = auth.unbind_grant()
    async with sessions() as session, session.begin():
        await unbind(session, auth, token, "unbind-1")
    clock.advance(PURGE_MARGIN + MAX_GRANT_LIFETIME + timedelta(seconds=1))
    purged = await RetentionPurge(
        ExpiredGrantRows(consumed_grants, clock=clock), sessions
    ).run_once()

    with pytest.raises(PermissionDenied) as refused:
        async with sessions() as session, session.begin():
            await unbind(session, auth, token, "unbind-2")

    assert (purged, refused.value.reason) == (1, "GRANT_EXPIRED")
    assert await count(engine, consumed_grants) == 0
