"""The payout worker: approved refunds paid out through the gateway, never inside an RPC.

One pass (`PayoutWorker.run_once`) does, in order:

1. **Start** every refund that is ready (APPROVED, or resumed by an operator): the refund
   hold is placed in binding first (an instrument binding reports gone fails the refund with
   SOURCE_INSTRUMENT_UNAVAILABLE), then the attempt is recorded PENDING and committed, and
   only then is the payout sent, with the attempt id as the gateway's idempotency key.
2. **Reconcile** attempts still PENDING after `pending_grace` (the gateway timed out, or the
   process died between "sent" and "recorded"): the gateway is asked for the key; a key it
   never received is sent again under the same key, so the gateway pays at most once and no
   refund stays PENDING because the gateway was never called.
3. **Reversals** the gateway reports after confirming: the refund goes SUCCEEDED -> FAILED.
4. **Release** the holds of refunds that ended or failed.

A binding or gateway that cannot be reached leaves everything as it was for the next pass.
Each step's database work is its own short transaction; no transaction is open while a peer
is called, so a slow gateway never holds a payment's row lock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, TypeVar

from services.refund.domain.payments import CapturedPayment
from services.refund.domain.reasons import Reason
from services.refund.domain.refunds import FailureReason, PayoutAttempt, Refund
from services.refund.service.context import RefundContext
from services.refund.service.ports import (
    GatewayOutcome,
    GatewayStatus,
    RefundUnitOfWork,
)
from walletcore.errors import (
    DeadlineExceeded,
    DomainError,
    FailedPrecondition,
    NotFound,
    Unavailable,
)
from walletcore.transactions import Transactions

logger = logging.getLogger(__name__)

REVERSALS_CURSOR: Final = "gateway.reversals"
_T = TypeVar("_T")

_FAILURES: Final = {
    GatewayStatus.DECLINED: FailureReason.PAYOUT_DECLINED,
    GatewayStatus.INSTRUMENT_UNAVAILABLE: FailureReason.SOURCE_INSTRUMENT_UNAVAILABLE,
    GatewayStatus.ERROR: FailureReason.GATEWAY_ERROR,
}
_GONE: Final = frozenset({Reason.INSTRUMENT_NOT_FOUND, Reason.INSTRUMENT_UNAVAILABLE})
_REVERSAL_REASONS: Final = {"INSTRUMENT_CLOSED": FailureReason.SOURCE_INSTRUMENT_UNAVAILABLE}


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass did, for logs and tests."""

    started: int = 0
    settled: int = 0
    reversed: int = 0
    released: int = 0


