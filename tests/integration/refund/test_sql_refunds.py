"""Refund's SQL adapters on SQLite and PostgreSQL, migrated with its Alembic revision: the
rows round-trip, the payout worker runs on them, and on PostgreSQL concurrent refund requests
against one payment never over-refund."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.refund.adapters import tables
from services.refund.adapters.repositories import SqlReads
from services.refund.adapters.uow import SqlRefundUnitOfWork
from services.refund.domain.money import Money
from services.refund.domain.payments import CapturedPayment
from services.refund.domain.policy import GRANT_PURPOSE, RefundPolicy
from services.refund.domain.reasons import Reason
from services.refund.domain.refunds import (
    AttemptState,
    Evidence,
    FailureReason,
    Refund,
    RefundReason,
    RefundState,
)
from services.refund.service import ops
from services.refund.service.context import RefundContext
from services.refund.service.fakes import FakeGateway, FakeHolds, GatewayBehaviour
from services.refund.service.ledger import record_captured_payment
from services.refund.service.payouts import PayoutWorker
from services.refund.service.ports import Page, RefundUnitOfWork
from services.refund.service.requests import RefundRequest, request_refund
from walletcore.db import SingleStatementReads, create_engine, session_factory
from walletcore.errors import FailedPrecondition, PermissionDenied
from walletcore.fakes import FakeClock
from walletcore.migrations import service_migrations_dir, upgrade_to_head
from walletcore.tokens import VerifiedGrant
from walletcore.transactions import Transactions

pytestmark = pytest.mark.integration

ACCOUNT = "acct-1"
CALLS = 60


class StubGrants:
    """Grants named `ok-<n>`, valid for ACCOUNT's pay-1; anything else refused."""

    async def verify(
        self, token: str, *, account_id: str, purpose: str, object_id: str | None = None
    ) -> VerifiedGrant:
        if not token.startswith("ok-") or object_id != "pay-1" or purpose != GRANT_PURPOSE:
            raise PermissionDenied("bad grant", reason="GRANT_INVALID")
        return VerifiedGrant(
            token, account_id, purpose, object_id, datetime.now(UTC) + timedelta(minutes=5)
        )


