"""Transactional outbox: notifications are written with the state change and delivered later.

A service that changes state and must tell someone about it (an SMS code, a security notice)
calls `add_event` on the session of the same transaction, so the notification exists if and only
if the change committed. An `OutboxDispatcher` in the background claims due rows, hands each to
the handler registered for its topic, and marks it delivered.

Delivery guarantees, and why they are what they are:

- Never lost. A row stays pending until a handler has returned for it and the dispatcher that
  claimed it has recorded `delivered_at`. A failed handler schedules a retry with capped
  exponential backoff; a dispatcher that dies holding a claim only holds a lease, and once
  `claimed_until` passes any dispatcher claims the row again.
- Never sent twice for one event. Exactly-once delivery to a remote SMTP or HTTP peer cannot be
  had in general: a dispatcher can crash after the peer accepted the message and before the row
  is marked, and the next dispatcher cannot tell "sent" from "not sent". So the outbox delivers
  at least once and makes delivery idempotent end to end instead. Every `OutboxEvent` carries
  a stable `event_id` (the row's id, the same on every attempt), and adapters must pass it to the
  peer as the e-mail `Message-ID` or the webhook's `Idempotency-Key` header, so a redelivery is
  recognised by the receiver as the same message. Within the outbox, claims are exclusive
  (`FOR UPDATE SKIP LOCKED` on PostgreSQL, one atomic UPDATE on SQLite) and only the holder of
  the current claim token may mark a row, so concurrent dispatchers never both deliver an
  event in the normal course; redelivery happens only after a crash or an expired lease.
- Given up only when retrying cannot help. A handler raises `UndeliverableEvent` when the peer
  refused the event for good (an SMTP 5xx, an HTTP 400); the row is then settled without
  further attempts: `delivered_at` set and the reason in `last_error`, which is how an abandoned
  event differs from a delivered one (whose `last_error` is cleared). A handler raises
  `RetryLater` when the peer failed for now with a reason fit for a log (an SMTP server that
  offers no STARTTLS); any other exception is retried and logged by its class name only.
- The same logical event added twice (a retried request) is stored once when the caller passes
  a `dedupe_key`, for as long as the delivered row is kept (see `purge_delivered`).

Handlers run outside any database transaction, and each is bounded by what is left of its lease,
so a hung peer cannot keep a claim that another dispatcher has since taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from walletcore.clock import Clock, utc_now
from walletcore.db import Executor, UTCDateTime, dialect_name

logger = logging.getLogger(__name__)

_TOPIC_MAX = 100
_DEDUPE_KEY_MAX = 200
_ERROR_MAX = 200


def define_outbox_table(metadata: sa.MetaData, name: str = "outbox") -> sa.Table:
    table = sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Uuid(as_uuid=False), primary_key=True),
        sa.Column("topic", sa.String(_TOPIC_MAX), nullable=False),
        sa.Column("dedupe_key", sa.String(_DEDUPE_KEY_MAX), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("available_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("claim_token", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(_ERROR_MAX), nullable=True),
        # NULL dedupe keys never conflict, so events without one are all kept.
        sa.UniqueConstraint("topic", "dedupe_key", name=f"uq_{name}_topic_dedupe_key"),
    )
    pending = table.c.delivered_at.is_(None)
    # The dispatcher only ever scans pending rows; delivered history stays out of the index.
    sa.Index(
        f"ix_{name}_pending_available_at",
        table.c.available_at,
        postgresql_where=pending,
        sqlite_where=pending,
    )
    return table


async def add_event(
    executor: Executor,
    table: sa.Table,
    topic: str,
    payload: Mapping[str, Any],
    *,
    dedupe_key: str | None = None,
    now: datetime | None = None,
    settled: bool = False,
) -> str:
    """Write an event in the caller's transaction and return its `event_id`.

    With a `dedupe_key`, an event of the same topic and key that already exists is kept as it
    is and its id returned, so a retried request does not notify twice.

    A `settled` event is written by the same statement but stored as delivered already: no
    dispatcher ever claims it and `purge_delivered` removes it with the delivered ones. It is
    for work that must cost what a real notification costs and send nothing (the decoy of an
    enumeration-safe start, which answers a stranger exactly as it answers an account holder).
    """
    if not topic or len(topic) > _TOPIC_MAX:
        raise ValueError(f"topic must be 1 to {_TOPIC_MAX} characters")
    if dedupe_key is not None and not 0 < len(dedupe_key) <= _DEDUPE_KEY_MAX:
        raise ValueError(f"dedupe_key must be 1 to {_DEDUPE_KEY_MAX} characters")
    created_at = now or utc_now()
    event_id = str(uuid.uuid4())
    values = {
        "id": event_id,
        "topic": topic,
        "dedupe_key": dedupe_key,
        "payload": json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        "created_at": created_at,
        "available_at": created_at,
        "attempts": 0,
        # Always given, so a settled event is written by the very statement a pending one is.
        "delivered_at": created_at if settled else None,
    }
    if dedupe_key is None:
        await executor.execute(sa.insert(table).values(values))
        return event_id
    insert = _dialect_insert(executor, table).values(values)
    inserted = await executor.execute(
        insert.on_conflict_do_nothing(index_elements=["topic", "dedupe_key"]).returning(table.c.id)
    )
    if (new_id := inserted.scalar_one_or_none()) is not None:
        return str(new_id)
    existing = await executor.execute(
        sa.select(table.c.id).where(table.c.topic == topic, table.c.dedupe_key == dedupe_key)
    )
    return str(existing.scalar_one())


def _dialect_insert(executor: Executor, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    name = dialect_name(executor)
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the outbox supports PostgreSQL and SQLite, not {name}")


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """What a handler receives. `event_id` is the same on every attempt: send it to the peer
    as the Message-ID or Idempotency-Key so a redelivery is recognised as a duplicate."""

    event_id: str
    topic: str
    payload: Mapping[str, Any]
    created_at: datetime
    attempt: int
    """1 on the first delivery attempt; counts attempts lost to crashes too."""


Handler = Callable[[OutboxEvent], Awaitable[None]]


class UndeliverableEvent(Exception):
    """Raised by a handler when no retry can deliver the event; the dispatcher abandons it.

    `reason` is stored in `last_error` and logged, so it must never contain personal data.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(Exception):
    """Raised by a handler when this attempt failed but a later one may succeed.

    Unlike any other exception, whose class name alone is logged, `reason` is logged and stored
    in `last_error`, so an operator sees why (it must never contain personal data).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry n (n >= 1): `initial * multiplier ** (n - 1)`, at most `maximum`."""

    initial: timedelta = timedelta(seconds=1)
    multiplier: float = 2.0
    maximum: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.initial <= timedelta(0) or self.multiplier < 1 or self.maximum < self.initial:
            raise ValueError("backoff needs initial > 0, multiplier >= 1, maximum >= initial")

    def delay(self, failures: int) -> timedelta:
        # An event may fail for days; its growth must saturate at the cap, not overflow.
        try:
            seconds = self.initial.total_seconds() * self.multiplier ** max(failures - 1, 0)
        except OverflowError:
            return self.maximum
        if seconds >= self.maximum.total_seconds():
            return self.maximum
        return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class DispatchResult:
    claimed: int
    delivered: int
    failed: int
    abandoned: int = 0


