"""request_id idempotency on SQLite and PostgreSQL: one change per key, first answer replayed."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, Integer, String, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from wallet.auth.v1.auth_service_pb2 import SignInRequest
from wallet.common.v1 import contact_pb2
from walletcore.crypto import BlindIndex, KeyRing
from walletcore.db import UnitOfWork, make_metadata, session_factory
from walletcore.errors import FailedPrecondition, InvalidArgument
from walletcore.idempotency import (
    IDEMPOTENCY_RETENTION,
    REQUEST_FINGERPRINT_CONTEXT,
    CommittedRefusal,
    IdempotencyKey,
    IdempotencyRecords,
    RetentionPurge,
    define_idempotency_table,
)
from walletcore.keys import format_key_spec, generate_key

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
FINGERPRINTS = BlindIndex.development(context=REQUEST_FINGERPRINT_CONTEXT)


def refund_key(
    body_digest: str = "f" * 64, owner: str = "acct-1", request_id: str = "req-1"
) -> IdempotencyKey:
    return IdempotencyKey(SCOPE, owner, request_id, body_digest)


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
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS)
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
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS)
    action = RefundAction()

    first = await idempotency.run_idempotent(new_uow, refund_key(), action)
    retried = await idempotency.run_idempotent(new_uow, refund_key(), action)

    assert retried == first
    assert action.runs == 1
    assert await refunded_minor(sessions) == 100


async def test_the_same_request_id_with_another_body_is_rejected(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS)
    action = RefundAction()
    await idempotency.run_idempotent(new_uow, refund_key(body_digest="a" * 64), action)

    with pytest.raises(InvalidArgument) as rejected:
        await idempotency.run_idempotent(new_uow, refund_key(body_digest="b" * 64), action)

    assert rejected.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert [violation.field for violation in rejected.value.violations] == ["request_id"]
    assert action.runs == 1
    assert await refunded_minor(sessions) == 100


async def test_request_ids_of_different_owners_and_rpcs_do_not_collide(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS)
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
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS)
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
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS)
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
    idempotency = IdempotencyRecords(
        records_table, fingerprints=FINGERPRINTS, key_ring=KeyRing.development("test")
    )
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
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS)

    async def insert_a_duplicate(uow: UnitOfWork) -> bytes:
        await uow.session.execute(insert(balances).values(account_id="acct-1", refunded_minor=0))
        return b""

    with pytest.raises(IntegrityError):
        await idempotency.run_idempotent(new_uow, refund_key(), insert_a_duplicate)

    assert await count_rows(sessions, records_table) == 0


async def test_lookup_and_store_inside_a_unit_of_work(
    new_uow: Callable[[], UnitOfWork],
) -> None:
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS)

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
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS, clock=clock)
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


def sign_in_request(password: str = "correct horse battery staple") -> SignInRequest:
    """A request whose body holds a password, as SignIn's does."""
    return SignInRequest(
        request_id="req-1",
        identifier=contact_pb2.Contact(email="owner@example.com"),
        password=password,
    )


def plain_sha256_of_body(request: SignInRequest) -> str:
    body = SignInRequest()
    body.CopyFrom(request)
    body.ClearField("request_id")
    return hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()


def fingerprints_under(*kids: str) -> BlindIndex:
    return BlindIndex.from_spec(
        format_key_spec([generate_key(kid) for kid in kids]), context=REQUEST_FINGERPRINT_CONTEXT
    )


