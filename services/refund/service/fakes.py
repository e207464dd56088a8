"""In-memory implementations of every port in `ports`, for unit tests of the use cases.

They keep the promises the real adapters keep (on top of `walletcore.fakes`: copies in and
out, snapshot and rollback, request_id replay):

- `Payments.save_reserved` refuses a total above the captured amount, as the CHECK does.
- A grant is accepted once, for its account, purpose and object, until it expires.
- `FakeHolds` (binding) and `FakeGateway` stand for remote services: they are not rolled back
  with refund's transaction, and `available = False` makes them raise Unavailable.
- `FakeGateway` pays at most once per idempotency key, keeps the ledger of what it paid, and
  can be told to decline, fail, report the instrument gone, time out after paying (the
  crash between "sent" and "recorded") or reverse a payout.

    fakes = RefundFakes.create()
    payment = await fakes.tx.run(lambda uow: record_captured_payment(uow, fakes.ctx, report))
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from services.refund.domain.money import Money
from services.refund.domain.payments import CapturedPayment
from services.refund.domain.policy import RefundPolicy
from services.refund.domain.reasons import Reason
from services.refund.domain.refunds import Refund, RefundState
from services.refund.service.context import RefundContext
from services.refund.service.ports import (
    GatewayCursors,
    GatewayOutcome,
    GatewayStatus,
    GrantAcceptance,
    Page,
    Payments,
    Refunds,
    Reversal,
)
from walletcore.audit import AuditRecord, AuditTrail
from walletcore.clock import Clock
from walletcore.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from walletcore.fakes import FakeClock, FakeTransactions, FakeUnitOfWork, SnapshotStore
from walletcore.tokens import VerifiedGrant


@dataclass
class RefundStore(SnapshotStore):
    payments: dict[str, CapturedPayment] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)
    issued_grants: dict[str, VerifiedGrant] = field(default_factory=dict)
    used_grants: dict[str, datetime] = field(default_factory=dict)
    audit_records: list[tuple[AuditRecord, datetime]] = field(default_factory=list)

    def issue_grant(
        self, account_id: str, purpose: str, object_id: str, expires_at: datetime
    ) -> str:
        jti = uuid.uuid4().hex
        token = f"grant-{jti}"
        self.issued_grants[token] = VerifiedGrant(jti, account_id, purpose, object_id, expires_at)
        return token


class FakeRefundUnitOfWork(FakeUnitOfWork[RefundStore]):
    def __init__(self, store: RefundStore, clock: Clock) -> None:
        super().__init__(store)
        self.payments: Payments = FakePayments(self)
        self.refunds: Refunds = FakeRefunds(self)
        self.cursors: GatewayCursors = FakeCursors(self)
        self.grants: GrantAcceptance = FakeGrantAcceptance(self, clock)
        self.audit: AuditTrail = FakeAuditTrail(self)


class _Repository:
    def __init__(self, uow: FakeRefundUnitOfWork) -> None:
        self._uow = uow

    @property
    def _store(self) -> RefundStore:
        self._uow.require_open()
        return self._uow.store


_Item = TypeVar("_Item")


def _paged(
    items: list[tuple[tuple[datetime, str], _Item]], page: Page, *, newest: bool
) -> list[_Item]:
    items.sort(key=lambda item: item[0], reverse=newest)
    if page.after is not None:
        after = page.after
        items = [i for i in items if (i[0] < after if newest else i[0] > after)]
    return [copy.deepcopy(item) for _, item in items[: page.size]]


class FakePayments(_Repository):
    async def get(self, payment_id: str, *, for_update: bool = False) -> CapturedPayment | None:
        return copy.deepcopy(self._store.payments.get(payment_id))

    async def add_if_absent(self, payment: CapturedPayment) -> CapturedPayment:
        stored = self._store.payments.setdefault(payment.payment_id, copy.deepcopy(payment))
        return copy.deepcopy(stored)

    async def save_reserved(self, payment: CapturedPayment) -> None:
        stored = self._store.payments[payment.payment_id]
        if not 0 <= payment.reserved_minor <= stored.captured.minor:
            raise RuntimeError("CHECK constraint: reserved_minor out of range")
        stored.reserved_minor = payment.reserved_minor

    async def list_for_account(self, account_id: str, page: Page) -> list[CapturedPayment]:
        own = [
            ((p.captured_at, p.payment_id), p)
            for p in self._store.payments.values()
            if p.account_id == account_id
        ]
        return _paged(own, page, newest=True)


class FakeRefunds(_Repository):
    async def get(self, refund_id: str, *, for_update: bool = False) -> Refund | None:
        return copy.deepcopy(self._store.refunds.get(refund_id))

    async def find_by_attempt(self, attempt_id: str) -> Refund | None:
        for refund in self._store.refunds.values():
            if any(a.attempt_id == attempt_id for a in refund.attempts):
                return copy.deepcopy(refund)
        return None

    async def add(self, refund: Refund) -> None:
        if refund.refund_id in self._store.refunds:
            raise ValueError("a refund with this id is already stored")
        self._store.refunds[refund.refund_id] = copy.deepcopy(refund)

    async def save(self, refund: Refund) -> None:
        if refund.refund_id not in self._store.refunds:
            raise ValueError("save of a refund that was never added")
        self._store.refunds[refund.refund_id] = copy.deepcopy(refund)

    async def list_for_account(
        self, account_id: str, payment_id: str | None, page: Page
    ) -> list[Refund]:
        own = [
            ((r.requested_at, r.refund_id), r)
            for r in self._store.refunds.values()
            if r.account_id == account_id and payment_id in (None, r.payment_id)
        ]
        return _paged(own, page, newest=True)

    async def queue(self, states: Sequence[RefundState], page: Page) -> list[Refund]:
        waiting = [
            ((r.waiting_since or r.requested_at, r.refund_id), r)
            for r in self._store.refunds.values()
            if r.state in states
        ]
        return _paged(waiting, page, newest=False)

    async def ready_for_payout(self, limit: int) -> list[str]:
        return [r.refund_id for r in self._store.refunds.values() if r.ready_for_payout][:limit]

    async def with_pending_attempts(self, started_before: datetime, limit: int) -> list[str]:
        return [
            r.refund_id
            for r in self._store.refunds.values()
            if (attempt := r.pending_attempt) is not None and attempt.started_at < started_before
        ][:limit]

    async def holding(self, limit: int) -> list[str]:
        return [r.refund_id for r in self._store.refunds.values() if r.hold_to_release][:limit]

    async def count_overdue(self, now: datetime) -> int:
        return sum(1 for r in self._store.refunds.values() if r.overdue(now))


class FakeCursors(_Repository):
    async def get(self, name: str) -> str:
        return self._store.cursors.get(name, "")

    async def set(self, name: str, value: str) -> None:
        self._store.cursors[name] = value


class FakeGrantAcceptance(_Repository):
    def __init__(self, uow: FakeRefundUnitOfWork, clock: Clock) -> None:
        super().__init__(uow)
        self._clock = clock

    async def accept(
        self, token: str, *, account_id: str, purpose: str, object_id: str
    ) -> VerifiedGrant:
        grant = self._store.issued_grants.get(token)
        if grant is None or (grant.account_id, grant.purpose, grant.object_id) != (
            account_id,
            purpose,
            object_id,
        ):
            raise PermissionDenied("the step-up grant does not allow this", reason="GRANT_INVALID")
        if grant.expires_at <= self._clock():
            raise PermissionDenied("the step-up grant expired", reason="GRANT_EXPIRED")
        if grant.jti in self._store.used_grants:
            raise PermissionDenied(
                "the step-up grant was already used", reason="GRANT_ALREADY_USED"
            )
        self._store.used_grants[grant.jti] = grant.expires_at
        return grant


class FakeAuditTrail(_Repository):
    async def append(self, record: AuditRecord, now: datetime) -> None:
        self._store.audit_records.append((record, now))


@dataclass
class FakeHolds:
    """Binding's refund holds: instruments per account, the holds placed, reachability."""

    instruments: dict[str, tuple[str, bool]] = field(default_factory=dict)
    """instrument id -> (account id, usable for a refund)."""
    holds: dict[str, str] = field(default_factory=dict)
    available: bool = True
    calls: list[str] = field(default_factory=list)

    def _check(self) -> None:
        if not self.available:
            raise Unavailable("binding cannot be reached")

    async def is_usable(self, *, account_id: str, instrument_id: str) -> bool:
        self._check()
        owner = self.instruments.get(instrument_id)
        if owner is None or owner[0] != account_id:
            raise NotFound("no such instrument", reason=Reason.INSTRUMENT_NOT_FOUND)
        return owner[1]

    async def place(
        self, *, request_id: str, account_id: str, instrument_id: str, refund_id: str
    ) -> None:
        self.calls.append(f"place:{refund_id}:{instrument_id}")
        if not await self.is_usable(account_id=account_id, instrument_id=instrument_id):
            raise FailedPrecondition(
                "the instrument is unbound or expired", reason=Reason.INSTRUMENT_UNAVAILABLE
            )
        self.holds[refund_id] = instrument_id

    async def release(self, *, request_id: str, refund_id: str) -> None:
        self._check()
        self.calls.append(f"release:{refund_id}")
        self.holds.pop(refund_id, None)


