"""Idempotency records: a retried request returns the first answer and changes nothing more.

SPEC 7: an RPC that creates or moves something accepts a client-chosen `request_id`. A retry
with the same id and the same body returns the response of the first call; the same id with a
different body is rejected. Each service keeps the records in its own database:

    idempotency_records = define_idempotency_table(metadata)
    idempotency = IdempotencyRecords(
        idempotency_records,
        fingerprints=BlindIndex.from_spec(key_spec, context=REQUEST_FINGERPRINT_CONTEXT),
    )

and an RPC runs its change through them:

    key = IdempotencyKey.for_request("wallet.refund.v1.RefundService/RequestRefund",
                                     caller.subject, request)
    stored = await idempotency.run_idempotent(
        uow_factory, key, lambda uow: request_refund(uow, request)  # returns response bytes
    )
    return RequestRefundResponse.FromString(stored)

`run_idempotent` keeps the promise under concurrency too. It inserts the record before running
the action, in the action's transaction, so of two concurrent calls with one key only one ever
runs the action: on PostgreSQL the second insert waits for the first transaction and then fails
on the primary key, and the second call answers with the first one's stored response; on SQLite
transactions already run one at a time. If the action raises, nothing is recorded and a retry
runs it again, so errors are not replayed.

A reused id with a different body is INVALID_ARGUMENT on field `request_id`, ErrorInfo reason
`IDEMPOTENCY_KEY_REUSED`. It is the client's mistake and retrying unchanged can never succeed,
which is what INVALID_ARGUMENT means; ABORTED would invite the client to retry.

The body of a request may hold a password, so the records never store a plain hash of it: the
stored fingerprint is an HMAC-SHA256 (`fingerprints`, a blind index under the service's own
configured key) of the body's digest. Without the key, a stolen table gives no way to test
password guesses; with a rotated key ring, records made under a retired key still match until
they expire, so a retired key can be dropped one retention period after the rotation.

Records are kept for `IDEMPOTENCY_RETENTION`, far longer than any client retries, then removed
by `RetentionPurge`, which a service runs as a background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, TypeVar, cast

from google.protobuf.message import Message
from sqlalchemy import (
    Column,
    ColumnElement,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from walletcore.clock import Clock, utc_now
from walletcore.crypto import BlindIndex, KeyRing
from walletcore.db import UnitOfWork, UTCDateTime, is_unique_violation
from walletcore.errors import DomainError, FieldViolation, InvalidArgument

IDEMPOTENCY_RETENTION = timedelta(days=30)
KEY_REUSED_REASON = "IDEMPOTENCY_KEY_REUSED"
MAX_REQUEST_ID_LENGTH = 128
REQUEST_ID_FIELD = "request_id"
REQUEST_FINGERPRINT_CONTEXT = "walletcore.idempotency.request"
"""Separates the fingerprint key derived from a service's key spec from its other uses."""
PURGE_INTERVAL_SECONDS = 3600.0
"""How often expired records are looked for: an hour's worth of records per delete."""

logger = logging.getLogger("walletcore.idempotency")

_Uow = TypeVar("_Uow", bound=UnitOfWork)


def define_idempotency_table(metadata: MetaData, name: str = "idempotency_records") -> Table:
    """The records table in a service's metadata (its migrations create it like any other).

    The primary key (scope, owner, request_id) is the uniqueness concurrent retries rely on.
    """
    return Table(
        name,
        metadata,
        Column("scope", String(200), primary_key=True),  # the RPC
        Column("owner", String(200), primary_key=True),  # the caller's subject
        Column("request_id", String(MAX_REQUEST_ID_LENGTH), primary_key=True),
        # HMAC-SHA256 hex of the request's digest, under the service's fingerprint key.
        Column("fingerprint", String(64), nullable=False),
        Column("response", LargeBinary, nullable=False),
        Column("created_at", UTCDateTime, nullable=False, index=True),
    )


