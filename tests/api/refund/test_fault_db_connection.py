"""Fault: PostgreSQL ends refund's connections in the middle of RequestRefund's transaction.

The test holds the payment's row lock, so each RequestRefund stops inside its transaction
(its idempotency record written, waiting to lock the payment); then it terminates exactly those
backends with `pg_terminate_backend`: the ones of refund's own database (created for this test
alone) waiting on a lock. Nothing of the requests is left, the clients get UNAVAILABLE, and a
retry with the same request_id makes the refund once; a second retry returns that refund.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.refund.adapters import tables
from tests.api.auth.harness import request_id
from tests.api.refund.conftest import RefundTestApp
from tests.support.faults import code_of, eventually, report_fault
from walletcore.db import create_engine

pytestmark = pytest.mark.parametrize("auth_backend", ["postgresql"], indirect=True)

REQUESTS = 3
AMOUNT = 1_000

# Refund's connections waiting for a lock in refund's own database: the test's lock holder is
# not waiting, and no other test's connection is in this database.
_WAITING = sa.text(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
)
_TERMINATE = sa.text("SELECT pg_terminate_backend(:pid)")


@pytest.fixture
async def database(refund_app: RefundTestApp) -> AsyncIterator[AsyncConnection]:
    """A connection of the test's own to refund's database, outside refund's pools."""
    engine = create_engine(str(refund_app.app.settings.database_url))
    async with engine.connect() as connection:
        yield connection
    await engine.dispose()


async def counts(connection: AsyncConnection, payment_id: str) -> tuple[int, int, int]:
    """(refunds, idempotency records, reserved minor units) as committed now."""
    async with connection.begin():
        refunds = await connection.scalar(sa.select(sa.func.count()).select_from(tables.refunds))
        records = await connection.scalar(
            sa.select(sa.func.count()).select_from(tables.idempotency_records)
        )
        reserved = await connection.scalar(
            sa.select(tables.payments.c.reserved_minor).where(
                tables.payments.c.payment_id == payment_id
            )
        )
    return int(refunds or 0), int(records or 0), int(reserved or 0)


async def test_connections_killed_mid_transaction_write_nothing_and_a_retry_succeeds_once(
    refund_app: RefundTestApp, database: AsyncConnection
) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder, 100_000)
    ids = [request_id() for _ in range(REQUESTS)]
    before = await counts(database, payment.payment_id)

    lock = await database.begin()
    await database.execute(
        sa.select(tables.payments.c.payment_id)
        .where(tables.payments.c.payment_id == payment.payment_id)
        .with_for_update()
    )
    calls = [
        asyncio.ensure_future(
            code_of(refund_app.request(holder, payment.payment_id, AMOUNT, rid=rid))
        )
        for rid in ids
    ]
    killer = create_engine(str(refund_app.app.settings.database_url))
    try:
        async with killer.connect() as admin:
            waiting: list[int] = []

            async def all_waiting() -> bool:
                waiting[:] = list((await admin.execute(_WAITING)).scalars())
                await admin.commit()
                return len(waiting) == REQUESTS

            await eventually(all_waiting, f"{REQUESTS} RequestRefund transactions on the lock")
            for pid in waiting:
                await admin.execute(_TERMINATE, {"pid": pid})
            await admin.commit()
        answers = await asyncio.gather(*calls)
    finally:
        await lock.rollback()
        await killer.dispose()

    assert answers == [grpc.StatusCode.UNAVAILABLE] * REQUESTS
    after_kill = await counts(database, payment.payment_id)
    assert after_kill == before == (0, before[1], 0)

    first = [await refund_app.request(holder, payment.payment_id, AMOUNT, rid=rid) for rid in ids]
    again = [await refund_app.request(holder, payment.payment_id, AMOUNT, rid=rid) for rid in ids]
    assert [r.refund_id for r in again] == [r.refund_id for r in first]
    assert len({r.refund_id for r in first}) == REQUESTS
    refunds, records, reserved = await counts(database, payment.payment_id)
    assert (refunds, records - before[1], reserved) == (REQUESTS, REQUESTS, REQUESTS * AMOUNT)

    report_fault(
        "PostgreSQL backends terminated mid-transaction (refund RequestRefund)",
        f"{len(waiting)} backends killed while waiting on the payment lock: "
        f"{answers.count(grpc.StatusCode.UNAVAILABLE)}/{REQUESTS} clients UNAVAILABLE, "
        f"no refund, no idempotency record of theirs, 0 reserved left; retries with the same "
        f"request_id: {REQUESTS} refunds made once, {REQUESTS} repeats answered the same refund, "
        f"reserved {reserved} = {REQUESTS} x {AMOUNT}",
    )
