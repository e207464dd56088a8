"""The reads every request makes (`SqlAccountReads`) on SQLite and PostgreSQL: they answer what
the account aggregate would, and on PostgreSQL each costs one round trip to the server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.auth.adapters.repositories import Protection
from services.auth.adapters.repositories.reads import SqlAccountReads
from services.auth.domain.account import Account, AccountStatus, FreezeRecord
from services.auth.domain.events import Actor, RevokeReason
from services.auth.domain.recovery import RecoveryCodeSet
from services.auth.domain.sessions import SessionTerm
from services.auth.domain.totp import TotpFactor, TotpState
from services.auth.service.ports import AccountStanding, AccountSummary
from tests.integration.auth.persistence.builders import (
    START,
    NewUnitOfWork,
    add_sessions,
    make_account,
    postgres_only,
    start_session,
    store,
)
from walletcore.crypto import SecretHasher
from walletcore.db import SingleStatementReads

OFFICER = Actor.security_officer("officer-7")


@pytest.fixture
async def reads(engine: AsyncEngine, protection: Protection) -> AsyncIterator[SqlAccountReads]:
    statements = SingleStatementReads(engine)
    yield SqlAccountReads(statements, protection)
    await statements.close()


def frozen_twice(account: Account) -> Account:
    """Frozen, unfrozen and frozen again: the last freeze is the one that counts."""
    account.freeze_history = [
        FreezeRecord(True, OFFICER, "phishing report", "SEC-1", START + timedelta(hours=1)),
        FreezeRecord(False, OFFICER, "owner verified", "SEC-1", START + timedelta(hours=2)),
        FreezeRecord(True, Actor.user(account.id), "", "", START + timedelta(hours=3)),
    ]
    account.status = AccountStatus.FROZEN
    return account


def with_totp(account: Account, hasher: SecretHasher, state: TotpState) -> Account:
    account.totp = TotpFactor("totp-" + account.id, account.id, b"sealed", START, state)
    account.recovery_codes, _ = RecoveryCodeSet.generate(
        id="codes-" + account.id, account_id=account.id, hasher=hasher, now=START
    )
    for code in account.recovery_codes.codes[:3]:
        code.used_at = START
    return account


async def test_the_standing_of_an_active_account_and_its_live_session(
    new_uow: NewUnitOfWork, reads: SqlAccountReads, hasher: SecretHasher
) -> None:
    await store(new_uow, make_account("acc-1"))
    session, token = start_session(hasher, "s-1")
    await add_sessions(new_uow, (session, token))

    standing = await reads.standing("acc-1", "s-1")

    assert standing == AccountStanding(
        status=AccountStatus.ACTIVE,
        frozen_at=None,
        totp_enabled=False,
        session=SessionTerm(expires_at=session.expires_at),
    )


async def test_a_frozen_account_stands_frozen_since_its_latest_freeze_with_totp(
    new_uow: NewUnitOfWork, reads: SqlAccountReads, hasher: SecretHasher
) -> None:
    await store(new_uow, with_totp(frozen_twice(make_account("acc-1")), hasher, TotpState.ACTIVE))

    standing = await reads.standing("acc-1", None)

    assert standing == AccountStanding(
        status=AccountStatus.FROZEN,
        frozen_at=START + timedelta(hours=3),
        totp_enabled=True,
        session=None,
    )


async def test_a_revoked_session_reads_with_its_revocation(
    new_uow: NewUnitOfWork, reads: SqlAccountReads, hasher: SecretHasher
) -> None:
    await store(new_uow, make_account("acc-1"))
    await add_sessions(new_uow, start_session(hasher, "s-1"))
    async with new_uow() as uow:
        await uow.sessions.revoke_all("acc-1", RevokeReason.SIGN_OUT, START + timedelta(hours=1))
        await uow.commit()

    standing = await reads.standing("acc-1", "s-1")

    assert standing is not None
    assert standing.session is not None
    assert standing.session.revoked_at == START + timedelta(hours=1)
    assert not standing.session.is_active(START + timedelta(hours=1))


async def test_another_accounts_session_an_unknown_one_and_an_unknown_account_read_as_none(
    new_uow: NewUnitOfWork, reads: SqlAccountReads, hasher: SecretHasher
) -> None:
    await store(new_uow, make_account("acc-1"), make_account("acc-2", phone=None, email="b@x.org"))
    await add_sessions(new_uow, start_session(hasher, "s-2", account_id="acc-2"))

    theirs = await reads.standing("acc-1", "s-2")
    unknown = await reads.standing("acc-1", "no-such-session")

    assert theirs is not None
    assert theirs.session is None
    assert unknown is not None
    assert unknown.session is None
    assert await reads.standing("no-such-account", "s-2") is None
    assert await reads.summary("no-such-account") is None


@pytest.mark.parametrize(
    "totp_state", [TotpState.ACTIVE, TotpState.PENDING_CONFIRMATION, TotpState.DISABLED]
)
async def test_the_summary_answers_what_the_aggregate_would(
    new_uow: NewUnitOfWork, reads: SqlAccountReads, hasher: SecretHasher, totp_state: TotpState
) -> None:
    account = with_totp(frozen_twice(make_account("acc-1")), hasher, totp_state)
    await store(new_uow, account)

    summary = await reads.summary("acc-1")

    assert summary == AccountSummary(
        id="acc-1",
        status=AccountStatus.FROZEN,
        contacts=account.contacts,
        totp_enabled=account.totp_active,
        unused_recovery_codes=len(account.recovery_codes.codes) - 3
        if account.recovery_codes
        else 0,
        created_at=account.created_at,
        frozen_at=account.frozen_at,
    )


async def test_the_summary_of_an_active_account_without_a_second_factor(
    new_uow: NewUnitOfWork, reads: SqlAccountReads
) -> None:
    account = make_account("acc-1", email=None)
    await store(new_uow, account)

    summary = await reads.summary("acc-1")

    assert summary is not None
    assert (summary.status, summary.contacts, summary.totp_enabled) == (
        AccountStatus.ACTIVE,
        account.contacts,
        False,
    )
    assert (summary.unused_recovery_codes, summary.frozen_at) == (0, None)


class WireCounter:
    """Counts the messages the client writes to PostgreSQL on the connections it opens: one
    per round trip (asyncpg sends a statement's Bind, Execute and Sync in one write)."""

    def __init__(self, connect: Callable[..., Awaitable[Any]]) -> None:
        self.writes = 0
        self._connect = connect

    async def connect(self, *args: Any, **kwargs: Any) -> Any:
        connection = await self._connect(*args, **kwargs)
        transport = connection._transport
        write = transport.write

        def counted(data: bytes) -> None:
            self.writes += 1
            write(data)

        transport.write = counted
        return connection


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> WireCounter:
    counter = WireCounter(asyncpg.connect)
    monkeypatch.setattr(asyncpg, "connect", counter.connect)
    return counter


@postgres_only
async def test_each_read_is_one_round_trip_without_begin_or_commit(
    new_uow: NewUnitOfWork, reads: SqlAccountReads, hasher: SecretHasher, wire: WireCounter
) -> None:
    await store(new_uow, make_account("acc-1"))
    await add_sessions(new_uow, start_session(hasher, "s-1"))
    # The first use of a statement on a connection prepares it (once per connection).
    await reads.standing("acc-1", "s-1")
    await reads.summary("acc-1")

    before = wire.writes
    await reads.standing("acc-1", "s-1")
    after_standing = wire.writes
    await reads.summary("acc-1")

    assert (after_standing - before, wire.writes - after_standing) == (1, 1)
