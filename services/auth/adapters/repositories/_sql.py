"""Row helpers every auth repository shares: origins, conditional inserts, upserts, chunks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar, cast

from sqlalchemy import Row, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.domain.events import Device, Origin, Platform
from walletcore.db import dialect_name

IN_CHUNK: Final = 500
"""Values per IN (...) list: far below what either database allows in one statement."""

_T = TypeVar("_T")


def origin_values(origin: Origin) -> dict[str, str | None]:
    device = origin.device
    return {
        "client_address": origin.client_address,
        "device_id": device.device_id if device else None,
        "device_name": device.device_name if device else None,
        "device_platform": device.platform.value if device else None,
        "device_app_version": device.app_version if device else None,
    }


def origin_from(row: Row[Any]) -> Origin:
    device = None
    if row.device_id is not None:
        device = Device(
            device_id=row.device_id,
            device_name=row.device_name,
            platform=Platform(row.device_platform),
            app_version=row.device_app_version,
        )
    return Origin(client_address=row.client_address, device=device)


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (Core DML results are cursor results)."""
    return cast(CursorResult[Any], result).rowcount


def _dialect_insert(session: AsyncSession, table: Table) -> postgresql.Insert | sqlite.Insert:
    name = dialect_name(session)
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"auth supports PostgreSQL and SQLite, not {name}")


async def insert_if_absent(
    session: AsyncSession, table: Table, values: Mapping[str, Any], key: Sequence[str]
) -> bool:
    """Inserts the row unless one with the same `key` exists; True when it inserted.

    On PostgreSQL a concurrent transaction inserting the same key makes this wait for it and
    then return False, so of two racing callers exactly one gets True.
    """
    statement = (
        _dialect_insert(session, table)
        .values(dict(values))
        .on_conflict_do_nothing(index_elements=list(key))
        .returning(*(table.c[column] for column in key))
    )
    return (await session.execute(statement)).first() is not None


async def upsert(
    session: AsyncSession, table: Table, values: Mapping[str, Any], key: Sequence[str]
) -> None:
    """Inserts the row, or updates every non-key column of the existing one."""
    changes = {column: value for column, value in values.items() if column not in key}
    statement = (
        _dialect_insert(session, table)
        .values(dict(values))
        .on_conflict_do_update(index_elements=list(key), set_=changes)
    )
    await session.execute(statement)


def chunks(values: Sequence[_T], size: int = IN_CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