def request_body_digest(request: Message) -> str:
    """Hex sha256 of `request` without its `request_id`, serialized deterministically.

    Deterministic serialization orders map entries, so equal requests hash equally however they
    were built. The digest is compared in memory only: `IdempotencyRecords` stores a keyed hash
    of it, since the body may hold a password.
    """
    if REQUEST_ID_FIELD not in request.DESCRIPTOR.fields_by_name:
        raise ValueError(f"{request.DESCRIPTOR.full_name} has no {REQUEST_ID_FIELD} field")
    body = type(request)()
    body.CopyFrom(request)
    body.ClearField(REQUEST_ID_FIELD)
    return hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """Which request this is: `scope` (the RPC), `owner` (the caller's subject), the client's
    `request_id`, and the `body_digest` of the request's body (never stored as it is)."""

    scope: str
    owner: str
    request_id: str
    body_digest: str = field(repr=False)

    @classmethod
    def for_request(cls, scope: str, owner: str, request: Message) -> IdempotencyKey:
        """The key of a request message; raises InvalidArgument for a missing or bad id."""
        request_id: str = getattr(request, REQUEST_ID_FIELD, "")
        _validate_request_id(request_id)
        return cls(scope, owner, request_id, request_body_digest(request))


def _validate_request_id(request_id: str) -> None:
    if not request_id:
        problem = "is required"
    elif len(request_id) > MAX_REQUEST_ID_LENGTH:
        problem = f"must be at most {MAX_REQUEST_ID_LENGTH} characters"
    elif not request_id.isprintable():
        problem = "must contain printable characters only"
    else:
        return
    raise InvalidArgument([FieldViolation(REQUEST_ID_FIELD, problem)])


def _key_reused() -> InvalidArgument:
    return InvalidArgument(
        [FieldViolation(REQUEST_ID_FIELD, "was already used for a different request")],
        "this request_id was already used for a different request",
        reason=KEY_REUSED_REASON,
    )