@dataclass(frozen=True, slots=True)
class _Claim:
    event: OutboxEvent
    token: str
    claimed_until: datetime


class OutboxDispatcher:
    """Claims due events in batches, delivers them to topic handlers and records the outcome.

    Any number of dispatchers may run against one table; each claims only topics it has
    handlers for. `lease` must comfortably exceed the time a whole batch takes to deliver:
    events whose lease ran out before their turn are left for the next claim.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: sa.Table,
        handlers: Mapping[str, Handler],
        *,
        batch_size: int = 50,
        lease: timedelta = timedelta(seconds=60),
        backoff: Backoff | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if not handlers:
            raise ValueError("a dispatcher needs at least one handler")
        if batch_size < 1 or lease <= timedelta(0):
            raise ValueError("batch_size and lease must be positive")
        self._engine = engine
        self._table = table
        self._handlers = dict(handlers)
        self._batch_size = batch_size
        self._lease = lease
        self._backoff = backoff or Backoff()
        self._clock = clock

    async def run_once(self) -> DispatchResult:
        claims = await self._claim_batch()
        delivered = failed = abandoned = 0
        for claim in claims:
            remaining = claim.claimed_until - self._clock()
            if remaining <= timedelta(0):
                # Another dispatcher may hold this event now; the rest of the batch is as late.
                break
            try:
                async with asyncio.timeout(remaining.total_seconds()):
                    await self._handlers[claim.event.topic](claim.event)
            except UndeliverableEvent as exc:
                abandoned += await self._abandon(claim, exc.reason)
            except Exception as exc:
                failed += 1
                await self._record_failure(claim, exc)
            else:
                delivered += await self._mark_delivered(claim)
        return DispatchResult(
            claimed=len(claims), delivered=delivered, failed=failed, abandoned=abandoned
        )

    async def run_forever(self, stop: asyncio.Event, poll_interval: float = 1.0) -> None:
        """Dispatch until `stop` is set; a full batch is followed at once by the next."""
        while not stop.is_set():
            try:
                result = await self.run_once()
            except Exception as exc:
                # The database may be briefly unreachable; the rows wait safely in the table.
                logger.warning("outbox dispatch failed", extra={"error": type(exc).__name__})
            else:
                if result.claimed == self._batch_size:
                    continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_interval)

    async def pending_count(self) -> int:
        async with self._engine.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count()).where(self._table.c.delivered_at.is_(None))
            )
        return int(count or 0)

    async def oldest_pending_age(self) -> timedelta:
        """How long the oldest undelivered event has waited; zero when none waits."""
        async with self._engine.connect() as conn:
            oldest: datetime | None = await conn.scalar(
                sa.select(sa.func.min(self._table.c.created_at)).where(
                    self._table.c.delivered_at.is_(None)
                )
            )
        if oldest is None:
            return timedelta(0)
        return max(self._clock() - oldest, timedelta(0))

    async def purge_delivered(self, older_than: timedelta) -> int:
        """Delete events delivered more than `older_than` ago; returns how many went.

        Keep them at least as long as a caller may retry with the same dedupe key.
        """
        table = self._table
        async with self._engine.begin() as conn:
            result = await conn.execute(
                sa.delete(table).where(table.c.delivered_at < self._clock() - older_than)
            )
        return result.rowcount

    async def _claim_batch(self) -> list[_Claim]:
        table = self._table
        now = self._clock()
        token = str(uuid.uuid4())
        claimed_until = now + self._lease
        due = sa.and_(
            table.c.delivered_at.is_(None),
            table.c.available_at <= now,
            sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until <= now),
            table.c.topic.in_(self._handlers),
        )
        batch = (
            sa.select(table.c.id)
            .where(due)
            .order_by(table.c.available_at, table.c.id)
            .limit(self._batch_size)
        )
        claim = sa.update(table).values(
            claimed_until=claimed_until, claim_token=token, attempts=table.c.attempts + 1
        )
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two statements, not UPDATE ... WHERE id IN (SELECT ... SKIP LOCKED): when that
                # UPDATE waits on a row PostgreSQL may re-run the subquery and exceed its LIMIT.
                # The rows locked here are ours until commit; others skip them without waiting.
                locked = await conn.scalars(batch.with_for_update(skip_locked=True))
                claim = claim.where(table.c.id.in_(locked.all()))
            else:
                # SQLite runs the whole statement under its single write lock, and a read
                # before the write in one transaction could not upgrade under contention.
                claim = claim.where(table.c.id.in_(batch), due)
            claimed = claim.returning(
                table.c.id, table.c.topic, table.c.payload, table.c.created_at, table.c.attempts
            )
            rows = (await conn.execute(claimed)).all()
        claims = [
            _Claim(
                event=OutboxEvent(
                    event_id=str(row.id),
                    topic=row.topic,
                    payload=json.loads(row.payload),
                    created_at=row.created_at,
                    attempt=row.attempts,
                ),
                token=token,
                claimed_until=claimed_until,
            )
            for row in rows
        ]
        claims.sort(key=lambda claim: (claim.event.created_at, claim.event.event_id))
        return claims

    async def _mark_delivered(self, claim: _Claim) -> int:
        marked = await self._settle(
            claim, delivered_at=self._clock(), last_error=None, available_at=None
        )
        if not marked:
            logger.warning(
                "outbox event delivered after its lease was taken over",
                extra={"event_id": claim.event.event_id, "topic": claim.event.topic},
            )
        return int(marked)

    async def _abandon(self, claim: _Claim, reason: str) -> int:
        logger.warning(
            "outbox event abandoned as undeliverable",
            extra={
                "event_id": claim.event.event_id,
                "topic": claim.event.topic,
                "attempt": claim.event.attempt,
                "error": reason[:_ERROR_MAX],
            },
        )
        marked = await self._settle(
            claim, delivered_at=self._clock(), last_error=reason[:_ERROR_MAX], available_at=None
        )
        return int(marked)

    async def _record_failure(self, claim: _Claim, exc: Exception) -> None:
        # The class name only, unless the handler vouched for its reason: messages of SMTP and
        # HTTP errors may quote addresses or numbers.
        reason = exc.reason if isinstance(exc, RetryLater) else type(exc).__name__
        error = reason[:_ERROR_MAX]
        logger.warning(
            "outbox delivery failed",
            extra={
                "event_id": claim.event.event_id,
                "topic": claim.event.topic,
                "attempt": claim.event.attempt,
                "error": error,
            },
        )
        retry_at = self._clock() + self._backoff.delay(claim.event.attempt)
        await self._settle(claim, delivered_at=None, last_error=error, available_at=retry_at)

    async def _settle(
        self,
        claim: _Claim,
        *,
        delivered_at: datetime | None,
        last_error: str | None,
        available_at: datetime | None,
    ) -> bool:
        """Release the claim with an outcome, only if it is still ours."""
        table = self._table
        values: dict[str, Any] = {
            "claimed_until": None,
            "claim_token": None,
            "delivered_at": delivered_at,
            "last_error": last_error,
        }
        if available_at is not None:
            values["available_at"] = available_at
        settle = (
            sa.update(table)
            .where(
                table.c.id == claim.event.event_id,
                table.c.claim_token == claim.token,
                table.c.delivered_at.is_(None),
            )
            .values(values)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(settle)
        return result.rowcount == 1