class _Tx:
    """`Transactions` without request_id records (the api layer's, tested there)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    async def run(self, work):  # type: ignore[no-untyped-def]
        async with SqlRefundUnitOfWork(self._sessions, grants=StubGrants()) as uow:
            result = await work(uow)
            await uow.commit()
            return result

    async def run_idempotent(self, key, work):  # type: ignore[no-untyped-def]
        raise NotImplementedError


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_to_head(database_url, service_migrations_dir("refund"))
    engine = create_engine(database_url, pool_size=CALLS)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 3, 9, 0, tzinfo=UTC))


@pytest.fixture
def ctx(clock: FakeClock) -> RefundContext:
    ids = (f"refund{n:04d}" for n in itertools.count(1))
    holds = FakeHolds(instruments={"card-1": (ACCOUNT, True), "card-2": (ACCOUNT, True)})
    return RefundContext(
        clock=clock,
        new_id=lambda: next(ids),
        policy=RefundPolicy(auto_approve_limits={"CNY": 5_000}, grant_thresholds={"CNY": 20_000}),
        holds=holds,
        gateway=FakeGateway(),
    )


@pytest.fixture
def tx(engine: AsyncEngine) -> Transactions[RefundUnitOfWork]:
    return _Tx(engine)


async def capture(tx: Transactions[RefundUnitOfWork], ctx: RefundContext, minor: int) -> None:
    report = CapturedPayment(
        "pay-1", ACCOUNT, Money(minor, "CNY"), "card-1", ctx.clock() - timedelta(hours=1)
    )
    await tx.run(lambda uow: record_captured_payment(uow, ctx, report))


def body(minor: int, grant: str = "") -> RefundRequest:
    return RefundRequest(
        "pay-1", Money(minor, "CNY"), RefundReason.OTHER, "broken", Evidence("o-1", ("s/1",)), grant
    )


async def test_a_refund_round_trips_with_its_history_attempts_and_notes(
    tx: Transactions[RefundUnitOfWork], ctx: RefundContext
) -> None:
    await capture(tx, ctx, 100_000)
    refund = await tx.run(
        lambda uow: request_refund(uow, ctx, account_id=ACCOUNT, request=body(10_000))
    )
    await tx.run(
        lambda uow: ops.approve_refund(
            uow, ctx, operator_id="op-1", refund_id=refund.refund_id, note="fine"
        )
    )
    assert isinstance(ctx.gateway, FakeGateway)
    ctx.gateway.behaviours = [GatewayBehaviour.ERROR, GatewayBehaviour.PAY]
    await PayoutWorker(tx, ctx).run_once()
    stored = await tx.run(lambda uow: uow.refunds.get(refund.refund_id))
    assert stored is not None
    assert stored.state is RefundState.SUCCEEDED
    assert stored.evidence == Evidence("o-1", ("s/1",))
    assert [t.to_state for t in stored.history] == [
        RefundState.REQUESTED,
        RefundState.APPROVED,
        RefundState.PROCESSING,
        RefundState.SUCCEEDED,
    ]
    assert stored.history[1].actor == "operator:op-1"
    assert [(a.state, a.failure_reason) for a in stored.attempts] == [
        (AttemptState.FAILED, FailureReason.GATEWAY_ERROR),
        (AttemptState.SUCCEEDED, None),
    ]
    assert stored.operator_actions[0].note == "fine"
    assert stored.hold_placed is False
    payments = await tx.run(lambda uow: uow.payments.list_for_account(ACCOUNT, Page(10)))
    assert payments[0].reserved_minor == 10_000


async def test_a_second_report_of_a_payment_is_one_row(
    tx: Transactions[RefundUnitOfWork], ctx: RefundContext, engine: AsyncEngine
) -> None:
    await capture(tx, ctx, 1_000)
    await capture(tx, ctx, 1_000)
    async with engine.connect() as connection:
        count = (await connection.execute(select(tables.payments.c.payment_id))).all()
    assert len(count) == 1


async def test_the_database_refuses_a_reserved_total_above_the_capture(
    tx: Transactions[RefundUnitOfWork], ctx: RefundContext, engine: AsyncEngine
) -> None:
    await capture(tx, ctx, 1_000)
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE payments SET reserved_minor = 1001"))


async def test_two_pending_attempts_for_one_refund_are_refused_by_the_index(
    tx: Transactions[RefundUnitOfWork], ctx: RefundContext, engine: AsyncEngine
) -> None:
    await capture(tx, ctx, 1_000)
    ctx.gateway.behaviours = [GatewayBehaviour.LOSE_REQUEST]  # type: ignore[attr-defined]
    refund = await tx.run(
        lambda uow: request_refund(uow, ctx, account_id=ACCOUNT, request=body(100))
    )
    await PayoutWorker(tx, ctx).run_once()
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(
                tables.payout_attempts.insert().values(
                    attempt_id="x",
                    refund_id=refund.refund_id,
                    seq=9,
                    instrument_id="card-1",
                    amount_minor=100,
                    currency="CNY",
                    state="PENDING",
                    gateway_reference="",
                    gateway_failure_code="",
                    started_at=ctx.clock(),
                )
            )


async def test_a_grant_is_spent_only_with_its_refund(
    tx: Transactions[RefundUnitOfWork], ctx: RefundContext
) -> None:
    await capture(tx, ctx, 100_000)
    with pytest.raises(FailedPrecondition):
        await tx.run(
            lambda uow: request_refund(uow, ctx, account_id=ACCOUNT, request=body(200_000, "ok-1"))
        )
    await tx.run(
        lambda uow: request_refund(uow, ctx, account_id=ACCOUNT, request=body(30_000, "ok-1"))
    )
    with pytest.raises(PermissionDenied) as reused:
        await tx.run(
            lambda uow: request_refund(uow, ctx, account_id=ACCOUNT, request=body(30_000, "ok-1"))
        )
    assert reused.value.reason == "GRANT_ALREADY_USED"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_requests_on_one_payment_never_over_refund(
    tx: Transactions[RefundUnitOfWork], ctx: RefundContext, engine: AsyncEngine
) -> None:
    """60 requests of 1,000 at once against 50,000: exactly 50 are accepted and the reserved
    total equals the sum of accepted refunds, which equals the capture."""
    await capture(tx, ctx, 50_000)
    start = asyncio.Event()

    async def one() -> str:
        await start.wait()
        try:
            refund = await tx.run(
                lambda uow: request_refund(uow, ctx, account_id=ACCOUNT, request=body(1_000))
            )
        except FailedPrecondition as refused:
            return str(refused.reason)
        return refund.state.value

    tasks = [asyncio.create_task(one()) for _ in range(CALLS)]
    await asyncio.sleep(0)
    start.set()
    outcomes = await asyncio.gather(*tasks)
    assert outcomes.count(RefundState.APPROVED.value) == 50
    assert outcomes.count(Reason.REFUND_EXCEEDS_CAPTURED.value) == CALLS - 50
    async with engine.connect() as connection:
        reserved = (await connection.execute(select(tables.payments.c.reserved_minor))).scalar_one()
        amounts = (await connection.execute(select(tables.refunds.c.amount_minor))).scalars().all()
    assert reserved == sum(amounts) == 50_000


async def test_the_single_statement_list_of_refunds_is_the_unit_of_works(
    tx: Transactions[RefundUnitOfWork], ctx: RefundContext, clock: FakeClock, engine: AsyncEngine
) -> None:
    """ListRefunds' read (one statement outside any transaction, the page joined with its
    payout attempts) gives the refunds `get` gives, newest first, page by page."""
    await capture(tx, ctx, 100_000)
    paid = await tx.run(lambda uow: request_refund(uow, ctx, account_id=ACCOUNT, request=body(1)))
    assert isinstance(ctx.gateway, FakeGateway)
    ctx.gateway.behaviours = [GatewayBehaviour.ERROR, GatewayBehaviour.PAY]
    await PayoutWorker(tx, ctx).run_once()
    clock.advance(timedelta(minutes=1))
    waiting = await tx.run(
        lambda uow: request_refund(uow, ctx, account_id=ACCOUNT, request=body(10_000))
    )
    stored: list[Refund] = []
    for refund in (waiting, paid):

        async def load(uow: RefundUnitOfWork, refund_id: str = refund.refund_id) -> Refund | None:
            return await uow.refunds.get(refund_id)

        loaded = await tx.run(load)
        assert loaded is not None
        stored.append(loaded)
    assert [len(refund.attempts) for refund in stored] == [0, 2]
    statements = SingleStatementReads(engine)
    try:
        reads = SqlReads(statements).refunds
        assert await reads.list_for_account(ACCOUNT, None, Page(10)) == stored
        assert await reads.list_for_account(ACCOUNT, "pay-1", Page(1)) == stored[:1]
        after = (waiting.requested_at, waiting.refund_id)
        assert await reads.list_for_account(ACCOUNT, None, Page(1, after)) == stored[1:]
        assert await reads.list_for_account("acct-2", None, Page(10)) == []
    finally:
        await statements.close()
