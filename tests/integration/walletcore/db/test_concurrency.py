"""Concurrent writers: exact results on both databases, and unique violations recognised."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Column, ForeignKey, Integer, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from walletcore.db import (
    UnitOfWork,
    create_engine,
    is_unique_violation,
    lock_for_update,
    make_metadata,
    session_factory,
)

metadata = make_metadata()
counters = Table(
    "counters",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", Integer, nullable=False),
)
contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("counter_name", ForeignKey("counters.name")),
    Column("email", String(100), nullable=False, unique=True),
)


@pytest.fixture
async def schema(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(insert(counters).values(name="hits", value=0))
    return engine


async def test_concurrent_read_modify_write_transactions_lose_no_update(
    schema: AsyncEngine,
) -> None:
    # Each writer reads the counter and then writes it: on SQLite that is the read-to-write lock
    # upgrade that fails with "database is locked" unless transactions begin IMMEDIATE.
    sessions = session_factory(schema)

    async def increment() -> None:
        async with UnitOfWork(sessions) as uow:
            current = await uow.session.scalar(
                lock_for_update(select(counters.c.value).where(counters.c.name == "hits"))
            )
            assert current is not None
            await uow.session.execute(
                update(counters).where(counters.c.name == "hits").values(value=current + 1)
            )
            await uow.commit()

    await asyncio.gather(*(increment() for _ in range(20)))

    async with schema.connect() as connection:
        assert (await connection.execute(select(counters.c.value))).scalar_one() == 20


async def test_duplicate_keys_are_unique_violations(schema: AsyncEngine) -> None:
    async with schema.connect() as connection:
        await connection.execute(insert(contacts).values(id=1, email="a@example.com"))
        for duplicate in (
            {"id": 1, "email": "b@example.com"},  # primary key
            {"id": 2, "email": "a@example.com"},  # unique constraint
        ):
            with pytest.raises(IntegrityError) as raised:
                async with connection.begin_nested():
                    await connection.execute(insert(contacts).values(**duplicate))
            assert is_unique_violation(raised.value)


async def test_other_integrity_errors_are_not_unique_violations(schema: AsyncEngine) -> None:
    async with schema.connect() as connection:
        for invalid in (
            {"id": 1, "email": None},  # not null
            {"id": 1, "email": "a@example.com", "counter_name": "missing"},  # foreign key
        ):
            with pytest.raises(IntegrityError) as raised:
                async with connection.begin_nested():
                    await connection.execute(insert(contacts).values(**invalid))
            assert not is_unique_violation(raised.value)


async def test_skip_locked_leaves_out_rows_another_transaction_holds(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(
                insert(counters), [{"name": "first", "value": 0}, {"name": "second", "value": 0}]
            )
        queue = select(counters.c.name).order_by(counters.c.name)
        async with engine.connect() as worker_a, engine.connect() as worker_b:
            taken_by_a = (await worker_a.execute(lock_for_update(queue.limit(1)))).scalar_one()
            taken_by_b = (
                await worker_b.execute(lock_for_update(queue, skip_locked=True))
            ).scalars()

            assert taken_by_a == "first"
            assert list(taken_by_b) == ["second"]
    finally:
        await engine.dispose()