class CommittedRefusal(Exception):
    """Raised by an action whose refusal changed state that must last, such as a wrong code
    counting against its limit. `run_idempotent` then commits those changes, records no
    response (a retry is checked again), and raises `error` to the client."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(error.message)
        self.error = error


class IdempotencyRecords:
    """Reads and writes one service's idempotency records table.

    `fingerprints` keys the stored fingerprints of request bodies (build it with
    `REQUEST_FINGERPRINT_CONTEXT` from the service's configured key spec). With a `key_ring`,
    stored responses are encrypted, bound to their key: a response may carry secrets the
    service otherwise keeps only hashed (a new session's refresh token).
    """

    label: Final = "idempotency records"

    def __init__(
        self,
        table: Table,
        *,
        fingerprints: BlindIndex,
        clock: Clock = utc_now,
        key_ring: KeyRing | None = None,
        retention: timedelta = IDEMPOTENCY_RETENTION,
    ) -> None:
        self._table = table
        self._fingerprints = fingerprints
        self._clock = clock
        self._key_ring = key_ring
        self._retention = retention

    async def lookup(self, session: AsyncSession, key: IdempotencyKey) -> bytes | None:
        """The stored response for `key`, or None when this request was not recorded yet.

        Raises InvalidArgument (reason IDEMPOTENCY_KEY_REUSED) when the request id was recorded
        with a different body.
        """
        row = (
            await session.execute(
                select(self._table.c.fingerprint, self._table.c.response).where(self._matches(key))
            )
        ).one_or_none()
        if row is None:
            return None
        if not self._same_body(row.fingerprint, key):
            raise _key_reused()
        return self._open(key, bytes(row.response))

    async def store(self, session: AsyncSession, key: IdempotencyKey, response: bytes) -> None:
        """Record `response` for `key`, in the same transaction as the change it answers.

        Raises IntegrityError (`is_unique_violation`) when the key is already recorded, at the
        latest on commit.
        """
        await session.execute(
            insert(self._table).values(
                scope=key.scope,
                owner=key.owner,
                request_id=key.request_id,
                fingerprint=self._fingerprints.compute(key.body_digest),
                response=self._seal(key, response),
                created_at=self._clock(),
            )
        )

    async def run_idempotent(
        self,
        uow_factory: Callable[[], _Uow],
        key: IdempotencyKey,
        action: Callable[[_Uow], Awaitable[bytes]],
    ) -> bytes:
        """Run `action` once per key in a new unit of work and return its response bytes.

        A repeated key returns the stored response without running `action`; a key reused with
        another body raises InvalidArgument (IDEMPOTENCY_KEY_REUSED). `action` makes its change
        through the unit of work it is given and must not commit; exceptions it raises pass
        through and nothing is recorded.
        """
        try:
            async with uow_factory() as uow:
                stored = await self.lookup(uow.session, key)
                if stored is not None:
                    return stored
                # Claiming the key first makes a concurrent twin wait here, before its action.
                await self.store(uow.session, key, b"")
                try:
                    response = await action(uow)
                except CommittedRefusal as refusal:
                    await self._forget(uow.session, key)
                    await uow.commit()
                    raise refusal.error from None
                await self._replace_response(uow.session, key, response)
                await uow.commit()
                return response
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            lost_race = exc
        async with uow_factory() as uow:
            winner = await self.lookup(uow.session, key)
        if winner is None:
            # The violation came from the action's own tables, not from a concurrent twin.
            raise lost_race
        return winner

    async def purge_older_than(self, session: AsyncSession, cutoff: datetime) -> int:
        """Delete the records created before `cutoff`; returns how many were deleted."""
        result = await session.execute(delete(self._table).where(self._table.c.created_at < cutoff))
        return cast(CursorResult[Any], result).rowcount

    async def purge_expired(self, session: AsyncSession) -> int:
        """Delete the records older than the retention, by this records' clock."""
        return await self.purge_older_than(session, self._clock() - self._retention)

    def _same_body(self, stored_fingerprint: str, key: IdempotencyKey) -> bool:
        # Every key of the ring is tried, so records made before a rotation still match.
        return any(
            hmac.compare_digest(stored_fingerprint, candidate)
            for candidate in self._fingerprints.candidates(key.body_digest)
        )

    async def _replace_response(
        self, session: AsyncSession, key: IdempotencyKey, response: bytes
    ) -> None:
        await session.execute(
            update(self._table).where(self._matches(key)).values(response=self._seal(key, response))
        )

    async def _forget(self, session: AsyncSession, key: IdempotencyKey) -> None:
        await session.execute(delete(self._table).where(self._matches(key)))

    def _seal(self, key: IdempotencyKey, response: bytes) -> bytes:
        if self._key_ring is None or not response:
            return response
        return self._key_ring.encrypt(response, associated_data=_associated_data(key))

    def _open(self, key: IdempotencyKey, stored: bytes) -> bytes:
        if self._key_ring is None or not stored:
            return stored
        return self._key_ring.decrypt(stored, associated_data=_associated_data(key))

    def _matches(self, key: IdempotencyKey) -> ColumnElement[bool]:
        columns = self._table.c
        return and_(
            columns.scope == key.scope,
            columns.owner == key.owner,
            columns.request_id == key.request_id,
        )


def _associated_data(key: IdempotencyKey) -> bytes:
    return "\x1f".join(("idempotency", key.scope, key.owner, key.request_id)).encode()


class ExpiringRows(Protocol):
    """Rows a service deletes once they serve no purpose any more: what `RetentionPurge`
    purges (`IdempotencyRecords`, `walletcore.grants.ExpiredGrantRows`)."""

    @property
    def label(self) -> str:
        """What the rows are, for the purge's log lines."""
        ...

    async def purge_expired(self, session: AsyncSession) -> int:
        """Deletes what is expired now, in `session`'s transaction; how many rows went."""
        ...


class RetentionPurge:
    """Deletes a service's expired rows of one kind (idempotency records past their retention,
    consumed grants past their use), in a transaction of its own, once now and then every
    `interval_seconds` until stopped.

        purge = RetentionPurge(idempotency, session_factory(engine))
        BackgroundTask("idempotency-purge", lambda: run_until_shutdown(server, purge.run_forever))

    Several replicas may purge at once: each delete only removes what is expired anyway.
    """

    def __init__(
        self,
        rows: ExpiringRows,
        sessions: async_sessionmaker[AsyncSession],
        *,
        interval_seconds: float = PURGE_INTERVAL_SECONDS,
    ) -> None:
        self._rows = rows
        self._sessions = sessions
        self._interval_seconds = interval_seconds

    async def run_once(self) -> int:
        """Purges what is expired now; returns how many rows were deleted."""
        async with self._sessions() as session, session.begin():
            return await self._rows.purge_expired(session)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Purges until `stop` is set; a failed pass is logged and tried again later (the
        rows only wait a little longer)."""
        while not stop.is_set():
            try:
                deleted = await self.run_once()
            except Exception as exc:
                logger.warning(
                    "retention purge failed",
                    extra={"rows": self._rows.label, "error": type(exc).__name__},
                )
            else:
                if deleted:
                    logger.info(
                        "expired rows purged", extra={"rows": self._rows.label, "deleted": deleted}
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_seconds)