class GatewayBehaviour(StrEnum):
    PAY = "PAY"
    DECLINE = "DECLINE"
    ERROR = "ERROR"
    INSTRUMENT_GONE = "INSTRUMENT_GONE"
    PAY_THEN_TIME_OUT = "PAY_THEN_TIME_OUT"
    """Pays, but the answer never reaches refund (a timeout, or refund dies before recording)."""
    LOSE_REQUEST = "LOSE_REQUEST"
    """The request never arrives (refund times out having sent nothing)."""


@dataclass
class FakeGateway:
    """A payout gateway that honours idempotency keys and keeps its own ledger."""

    behaviours: list[GatewayBehaviour] = field(default_factory=list)
    """What the next `pay` calls do, in order; PAY once the list is empty."""
    outcomes: dict[str, GatewayOutcome] = field(default_factory=dict)
    paid: dict[str, tuple[str, Money]] = field(default_factory=dict)
    """The ledger: idempotency key -> (instrument, amount) of every payout made."""
    reversal_log: list[Reversal] = field(default_factory=list)
    available: bool = True
    pay_calls: int = 0
    _refs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def pay(
        self, *, idempotency_key: str, instrument_id: str, amount: Money
    ) -> GatewayOutcome:
        if not self.available:
            raise Unavailable("the payout gateway cannot be reached")
        self.pay_calls += 1
        known = self.outcomes.get(idempotency_key)
        if known is not None:
            return known
        behaviour = self.behaviours.pop(0) if self.behaviours else GatewayBehaviour.PAY
        if behaviour is GatewayBehaviour.LOSE_REQUEST:
            raise DeadlineExceeded("the payout gateway did not answer in time")
        reference = f"gw-{next(self._refs)}"
        outcome = {
            GatewayBehaviour.DECLINE: GatewayOutcome(GatewayStatus.DECLINED, reference, "DECLINED"),
            GatewayBehaviour.ERROR: GatewayOutcome(GatewayStatus.ERROR, reference, "ISSUER_DOWN"),
            GatewayBehaviour.INSTRUMENT_GONE: GatewayOutcome(
                GatewayStatus.INSTRUMENT_UNAVAILABLE, reference, "INSTRUMENT_CLOSED"
            ),
        }.get(behaviour, GatewayOutcome(GatewayStatus.SUCCEEDED, reference))
        self.outcomes[idempotency_key] = outcome
        if outcome.status is GatewayStatus.SUCCEEDED:
            self.paid[idempotency_key] = (instrument_id, amount)
        if behaviour is GatewayBehaviour.PAY_THEN_TIME_OUT:
            raise DeadlineExceeded("the payout gateway did not answer in time")
        return outcome

    async def lookup(self, idempotency_key: str) -> GatewayOutcome:
        if not self.available:
            raise Unavailable("the payout gateway cannot be reached")
        return self.outcomes.get(idempotency_key, GatewayOutcome(GatewayStatus.UNKNOWN))

    def reverse(self, idempotency_key: str, code: str) -> None:
        self.paid.pop(idempotency_key)
        self.reversal_log.append(Reversal(idempotency_key, code))

    async def reversals(self, after: str) -> tuple[list[Reversal], str]:
        if not self.available:
            raise Unavailable("the payout gateway cannot be reached")
        start = int(after or 0)
        return self.reversal_log[start:], str(len(self.reversal_log))


@dataclass
class RefundFakes:
    store: RefundStore
    clock: FakeClock
    holds: FakeHolds
    gateway: FakeGateway
    ctx: RefundContext
    tx: FakeTransactions[FakeRefundUnitOfWork]

    @classmethod
    def create(cls, policy: RefundPolicy | None = None) -> RefundFakes:
        store = RefundStore()
        clock = FakeClock()
        holds = FakeHolds()
        gateway = FakeGateway()
        ids = (f"refund{n:04d}" for n in itertools.count(1))
        ctx = RefundContext(
            clock=clock,
            new_id=lambda: next(ids),
            policy=policy
            or RefundPolicy(auto_approve_limits={"CNY": 5_000}, grant_thresholds={"CNY": 20_000}),
            holds=holds,
            gateway=gateway,
        )
        tx = FakeTransactions(lambda: FakeRefundUnitOfWork(store, clock))
        return cls(store, clock, holds, gateway, ctx, tx)
