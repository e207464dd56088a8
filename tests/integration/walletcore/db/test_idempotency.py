"""request_id idempotency on SQLite and PostgreSQL: one change per key, first answer replayed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, Integer, String, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from walletcore.crypto import KeyRing
from walletcore.db import UnitOfWork, make_metadata, session_factory
from walletcore.errors import FailedPrecondition, InvalidArgument
from walletcore.idempotency import (
    CommittedRefusal,
    IdempotencyKey,
    IdempotencyRecords,
    define_idempotency_table,
)

metadata = make_metadata()
records_table = define_idempotency_table(metadata)
balances = Table(
    "balances",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("refunded_minor", Integer, nullable=False),
)
refunds = Table("refunds", metadata, Column("id", String(36), primary_key=True))

SCOPE = "wallet.refund.v1.RefundService/RequestRefund"


def refund_key(
    fingerprint: str = "f" * 64, owner: str = "acct-1", request_id: str = "req-1"
) -> IdempotencyKey:
    return IdempotencyKey(SCOPE, owner, request_id, fingerprint)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RefundAction:
    """Refunds 100 minor units and answers with the new refund's id; counts its runs."""

    def __init__(self) -> None:
        self.runs = 0

    async def __call__(self, uow: UnitOfWork) -> bytes:
        self.runs += 1
        refund_id = str(uuid.uuid4())
        await uow.session.execute(insert(refunds).values(id=refund_id))
        await uow.session.execute(
            update(balances).values(refunded_minor=balances.c.refunded_minor + 100)
        )
        return refund_id.encode()


@pytest.fixture
async def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(insert(balances).values(account_id="acct-1", refunded_minor=0))
    return session_factory(engine)


@pytest.fixture
def new_uow(sessions: async_sessionmaker[AsyncSession]) -> Callable[[], UnitOfWork]:
    return lambda: UnitOfWork(sessions)


async def refunded_minor(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(balances.c.refunded_minor)) or 0)