class PayoutWorker:
    def __init__(
        self,
        transactions: Transactions[RefundUnitOfWork],
        ctx: RefundContext,
        *,
        batch_size: int = 100,
        pending_grace: timedelta = timedelta(seconds=30),
    ) -> None:
        self._tx = transactions
        self._ctx = ctx
        self._batch = batch_size
        self._grace = pending_grace

    async def _run(self, work: Callable[[RefundUnitOfWork], Awaitable[_T]]) -> _T:
        return await self._tx.run(work)

    async def _read(self, refund_id: str) -> Refund | None:
        return await self._run(lambda uow: uow.refunds.get(refund_id))

    async def run_once(self) -> PassReport:
        started = await self.start_ready()
        settled = await self.reconcile_pending()
        reversed_count = await self.apply_reversals()
        released = await self.release_holds()
        return PassReport(started, settled, reversed_count, released)

    # 1. start ---------------------------------------------------------------------------

    async def start_ready(self) -> int:
        ids = await self._run(lambda uow: uow.refunds.ready_for_payout(self._batch))
        started = 0
        for refund_id in ids:
            if await self._start(refund_id):
                started += 1
        return started

    async def _start(self, refund_id: str) -> bool:
        refund = await self._read(refund_id)
        if refund is None or not refund.ready_for_payout:
            return False
        try:
            await self._ctx.holds.place(
                # One request id per processing round and instrument: a repeated pass
                # replays binding's first answer.
                request_id=f"{refund.refund_id}:hold:{len(refund.history)}",
                account_id=refund.account_id,
                instrument_id=refund.instrument_id,
                refund_id=refund.refund_id,
            )
        except (NotFound, FailedPrecondition) as refusal:
            if refusal.reason not in _GONE:
                logger.warning("binding refused the refund hold", extra={"reason": refusal.reason})
                return False
            await self._run(lambda uow: self._fail_before_payout(uow, refund_id))
            return False
        except Unavailable:
            return False
        attempt = await self._run(lambda uow: self._record_attempt(uow, refund_id))
        if attempt is not None:
            await self._send(refund_id, attempt)
        return attempt is not None

    async def _fail_before_payout(self, uow: RefundUnitOfWork, refund_id: str) -> None:
        locked = await self._lock(uow, refund_id)
        if locked is None:
            return
        refund, payment = locked
        if not refund.ready_for_payout:
            return
        refund.fail(payment, FailureReason.SOURCE_INSTRUMENT_UNAVAILABLE, self._ctx.clock())
        await uow.payments.save_reserved(payment)
        await uow.refunds.save(refund)

    async def _record_attempt(self, uow: RefundUnitOfWork, refund_id: str) -> PayoutAttempt | None:
        refund = await uow.refunds.get(refund_id, for_update=True)
        if refund is None or not refund.ready_for_payout:
            return None
        refund.hold_placed = True
        attempt = refund.start_payout(self._ctx.clock())
        await uow.refunds.save(refund)
        return attempt

    async def _lock(
        self, uow: RefundUnitOfWork, refund_id: str
    ) -> tuple[Refund, CapturedPayment] | None:
        found = await uow.refunds.get(refund_id)
        if found is None:
            return None
        payment = await uow.payments.get(found.payment_id, for_update=True)
        refund = await uow.refunds.get(refund_id, for_update=True)
        if payment is None or refund is None:
            return None
        return refund, payment

    # sending and settling ------------------------------------------------------------

    async def _send(self, refund_id: str, attempt: PayoutAttempt | None) -> None:
        """Sends `attempt` and records its outcome; a gateway error that earns another
        attempt sends that one too, up to the policy's limit."""
        while attempt is not None:
            try:
                outcome = await self._ctx.gateway.pay(
                    idempotency_key=attempt.attempt_id,
                    instrument_id=attempt.instrument_id,
                    amount=attempt.amount,
                )
            except (DeadlineExceeded, Unavailable):
                logger.warning(
                    "payout outcome unknown; the sweep asks the gateway",
                    extra={"refund_id": refund_id, "attempt_id": attempt.attempt_id},
                )
                return
            attempt = await self._settle(refund_id, attempt.attempt_id, outcome)

    async def _settle(
        self, refund_id: str, attempt_id: str, outcome: GatewayOutcome
    ) -> PayoutAttempt | None:
        """Records a final outcome; returns the next attempt to send after a gateway error."""
        if outcome.status in (GatewayStatus.PENDING, GatewayStatus.UNKNOWN):
            return None

        async def work(uow: RefundUnitOfWork) -> PayoutAttempt | None:
            locked = await self._lock(uow, refund_id)
            if locked is None:
                return None
            refund, payment = locked
            now = self._ctx.clock()
            nxt: PayoutAttempt | None = None
            if outcome.status is GatewayStatus.SUCCEEDED:
                if not refund.payout_succeeded(attempt_id, outcome.reference, now):
                    return None
            else:
                pending = refund.pending_attempt
                if pending is None or pending.attempt_id != attempt_id:
                    return None
                nxt = refund.payout_failed(
                    payment,
                    attempt_id,
                    reason=_FAILURES[outcome.status],
                    gateway_code=outcome.code,
                    reference=outcome.reference,
                    now=now,
                    max_attempts=self._ctx.policy.max_gateway_attempts,
                )
            await uow.payments.save_reserved(payment)
            await uow.refunds.save(refund)
            return nxt

        return await self._run(work)

    # 2. reconcile -----------------------------------------------------------------------

    async def reconcile_pending(self) -> int:
        cutoff = self._ctx.clock() - self._grace
        ids = await self._run(lambda uow: uow.refunds.with_pending_attempts(cutoff, self._batch))
        settled = 0
        for refund_id in ids:
            refund = await self._read(refund_id)
            attempt = refund.pending_attempt if refund is not None else None
            if attempt is None:
                continue
            try:
                outcome = await self._ctx.gateway.lookup(attempt.attempt_id)
            except (DeadlineExceeded, Unavailable):
                continue
            if outcome.status is GatewayStatus.UNKNOWN:
                # Never received: sending under the same key cannot pay twice.
                await self._send(refund_id, attempt)
            else:
                await self._settle_chain(refund_id, attempt.attempt_id, outcome)
            settled += 1
        return settled

    async def _settle_chain(self, refund_id: str, attempt_id: str, outcome: GatewayOutcome) -> None:
        await self._send(refund_id, await self._settle(refund_id, attempt_id, outcome))

    # 3. reversals -----------------------------------------------------------------------

    async def apply_reversals(self) -> int:
        cursor = await self._run(lambda uow: uow.cursors.get(REVERSALS_CURSOR))
        try:
            reversals, next_cursor = await self._ctx.gateway.reversals(cursor)
        except (DeadlineExceeded, Unavailable):
            return 0

        async def work(uow: RefundUnitOfWork) -> int:
            applied = 0
            for reversal in reversals:
                found = await uow.refunds.find_by_attempt(reversal.idempotency_key)
                if found is None:
                    continue
                locked = await self._lock(uow, found.refund_id)
                if locked is None:
                    continue
                refund, payment = locked
                reason = _REVERSAL_REASONS.get(reversal.code, FailureReason.PAYOUT_DECLINED)
                if refund.reversed(payment, reason, reversal.code, self._ctx.clock()):
                    await uow.payments.save_reserved(payment)
                    await uow.refunds.save(refund)
                    applied += 1
            # The cursor moves in the same transaction as the refunds it covers.
            await uow.cursors.set(REVERSALS_CURSOR, next_cursor)
            return applied

        return await self._run(work)

    # 4. release -------------------------------------------------------------------------

    async def release_holds(self) -> int:
        ids = await self._run(lambda uow: uow.refunds.holding(self._batch))
        released = 0
        for refund_id in ids:
            refund = await self._read(refund_id)
            if refund is None or not refund.hold_to_release:
                continue
            try:
                await self._ctx.holds.release(
                    request_id=f"{refund_id}:release:{len(refund.history)}", refund_id=refund_id
                )
            except DomainError:
                continue

            async def work(uow: RefundUnitOfWork, rid: str = refund_id) -> None:
                locked = await uow.refunds.get(rid, for_update=True)
                if locked is not None and locked.hold_to_release:
                    locked.hold_placed = False
                    await uow.refunds.save(locked)

            await self._run(work)
            released += 1
        return released
