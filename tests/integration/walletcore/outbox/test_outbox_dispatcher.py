"""The outbox against real databases: committed events arrive, nothing is lost or doubled.

The receiver stands in for an SMTP server or webhook that de-duplicates by the event id the
adapters send as Message-ID / Idempotency-Key: a redelivery after a crash shows up as a repeated
id, never as a second distinct message.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from walletcore.outbox import (
    Backoff,
    Handler,
    OutboxDispatcher,
    OutboxEvent,
    add_event,
    define_outbox_table,
)

LEASE = timedelta(seconds=30)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Receiver:
    """Records every delivery it gets, as a peer's access log would."""

    deliveries: list[str] = field(default_factory=list)
    payloads: dict[str, Any] = field(default_factory=dict)

    async def __call__(self, event: OutboxEvent) -> None:
        # Yield, as a network call would, so concurrent dispatchers interleave.
        await asyncio.sleep(0)
        self.deliveries.append(event.event_id)
        self.payloads[event.event_id] = dict(event.payload)


@dataclass
class Outbox:
    engine: AsyncEngine
    table: sa.Table
    clock: FakeClock

    def dispatcher(self, handler: Handler, **options: Any) -> OutboxDispatcher:
        options.setdefault("lease", LEASE)
        return OutboxDispatcher(
            self.engine, self.table, {"email": handler}, clock=self.clock, **options
        )

    async def add(
        self, payload: dict[str, Any] | None = None, *, commit: bool = True, **options: Any
    ) -> str:
        async with AsyncSession(self.engine) as session:
            event_id = await add_event(
                session,
                self.table,
                options.pop("topic", "email"),
                payload or {"template": "security_notice", "account": "account-1"},
                now=self.clock(),
                **options,
            )
            if commit:
                await session.commit()
        return event_id

    async def row(self, event_id: str) -> sa.Row[Any]:
        async with self.engine.connect() as conn:
            result = await conn.execute(sa.select(self.table).where(self.table.c.id == event_id))
            return result.one()


