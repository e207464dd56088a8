"""Append-only, tamper-evident audit trail of admin actions.

Entries form a hash chain. Entry n stores `prev_hash`, the `entry_hash` of entry n - 1 (the first
entry chains to `GENESIS_HASH`), and its own `entry_hash`: SHA-256, in lowercase hex, of the
canonical JSON of its fields `seq, occurred_at, actor, actor_role, action, target, details,
prev_hash`. Canonical JSON means keys sorted, no whitespace, UTF-8 without escaping, `occurred_at`
as ISO 8601 in UTC with microseconds (`2024-05-01T12:00:00.000000+00:00`) and `details` as the
JSON object itself. Floats are refused in `details` because JSON libraries print them
differently, which would make hashes depend on the verifier's language; pass integers or strings.

`verify` walks the chain in the database; `export` / `export_jsonl` hand it out in exactly the
shape that was hashed, and `verify_entries` (pure, shared by both) checks such an export, so an
auditor can re-check the trail with any SHA-256 and JSON implementation.

What the chain detects: an edited field, a deleted entry (a gap in `seq`), entries swapped or
inserted in the middle. What it cannot detect on its own: entries cut off the end, or an edit
followed by recomputing every later hash. Record the head (`AuditVerification.head_hash` and its
seq) somewhere the database's writers cannot change, e.g. in exports kept elsewhere, and compare.
`install_append_only_guard` adds triggers that refuse UPDATE and DELETE, so such tampering needs
a deliberate DDL change rather than a stray statement.

Details must never hold secrets or personal data: callers pass references (account id, case id,
ticket reference), because an audit trail is kept long and read widely.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from walletcore.clock import utc_now
from walletcore.db import Executor, UTCDateTime, dialect_name

GENESIS_HASH = "0" * 64
_HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor",
    "actor_role",
    "action",
    "target",
    "details",
    "prev_hash",
)
_TEXT_LIMITS = {"actor": 128, "actor_role": 64, "action": 64, "target": 256}
_EXPORT_LIMIT_MAX = 10_000


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An admin action for a service's audit chain (references, never personal data): what a
    service layer hands its `AuditTrail` port."""

    actor: str
    actor_role: str
    action: str
    target: str
    details: dict[str, str]


class AuditTrail(Protocol):
    """The service layer's port to its audit chain, written in the use case's transaction."""

    async def append(self, record: AuditRecord, now: datetime) -> None: ...


class SqlAuditTrail:
    """The `AuditTrail` port over a service's audit table, appending in the unit of work's
    session (its transaction)."""

    def __init__(self, executor: Executor, table: sa.Table) -> None:
        self._executor = executor
        self._table = table

    async def append(self, record: AuditRecord, now: datetime) -> None:
        await append(
            self._executor,
            self._table,
            actor=record.actor,
            actor_role=record.actor_role,
            action=record.action,
            target=record.target,
            details=record.details,
            now=now,
        )


def define_audit_table(metadata: sa.MetaData, name: str = "audit_log") -> sa.Table:
    return sa.Table(
        name,
        metadata,
        # The primary key makes seq UNIQUE NOT NULL: the last defence against two appenders
        # writing the same position if serialisation ever fails.
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(_TEXT_LIMITS["actor"]), nullable=False),
        sa.Column("actor_role", sa.String(_TEXT_LIMITS["actor_role"]), nullable=False),
        sa.Column("action", sa.String(_TEXT_LIMITS["action"]), nullable=False),
        sa.Column("target", sa.String(_TEXT_LIMITS["target"]), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
    )


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def compute_entry_hash(entry: Mapping[str, Any]) -> str:
    """The hash an entry must carry, from its hashed fields (other keys are ignored)."""
    hashed = {name: entry[name] for name in _HASHED_FIELDS}
    return hashlib.sha256(canonical_json(hashed).encode("utf-8")).hexdigest()


