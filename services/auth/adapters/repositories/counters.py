"""Counters that stop guessing, in SQL: code failure ledgers, sign-in failure counters, and
the step-up grants already used.

Ledgers and counters are read to decide and then changed, by concurrent requests of one
attacker above all. So `get_or_new` returns them row-locked on PostgreSQL, creating an empty
row first when there is none: a lock needs a row, and without one two concurrent first
failures would each count from zero and one of them would be lost.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.adapters.repositories._sql import insert_if_absent, upsert
from services.auth.adapters.tables import code_failure_ledgers, failure_counters, used_grants
from services.auth.domain.ledger import (
    DEFAULT_CODE_FAILURE_POLICY,
    CodeFailureLedger,
    CodeFailurePolicy,
)
from services.auth.domain.throttling import CounterScope, FailureCounter
from walletcore.db import lock_for_update
from walletcore.grants import SqlConsumedGrants


async def _locked_row(
    session: AsyncSession, table: Table, key: dict[str, str], empty: dict[str, Any]
) -> Row[Any]:
    """The row with `key`, locked until the transaction ends; inserted from `empty` first
    when missing."""
    statement = lock_for_update(
        select(table).where(*(table.c[column] == value for column, value in key.items()))
    )
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        await insert_if_absent(session, table, {**key, **empty}, list(key))
        row = (await session.execute(statement)).one()
    return row


class SqlCodeFailureLedgers:
    def __init__(
        self, session: AsyncSession, policy: CodeFailurePolicy = DEFAULT_CODE_FAILURE_POLICY
    ) -> None:
        self._session = session
        self._policy = policy

    async def get_or_new(self, subject: str) -> CodeFailureLedger:
        row = await _locked_row(
            self._session,
            code_failure_ledgers,
            {"subject": subject},
            {"recent_failures": "[]", "locked_until": None},
        )
        return CodeFailureLedger(
            subject=row.subject,
            recent_failures=[datetime.fromisoformat(at) for at in json.loads(row.recent_failures)],
            locked_until=row.locked_until,
            policy=self._policy,
        )

    async def save(self, ledger: CodeFailureLedger) -> None:
        await upsert(
            self._session,
            code_failure_ledgers,
            {
                "subject": ledger.subject,
                "recent_failures": json.dumps(
                    [at.astimezone(UTC).isoformat() for at in ledger.recent_failures]
                ),
                "locked_until": ledger.locked_until,
            },
            ["subject"],
        )


class SqlFailureCounters:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_or_new(self, scope: CounterScope, key: str) -> FailureCounter:
        row = await _locked_row(
            self._session,
            failure_counters,
            {"scope": scope.value, "key": key},
            {"consecutive_failures": 0, "last_failure_at": None, "last_success_at": None},
        )
        return FailureCounter(
            scope=CounterScope(row.scope),
            key=row.key,
            consecutive_failures=row.consecutive_failures,
            last_failure_at=row.last_failure_at,
            last_success_at=row.last_success_at,
        )

    async def save(self, counter: FailureCounter) -> None:
        await upsert(
            self._session,
            failure_counters,
            {
                "scope": counter.scope.value,
                "key": counter.key,
                "consecutive_failures": counter.consecutive_failures,
                "last_failure_at": counter.last_failure_at,
                "last_success_at": counter.last_success_at,
            },
            ["scope", "key"],
        )


class SqlUsedGrants(SqlConsumedGrants):
    """walletcore's consumed-grant rows, in auth's `used_grants` table."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, used_grants)