async def stored_fingerprints(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessions() as session:
        rows = await session.execute(select(records_table.c.owner, records_table.c.fingerprint))
    return {row.owner: row.fingerprint for row in rows}


async def answer_ok(uow: UnitOfWork) -> bytes:
    return b"ok"


async def test_the_stored_fingerprint_is_not_a_plain_hash_of_a_body_holding_a_password(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    """With the table and the contact, a word list must not find the password at SHA-256
    speed: the fingerprint needs the service's key."""
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS)
    request = sign_in_request()
    key = IdempotencyKey.for_request(SCOPE, "anonymous", request)

    await idempotency.run_idempotent(new_uow, key, answer_ok)

    stored = (await stored_fingerprints(sessions))["anonymous"]
    assert stored != plain_sha256_of_body(request)
    assert stored != key.body_digest
    assert request.password not in repr(key)


async def test_two_keys_give_the_same_body_different_fingerprints(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    request = sign_in_request()
    for owner, kid in (("service-a", "a1"), ("service-b", "b1")):
        records = IdempotencyRecords(records_table, fingerprints=fingerprints_under(kid))
        await records.run_idempotent(
            new_uow, IdempotencyKey.for_request(SCOPE, owner, request), answer_ok
        )

    stored = await stored_fingerprints(sessions)
    assert stored["service-a"] != stored["service-b"]


async def test_a_replay_with_the_same_body_replays_and_another_body_is_refused(
    new_uow: Callable[[], UnitOfWork],
) -> None:
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS)
    action = RefundAction()
    first = IdempotencyKey.for_request(SCOPE, "anonymous", sign_in_request())

    answer = await idempotency.run_idempotent(new_uow, first, action)
    replayed = await idempotency.run_idempotent(
        new_uow, IdempotencyKey.for_request(SCOPE, "anonymous", sign_in_request()), action
    )
    with pytest.raises(InvalidArgument) as refused:
        await idempotency.run_idempotent(
            new_uow,
            IdempotencyKey.for_request(SCOPE, "anonymous", sign_in_request("another password")),
            action,
        )

    assert replayed == answer
    assert action.runs == 1
    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"


async def test_records_made_before_a_key_rotation_still_replay(
    new_uow: Callable[[], UnitOfWork],
) -> None:
    old, new = generate_key("old"), generate_key("new")
    before = IdempotencyRecords(
        records_table,
        fingerprints=BlindIndex([old], context=REQUEST_FINGERPRINT_CONTEXT),
    )
    after = IdempotencyRecords(
        records_table,
        fingerprints=BlindIndex([new, old], context=REQUEST_FINGERPRINT_CONTEXT),
    )
    action = RefundAction()
    key = IdempotencyKey.for_request(SCOPE, "anonymous", sign_in_request())

    answer = await before.run_idempotent(new_uow, key, action)
    replayed = await after.run_idempotent(new_uow, key, action)

    assert replayed == answer
    assert action.runs == 1


async def test_the_purge_removes_records_past_their_retention_and_keeps_fresh_ones(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    clock = Clock(datetime(2024, 1, 1, tzinfo=UTC))
    idempotency = IdempotencyRecords(records_table, fingerprints=FINGERPRINTS, clock=clock)
    purge = RetentionPurge(idempotency, sessions)
    async with new_uow() as uow:
        await idempotency.store(uow.session, refund_key(request_id="expired"), b"")
        clock.now += timedelta(days=2)
        await idempotency.store(uow.session, refund_key(request_id="fresh"), b"")
        await uow.commit()
    clock.now += IDEMPOTENCY_RETENTION - timedelta(days=1)

    purged = await purge.run_once()

    assert purged == 1
    async with sessions() as session:
        assert list(await session.scalars(select(records_table.c.request_id))) == ["fresh"]


class StopAfterPurging(IdempotencyRecords):
    """Records that stop the purge loop once it purged: the test needs no timing."""

    def __init__(self, stop: asyncio.Event, clock: Clock) -> None:
        super().__init__(records_table, fingerprints=FINGERPRINTS, clock=clock)
        self.stop = stop
        self.passes = 0

    async def purge_expired(self, session: AsyncSession) -> int:
        self.passes += 1
        self.stop.set()
        return await super().purge_expired(session)


async def test_the_purge_loop_purges_at_once_and_ends_when_stopped(
    sessions: async_sessionmaker[AsyncSession], new_uow: Callable[[], UnitOfWork]
) -> None:
    clock = Clock(datetime(2024, 1, 1, tzinfo=UTC))
    stop = asyncio.Event()
    idempotency = StopAfterPurging(stop, clock)
    async with new_uow() as uow:
        await idempotency.store(uow.session, refund_key(request_id="expired"), b"")
        clock.now += IDEMPOTENCY_RETENTION + timedelta(seconds=1)
        await idempotency.store(uow.session, refund_key(request_id="fresh"), b"")
        await uow.commit()

    await asyncio.wait_for(RetentionPurge(idempotency, sessions).run_forever(stop), timeout=30)

    assert idempotency.passes == 1
    async with sessions() as session:
        assert list(await session.scalars(select(records_table.c.request_id))) == ["fresh"]