async def append(
    executor: Executor,
    table: sa.Table,
    *,
    actor: str,
    actor_role: str,
    action: str,
    target: str,
    details: Mapping[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Append an entry in the caller's transaction (the caller commits) and return it.

    On PostgreSQL a transaction-scoped advisory lock serialises appenders until the caller's
    commit. SQLite serialises writers itself once the transaction has written; a transaction
    that only read before appending may instead fail with "database is locked" or a duplicate
    seq under contention, and should be retried.
    """
    fields = {"actor": actor, "actor_role": actor_role, "action": action, "target": target}
    for name, value in fields.items():
        if not value or len(value) > _TEXT_LIMITS[name]:
            raise ValueError(f"{name} must be 1 to {_TEXT_LIMITS[name]} characters")
    _check_json_value(details, "details")
    details_text = canonical_json(details)
    if dialect_name(executor) == "postgresql":
        await executor.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(table.name))))
    head = (
        await executor.execute(
            sa.select(table.c.seq, table.c.entry_hash).order_by(table.c.seq.desc()).limit(1)
        )
    ).one_or_none()
    occurred_at = now or utc_now()
    entry: dict[str, Any] = {
        "seq": 1 if head is None else head.seq + 1,
        "occurred_at": _timestamp_text(occurred_at),
        **fields,
        "details": json.loads(details_text),
        "prev_hash": GENESIS_HASH if head is None else head.entry_hash,
    }
    entry["entry_hash"] = compute_entry_hash(entry)
    await executor.execute(
        sa.insert(table).values(
            {**entry, "occurred_at": occurred_at.astimezone(UTC), "details": details_text}
        )
    )
    return entry


@dataclass(frozen=True, slots=True)
class AuditVerification:
    ok: bool
    entries_checked: int
    """Entries that verified, in order, before the first problem (all of them when ok)."""
    first_invalid_seq: int | None
    """Where the chain breaks: the edited entry, or the position of a missing one."""
    problem: str | None
    head_hash: str
    """`entry_hash` of the last entry that verified; keep it elsewhere to detect truncation."""


def verify_entries(
    entries: Iterable[Mapping[str, Any]],
    *,
    after_seq: int = 0,
    prev_hash: str = GENESIS_HASH,
) -> AuditVerification:
    """Check exported entries in order. To check a later page of an export, pass the seq and
    `entry_hash` of the entry just before it as `after_seq` and `prev_hash`."""
    chain = _ChainCheck(after_seq, prev_hash)
    for entry in entries:
        if not chain.accept(entry):
            break
    return chain.result()


async def verify(
    executor: Executor, table: sa.Table, *, page_size: int = 1000
) -> AuditVerification:
    chain = _ChainCheck(0, GENESIS_HASH)
    after_seq = 0
    while True:
        page = await export(executor, table, after_seq=after_seq, limit=page_size)
        for entry in page:
            if not chain.accept(entry):
                return chain.result()
        if len(page) < page_size:
            return chain.result()
        after_seq = page[-1]["seq"]


async def export(
    executor: Executor, table: sa.Table, *, after_seq: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    """Entries with seq > `after_seq`, in order, shaped as they were hashed."""
    if not 0 < limit <= _EXPORT_LIMIT_MAX:
        raise ValueError(f"limit must be 1 to {_EXPORT_LIMIT_MAX}")
    rows = await executor.execute(
        sa.select(table).where(table.c.seq > after_seq).order_by(table.c.seq).limit(limit)
    )
    return [_entry_from_row(row) for row in rows]


async def export_jsonl(
    executor: Executor, table: sa.Table, *, after_seq: int = 0, limit: int = 1000
) -> str:
    """The same entries as `export`, one canonical JSON object per line."""
    entries = await export(executor, table, after_seq=after_seq, limit=limit)
    return "".join(canonical_json(entry) + "\n" for entry in entries)


def install_append_only_guard(connection: sa.Connection, table_name: str = "audit_log") -> None:
    """Create triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).

    Meant for migrations (Alembic hands them a synchronous connection). Whoever may alter the
    schema can still drop the triggers; the hash chain is what makes that visible.
    """
    quote = connection.dialect.identifier_preparer.quote
    table = quote(table_name)
    guard = quote(f"{table_name}_append_only")
    message = "the audit log is append-only"
    if connection.dialect.name == "postgresql":
        statements = [
            f"CREATE OR REPLACE FUNCTION {guard}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = 'insufficient_privilege'; END $$",
            f"CREATE TRIGGER {guard} BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {guard}()",
            f"CREATE TRIGGER {quote(f'{table_name}_no_truncate')} BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {guard}()",
        ]
    elif connection.dialect.name == "sqlite":
        statements = [
            f"CREATE TRIGGER {quote(f'{table_name}_no_{verb.lower()}')} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            for verb in ("UPDATE", "DELETE")
        ]
    else:
        raise NotImplementedError(f"no append-only guard for {connection.dialect.name}")
    for statement in statements:
        connection.exec_driver_sql(statement)


class _ChainCheck:
    """Consumes entries in order and remembers the first break."""

    def __init__(self, after_seq: int, prev_hash: str) -> None:
        self._next_seq = after_seq + 1
        self._prev_hash = prev_hash
        self._checked = 0
        self._problem: str | None = None

    def accept(self, entry: Mapping[str, Any]) -> bool:
        """Check one more entry; False once the chain is broken."""
        self._problem = _problem_with(entry, self._next_seq, self._prev_hash)
        if self._problem is not None:
            return False
        self._prev_hash = entry["entry_hash"]
        self._next_seq += 1
        self._checked += 1
        return True

    def result(self) -> AuditVerification:
        broken = self._problem is not None
        return AuditVerification(
            ok=not broken,
            entries_checked=self._checked,
            first_invalid_seq=self._next_seq if broken else None,
            problem=self._problem,
            head_hash=self._prev_hash,
        )


def _problem_with(entry: Mapping[str, Any], expected_seq: int, expected_prev: str) -> str | None:
    try:
        seq = entry["seq"]
        if type(seq) is not int:
            return f"entry {expected_seq} has no integer seq"
        if seq != expected_seq:
            return f"expected entry {expected_seq}, found entry {seq}"
        if entry["prev_hash"] != expected_prev:
            return f"entry {seq} does not chain to the entry before it"
        if compute_entry_hash(entry) != entry["entry_hash"]:
            return f"entry {seq} does not match its hash"
    except (KeyError, TypeError, ValueError):
        return f"entry {expected_seq} is malformed"
    return None


def _entry_from_row(row: sa.Row[Any]) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "occurred_at": _timestamp_text(row.occurred_at),
        "actor": row.actor,
        "actor_role": row.actor_role,
        "action": row.action,
        "target": row.target,
        "details": _details_from_text(row.details),
        "prev_hash": row.prev_hash,
        "entry_hash": row.entry_hash,
    }


def _details_from_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        # Unparseable details can only come from tampering; kept as text, they fail the hash.
        return text


def _timestamp_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; pass a timezone-aware one")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _check_json_value(value: Any, path: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        raise ValueError(f"{path}: floats have no portable canonical form; use int or str")
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json_value(item, f"{path}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: object keys must be strings")
            _check_json_value(item, f"{path}.{key}")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def _lock_key(table_name: str) -> int:
    """A stable signed 64-bit advisory lock key per table, as pg_advisory_xact_lock takes."""
    digest = hashlib.sha256(f"walletcore.audit:{table_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