async def create_outbox_table(engine: AsyncEngine) -> sa.Table:
    metadata = sa.MetaData()
    table = define_outbox_table(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return table


@pytest.fixture
async def outbox(database_url: str) -> AsyncIterator[Outbox]:
    engine = create_async_engine(database_url)
    yield Outbox(engine, await create_outbox_table(engine), FakeClock())
    await engine.dispose()


async def crash_inside_handler(dispatcher: OutboxDispatcher, entered: asyncio.Event) -> None:
    """Run a batch and kill it while its handler is busy, leaving the claim behind."""
    run = asyncio.create_task(dispatcher.run_once())
    await asyncio.wait_for(entered.wait(), timeout=5)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


def hanging_handler(entered: asyncio.Event, before_hanging: Handler | None = None) -> Handler:
    async def handle(event: OutboxEvent) -> None:
        if before_hanging is not None:
            await before_hanging(event)
        entered.set()
        await asyncio.Event().wait()

    return handle


async def test_an_event_of_a_rolled_back_transaction_is_never_delivered(outbox: Outbox) -> None:
    receiver = Receiver()
    await outbox.add(commit=False)

    result = await outbox.dispatcher(receiver).run_once()

    assert result.claimed == 0
    assert receiver.deliveries == []


async def test_a_committed_event_is_delivered_exactly_once(outbox: Outbox) -> None:
    receiver = Receiver()
    dispatcher = outbox.dispatcher(receiver)
    event_id = await outbox.add({"template": "password_reset", "account": "account-9"})

    first = await dispatcher.run_once()
    again = await dispatcher.run_once()
    outbox.clock.advance(LEASE * 2)
    after_lease = await dispatcher.run_once()

    assert (first.claimed, first.delivered, first.failed) == (1, 1, 0)
    assert again.claimed == after_lease.claimed == 0
    assert receiver.deliveries == [event_id]
    assert receiver.payloads[event_id] == {"template": "password_reset", "account": "account-9"}
    row = await outbox.row(event_id)
    assert row.delivered_at == outbox.clock.now - LEASE * 2
    assert row.attempts == 1


async def test_a_failed_delivery_is_retried_after_the_backoff(outbox: Outbox) -> None:
    receiver = Receiver()
    failures = [ConnectionRefusedError("smtp.example.test refused alice@example.test")]

    async def flaky(event: OutboxEvent) -> None:
        if failures:
            raise failures.pop()
        await receiver(event)

    dispatcher = outbox.dispatcher(flaky, backoff=Backoff(initial=timedelta(seconds=10)))
    event_id = await outbox.add()

    failed = await dispatcher.run_once()
    row_after_failure = await outbox.row(event_id)
    too_early = await dispatcher.run_once()
    outbox.clock.advance(timedelta(seconds=10))
    retried = await dispatcher.run_once()

    assert failed.failed == 1
    assert row_after_failure.last_error == "ConnectionRefusedError"
    assert row_after_failure.available_at == outbox.clock.now
    assert too_early.claimed == 0
    assert retried.delivered == 1
    assert receiver.deliveries == [event_id]
    assert (await outbox.row(event_id)).attempts == 2


async def test_retries_back_off_exponentially_up_to_the_cap(outbox: Outbox) -> None:
    async def refuse(event: OutboxEvent) -> None:
        raise TimeoutError

    backoff = Backoff(initial=timedelta(seconds=1), maximum=timedelta(seconds=4))
    dispatcher = outbox.dispatcher(refuse, backoff=backoff)
    event_id = await outbox.add()

    delays = []
    for _ in range(4):
        assert (await dispatcher.run_once()).failed == 1
        delay = (await outbox.row(event_id)).available_at - outbox.clock.now
        delays.append(delay.total_seconds())
        outbox.clock.advance(delay)

    assert delays == [1, 2, 4, 4]


async def test_an_abandoned_claim_is_delivered_by_another_dispatcher_after_its_lease(
    outbox: Outbox,
) -> None:
    receiver = Receiver()
    entered = asyncio.Event()
    crashed = outbox.dispatcher(hanging_handler(entered))
    survivor = outbox.dispatcher(receiver)
    event_id = await outbox.add()

    await crash_inside_handler(crashed, entered)
    during_lease = await survivor.run_once()
    outbox.clock.advance(LEASE)
    after_lease = await survivor.run_once()

    assert during_lease.claimed == 0
    assert after_lease.delivered == 1
    assert receiver.deliveries == [event_id]
    assert (await outbox.row(event_id)).attempts == 2


async def test_a_crash_between_sending_and_recording_redelivers_the_same_event_id(
    outbox: Outbox,
) -> None:
    receiver = Receiver()
    entered = asyncio.Event()
    crashed = outbox.dispatcher(hanging_handler(entered, before_hanging=receiver))
    survivor = outbox.dispatcher(receiver)
    event_id = await outbox.add()

    await crash_inside_handler(crashed, entered)
    outbox.clock.advance(LEASE)
    await survivor.run_once()

    assert receiver.deliveries == [event_id, event_id]
    assert len(set(receiver.deliveries)) == 1
    row = await outbox.row(event_id)
    assert row.attempts == 2
    assert row.delivered_at is not None


async def test_a_dispatcher_whose_lease_expired_cannot_release_the_new_claim(
    outbox: Outbox,
) -> None:
    release_late = asyncio.Event()
    late_entered, current_entered = asyncio.Event(), asyncio.Event()

    async def late_failure(event: OutboxEvent) -> None:
        late_entered.set()
        await release_late.wait()
        raise ConnectionResetError

    late = outbox.dispatcher(late_failure)
    current = outbox.dispatcher(hanging_handler(current_entered))
    third = outbox.dispatcher(Receiver())
    event_id = await outbox.add()

    late_run = asyncio.create_task(late.run_once())
    await asyncio.wait_for(late_entered.wait(), timeout=5)
    outbox.clock.advance(LEASE)
    current_run = asyncio.create_task(current.run_once())
    await asyncio.wait_for(current_entered.wait(), timeout=5)
    release_late.set()
    late_result = await late_run
    third_result = await third.run_once()
    current_run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await current_run

    assert late_result.failed == 1
    assert third_result.claimed == 0
    row = await outbox.row(event_id)
    assert row.claimed_until == outbox.clock.now + LEASE
    assert row.last_error is None


async def test_the_same_dedupe_key_stores_and_delivers_one_event(outbox: Outbox) -> None:
    receiver = Receiver()
    first = await outbox.add(dedupe_key="reset:request-1")
    second = await outbox.add(dedupe_key="reset:request-1")
    other = await outbox.add(dedupe_key="reset:request-2")

    await outbox.dispatcher(receiver).run_once()

    assert first == second != other
    assert sorted(receiver.deliveries) == sorted([first, other])


async def test_a_dispatcher_claims_only_the_topics_it_can_deliver(outbox: Outbox) -> None:
    await outbox.add(topic="sms")
    dispatcher = outbox.dispatcher(Receiver())

    assert (await dispatcher.run_once()).claimed == 0
    assert await dispatcher.pending_count() == 1


async def test_a_settled_event_is_never_delivered_and_is_purged_like_a_delivered_one(
    outbox: Outbox,
) -> None:
    receiver = Receiver()
    dispatcher = outbox.dispatcher(receiver)
    decoy_id = await outbox.add(settled=True)

    result = await dispatcher.run_once()
    outbox.clock.advance(LEASE * 2)
    after_lease = await dispatcher.run_once()
    pending = await dispatcher.pending_count()
    row = await outbox.row(decoy_id)
    outbox.clock.advance(timedelta(days=2))
    purged = await dispatcher.purge_delivered(older_than=timedelta(days=1))

    assert result.claimed == after_lease.claimed == 0
    assert receiver.deliveries == []
    assert pending == 0
    assert row.attempts == 0
    assert row.delivered_at is not None
    assert purged == 1


async def test_pending_metrics_follow_the_oldest_undelivered_event(outbox: Outbox) -> None:
    dispatcher = outbox.dispatcher(Receiver())
    empty_age = await dispatcher.oldest_pending_age()
    await outbox.add()
    outbox.clock.advance(timedelta(seconds=10))
    await outbox.add()
    outbox.clock.advance(timedelta(seconds=20))

    pending_before = (await dispatcher.pending_count(), await dispatcher.oldest_pending_age())
    await dispatcher.run_once()
    pending_after = (await dispatcher.pending_count(), await dispatcher.oldest_pending_age())

    assert empty_age == timedelta(0)
    assert pending_before == (2, timedelta(seconds=30))
    assert pending_after == (0, timedelta(0))


async def test_purge_removes_only_events_delivered_long_enough_ago(outbox: Outbox) -> None:
    async def refuse(event: OutboxEvent) -> None:
        raise ConnectionError

    await outbox.add(topic="email")
    await outbox.dispatcher(Receiver()).run_once()
    await outbox.add(topic="email")
    await outbox.dispatcher(refuse).run_once()
    outbox.clock.advance(timedelta(days=2))
    dispatcher = outbox.dispatcher(refuse)

    purged = await dispatcher.purge_delivered(older_than=timedelta(days=1))

    assert purged == 1
    assert await dispatcher.pending_count() == 1


async def test_run_forever_delivers_in_the_background_until_stopped(outbox: Outbox) -> None:
    arrived = asyncio.Event()

    async def handle(event: OutboxEvent) -> None:
        arrived.set()

    stop = asyncio.Event()
    dispatcher = outbox.dispatcher(handle)
    running = asyncio.create_task(dispatcher.run_forever(stop, poll_interval=0.01))
    await outbox.add()

    await asyncio.wait_for(arrived.wait(), timeout=5)
    stop.set()
    await asyncio.wait_for(running, timeout=5)

    assert await dispatcher.pending_count() == 0


async def race_dispatchers(
    make_engine: Callable[[], AsyncEngine], table: sa.Table, events: int
) -> tuple[Counter[str], set[str], list[int]]:
    """Dispatchers on separate connection pools drain the same table concurrently.

    Four rather than two: two settle into taking turns, so claims that forgot to lock their rows
    would rarely collide; four collide on every run.
    """
    engines = [make_engine() for _ in range(4)]
    seeding = AsyncSession(engines[0])
    async with seeding, seeding.begin():
        added = {
            await add_event(seeding, table, "email", {"n": number}) for number in range(events)
        }
    receiver = Receiver()
    share = [0] * len(engines)

    async def drain(index: int) -> None:
        dispatcher = OutboxDispatcher(engines[index], table, {"email": receiver}, batch_size=10)
        while await dispatcher.pending_count():
            share[index] += (await dispatcher.run_once()).delivered

    try:
        await asyncio.gather(*(drain(index) for index in range(len(engines))))
    finally:
        for engine in engines:
            await engine.dispose()
    return Counter(receiver.deliveries), added, share


async def test_racing_dispatchers_on_postgresql_deliver_each_event_once(postgres_url: str) -> None:
    setup = create_async_engine(postgres_url)
    table = await create_outbox_table(setup)
    await setup.dispose()

    counts, added, share = await race_dispatchers(
        lambda: create_async_engine(postgres_url), table, 200
    )

    assert set(counts) == added
    assert set(counts.values()) == {1}
    assert sum(1 for delivered in share if delivered) > 1, "the dispatchers did not race"


async def test_racing_dispatchers_on_one_sqlite_file_deliver_each_event_once(
    sqlite_url: str,
) -> None:
    setup = create_async_engine(sqlite_url)
    table = await create_outbox_table(setup)
    await setup.dispose()

    counts, added, share = await race_dispatchers(
        lambda: create_async_engine(sqlite_url), table, 200
    )

    assert set(counts) == added
    assert set(counts.values()) == {1}
    assert sum(1 for delivered in share if delivered) > 1, "the dispatchers did not race"