async def count_rows(sessions: async_sessionmaker[AsyncSession], table: Table) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_concurrent_retries_change_once_and_all_get_the_first_answer(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    idempotency = IdempotencyRecords(records_table)
    action = RefundAction()

    answers = await asyncio.gather(
        *(idempotency.run_idempotent(new_uow, refund_key(), action) for _ in range(50))
    )

    assert action.runs == 1
    assert len(set(answers)) == 1
    assert await refunded_minor(sessions) == 100
    assert await count_rows(sessions, refunds) == 1
    assert await count_rows(sessions, records_table) == 1


async def test_a_later_retry_replays_the_stored_answer(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    idempotency = IdempotencyRecords(records_table)
    action = RefundAction()

    first = await idempotency.run_idempotent(new_uow, refund_key(), action)
    retried = await idempotency.run_idempotent(new_uow, refund_key(), action)

    assert retried == first
    assert action.runs == 1
    assert await refunded_minor(sessions) == 100


async def test_the_same_request_id_with_another_body_is_rejected(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    idempotency = IdempotencyRecords(records_table)
    action = RefundAction()
    await idempotency.run_idempotent(new_uow, refund_key(fingerprint="a" * 64), action)

    with pytest.raises(InvalidArgument) as rejected:
        await idempotency.run_idempotent(new_uow, refund_key(fingerprint="b" * 64), action)

    assert rejected.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert [violation.field for violation in rejected.value.violations] == ["request_id"]
    assert action.runs == 1
    assert await refunded_minor(sessions) == 100


async def test_request_ids_of_different_owners_and_rpcs_do_not_collide(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    idempotency = IdempotencyRecords(records_table)
    action = RefundAction()

    await idempotency.run_idempotent(new_uow, refund_key(owner="acct-1"), action)
    await idempotency.run_idempotent(new_uow, refund_key(owner="acct-2"), action)
    await idempotency.run_idempotent(
        new_uow, IdempotencyKey("another/Rpc", "acct-1", "req-1", "f" * 64), action
    )

    assert action.runs == 3
    assert await refunded_minor(sessions) == 300


async def test_a_failed_action_records_nothing_and_a_retry_runs_it(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    idempotency = IdempotencyRecords(records_table)
    action = RefundAction()

    async def fail_after_changing(uow: UnitOfWork) -> bytes:
        await action(uow)
        raise TimeoutError("the payout gateway did not answer")

    with pytest.raises(TimeoutError):
        await idempotency.run_idempotent(new_uow, refund_key(), fail_after_changing)
    await idempotency.run_idempotent(new_uow, refund_key(), action)

    assert action.runs == 2
    assert await refunded_minor(sessions) == 100
    assert await count_rows(sessions, refunds) == 1


async def test_a_committed_refusal_keeps_its_changes_records_nothing_and_raises_its_error(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    """A wrong code must count against its limit even though the RPC fails: the refusal's
    changes are committed, and the retry is checked again rather than replayed."""
    idempotency = IdempotencyRecords(records_table)
    action = RefundAction()

    async def refuse_after_changing(uow: UnitOfWork) -> bytes:
        await action(uow)
        raise CommittedRefusal(FailedPrecondition("wrong code", reason="CODE_INVALID"))

    with pytest.raises(FailedPrecondition) as refused:
        await idempotency.run_idempotent(new_uow, refund_key(), refuse_after_changing)

    assert refused.value.reason == "CODE_INVALID"
    assert await refunded_minor(sessions) == 100
    assert await count_rows(sessions, records_table) == 0
    await idempotency.run_idempotent(new_uow, refund_key(), action)
    assert action.runs == 2


async def test_responses_are_stored_encrypted_and_bound_to_their_key(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    idempotency = IdempotencyRecords(records_table, key_ring=KeyRing.development("test"))
    secret_answer = b"refresh-token-that-is-stored-only-hashed-elsewhere"

    async def answer(uow: UnitOfWork) -> bytes:
        return secret_answer

    first = await idempotency.run_idempotent(new_uow, refund_key(), answer)
    replayed = await idempotency.run_idempotent(new_uow, refund_key(), answer)

    assert first == replayed == secret_answer
    async with sessions() as session:
        stored = await session.scalar(select(records_table.c.response))
    assert stored is not None
    assert secret_answer not in bytes(stored)


async def test_a_unique_violation_of_the_action_itself_is_not_swallowed(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    idempotency = IdempotencyRecords(records_table)

    async def insert_a_duplicate(uow: UnitOfWork) -> bytes:
        await uow.session.execute(insert(balances).values(account_id="acct-1", refunded_minor=0))
        return b""

    with pytest.raises(IntegrityError):
        await idempotency.run_idempotent(new_uow, refund_key(), insert_a_duplicate)

    assert await count_rows(sessions, records_table) == 0


async def test_lookup_and_store_inside_a_unit_of_work(
    new_uow: Callable[[], UnitOfWork],
) -> None:
    idempotency = IdempotencyRecords(records_table)

    async with new_uow() as uow:
        assert await idempotency.lookup(uow.session, refund_key()) is None
        await idempotency.store(uow.session, refund_key(), b"\x08\x01")
        await uow.commit()

    async with new_uow() as uow:
        assert await idempotency.lookup(uow.session, refund_key()) == b"\x08\x01"


async def test_records_older_than_the_cutoff_are_purged(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    clock = Clock(datetime(2024, 1, 1, tzinfo=UTC))
    idempotency = IdempotencyRecords(records_table, clock=clock)
    async with new_uow() as uow:
        await idempotency.store(uow.session, refund_key(request_id="old"), b"")
        clock.now += timedelta(days=31)
        await idempotency.store(uow.session, refund_key(request_id="recent"), b"")
        await uow.commit()

    async with new_uow() as uow:
        purged = await idempotency.purge_older_than(uow.session, clock.now - timedelta(days=30))
        await uow.commit()

    assert purged == 1
    async with sessions() as session:
        assert list(await session.scalars(select(records_table.c.request_id))) == ["recent"]
