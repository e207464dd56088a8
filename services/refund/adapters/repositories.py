"""Refund's repositories on SQLAlchemy Core, in the unit of work's session (its transaction).

Rows map to the domain's dataclasses explicitly. `get(..., for_update=True)` is SELECT ... FOR
UPDATE on PostgreSQL (`walletcore.db.lock_for_update`); on SQLite every transaction holds the
write lock from BEGIN IMMEDIATE, which serialises the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Final

from sqlalchemy import (
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.refund.adapters import tables
from services.refund.domain.money import Money
from services.refund.domain.payments import CapturedPayment
from services.refund.domain.refunds import (
    FINAL_FOR_USER,
    WAITING_FOR_OPERATOR,
    AttemptState,
    Evidence,
    FailureReason,
    OperatorAction,
    PayoutAttempt,
    Refund,
    RefundReason,
    RefundState,
    RejectReason,
    Transition,
)
from services.refund.service.ports import Page
from walletcore.db import Executor, SingleStatementReads, dialect_name, lock_for_update


def _payment(row: Row[Any]) -> CapturedPayment:
    return CapturedPayment(
        payment_id=row.payment_id,
        account_id=row.account_id,
        captured=Money(row.captured_minor, row.currency),
        source_instrument_id=row.source_instrument_id,
        captured_at=row.captured_at,
        reserved_minor=row.reserved_minor,
    )


class SqlPayments:
    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def get(self, payment_id: str, *, for_update: bool = False) -> CapturedPayment | None:
        statement = select(tables.payments).where(tables.payments.c.payment_id == payment_id)
        if for_update:
            statement = lock_for_update(statement)
        row = (await self._executor.execute(statement)).first()
        return None if row is None else _payment(row)

    async def add_if_absent(self, payment: CapturedPayment) -> CapturedPayment:
        values = {
            "payment_id": payment.payment_id,
            "account_id": payment.account_id,
            "captured_minor": payment.captured.minor,
            "currency": payment.captured.currency,
            "source_instrument_id": payment.source_instrument_id,
            "captured_at": payment.captured_at,
            "reserved_minor": 0,
        }
        insert_: postgresql.Insert | sqlite.Insert
        if dialect_name(self._executor) == "postgresql":
            insert_ = postgresql.insert(tables.payments)
        else:
            insert_ = sqlite.insert(tables.payments)
        # ON CONFLICT DO NOTHING: a concurrent report of the same id waits for the first
        # transaction and then inserts nothing; both then read the one stored row.
        await self._executor.execute(
            insert_.values(**values).on_conflict_do_nothing(index_elements=["payment_id"])
        )
        stored = await self.get(payment.payment_id)
        if stored is None:
            raise RuntimeError("the payment row vanished inside its own transaction")
        return stored

    async def save_reserved(self, payment: CapturedPayment) -> None:
        await self._executor.execute(
            update(tables.payments)
            .where(tables.payments.c.payment_id == payment.payment_id)
            .values(reserved_minor=payment.reserved_minor)
        )

    async def list_for_account(self, account_id: str, page: Page) -> list[CapturedPayment]:
        c = tables.payments.c
        statement = select(tables.payments).where(c.account_id == account_id)
        if page.after is not None:
            at, key = page.after
            statement = statement.where(
                or_(c.captured_at < at, and_(c.captured_at == at, c.payment_id < key))
            )
        statement = statement.order_by(c.captured_at.desc(), c.payment_id.desc()).limit(page.size)
        return [_payment(row) for row in await self._executor.execute(statement)]


def _transition_json(t: Transition) -> dict[str, str | None]:
    return {
        "from": t.from_state.value if t.from_state else None,
        "to": t.to_state.value,
        "at": t.at.isoformat(),
        "actor": t.actor,
    }


def _transition(value: dict[str, Any]) -> Transition:
    return Transition(
        RefundState(value["from"]) if value["from"] else None,
        RefundState(value["to"]),
        datetime.fromisoformat(value["at"]),
        value["actor"],
    )


def _action_json(a: OperatorAction) -> dict[str, str]:
    return {"operator": a.operator_id, "action": a.action, "note": a.note, "at": a.at.isoformat()}


def _action(value: dict[str, str]) -> OperatorAction:
    return OperatorAction(
        value["operator"], value["action"], value["note"], datetime.fromisoformat(value["at"])
    )


def _refund_values(refund: Refund) -> dict[str, Any]:
    return {
        "refund_id": refund.refund_id,
        "payment_id": refund.payment_id,
        "account_id": refund.account_id,
        "amount_minor": refund.amount.minor,
        "currency": refund.amount.currency,
        "reason": refund.reason.value,
        "reason_detail": refund.reason_detail,
        "evidence": json.dumps(
            {
                "order_id": refund.evidence.order_id,
                "screenshots": list(refund.evidence.screenshot_refs),
            }
        ),
        "instrument_id": refund.instrument_id,
        "requested_at": refund.requested_at,
        "updated_at": refund.updated_at or refund.requested_at,
        "state": refund.state.value,
        "failure_reason": refund.failure_reason.value if refund.failure_reason else None,
        "reject_reason": refund.reject_reason.value if refund.reject_reason else None,
        "review_working_days": refund.review_working_days,
        "waiting_since": refund.waiting_since,
        "review_deadline": refund.review_deadline,
        "round_attempts": refund.round_attempts,
        "hold_placed": refund.hold_placed,
        "history": json.dumps([_transition_json(t) for t in refund.history]),
        "operator_actions": json.dumps([_action_json(a) for a in refund.operator_actions]),
    }


def _attempt_values(refund_id: str, seq: int, attempt: PayoutAttempt) -> dict[str, Any]:
    return {
        "attempt_id": attempt.attempt_id,
        "refund_id": refund_id,
        "seq": seq,
        "instrument_id": attempt.instrument_id,
        "amount_minor": attempt.amount.minor,
        "currency": attempt.amount.currency,
        "state": attempt.state.value,
        "gateway_reference": attempt.gateway_reference,
        "failure_reason": attempt.failure_reason.value if attempt.failure_reason else None,
        "gateway_failure_code": attempt.gateway_failure_code,
        "started_at": attempt.started_at,
        "finished_at": attempt.finished_at,
    }


def _attempt(row: Any) -> PayoutAttempt:
    return PayoutAttempt(
        attempt_id=row.attempt_id,
        instrument_id=row.instrument_id,
        amount=Money(row.amount_minor, row.currency),
        started_at=row.started_at,
        state=AttemptState(row.state),
        gateway_reference=row.gateway_reference,
        failure_reason=FailureReason(row.failure_reason) if row.failure_reason else None,
        gateway_failure_code=row.gateway_failure_code,
        finished_at=row.finished_at,
    )


def _refund(row: Row[Any], attempts: list[PayoutAttempt]) -> Refund:
    evidence = json.loads(row.evidence)
    return Refund(
        refund_id=row.refund_id,
        payment_id=row.payment_id,
        account_id=row.account_id,
        amount=Money(row.amount_minor, row.currency),
        reason=RefundReason(row.reason),
        reason_detail=row.reason_detail,
        evidence=Evidence(evidence["order_id"], tuple(evidence["screenshots"])),
        instrument_id=row.instrument_id,
        requested_at=row.requested_at,
        state=RefundState(row.state),
        updated_at=row.updated_at,
        failure_reason=FailureReason(row.failure_reason) if row.failure_reason else None,
        reject_reason=RejectReason(row.reject_reason) if row.reject_reason else None,
        review_working_days=row.review_working_days,
        waiting_since=row.waiting_since,
        round_attempts=row.round_attempts,
        hold_placed=row.hold_placed,
        history=[_transition(t) for t in json.loads(row.history)],
        attempts=attempts,
        operator_actions=[_action(a) for a in json.loads(row.operator_actions)],
    )


_ATTEMPT_PREFIX = "attempt__"


def _own_refunds(*, by_payment: bool, paged: bool) -> Select[Any]:
    """A page of an account's refunds, newest first, each joined with its payout attempts
    (one row per attempt, or one with no attempt): the whole page in one statement."""
    c = tables.refunds.c
    page = select(tables.refunds).where(c.account_id == bindparam("account_id"))
    if by_payment:
        page = page.where(c.payment_id == bindparam("payment_id"))
    if paged:
        at = bindparam("after_at", type_=c.requested_at.type)
        key = bindparam("after_id", type_=c.refund_id.type)
        page = page.where(or_(c.requested_at < at, and_(c.requested_at == at, c.refund_id < key)))
    listed = (
        page.order_by(c.requested_at.desc(), c.refund_id.desc())
        .limit(bindparam("size", type_=Integer))
        .subquery("page")
    )
    a = tables.payout_attempts
    return (
        select(listed, *(column.label(_ATTEMPT_PREFIX + column.name) for column in a.c))
        .select_from(listed.outerjoin(a, a.c.refund_id == listed.c.refund_id))
        .order_by(listed.c.requested_at.desc(), listed.c.refund_id.desc(), a.c.seq)
    )


# Built once per shape, so a single-statement read compiles each once.
_OWN_REFUNDS: Final = {
    (by_payment, paged): _own_refunds(by_payment=by_payment, paged=paged)
    for by_payment in (False, True)
    for paged in (False, True)
}


def own_refunds(
    account_id: str, payment_id: str | None, page: Page
) -> tuple[Select[Any], dict[str, Any]]:
    """The statement and parameters of a page of `account_id`'s refunds (of one payment when
    `payment_id` is set); `refunds_with_attempts` turns its rows into refunds."""
    parameters: dict[str, Any] = {"account_id": account_id, "size": page.size}
    if payment_id is not None:
        parameters["payment_id"] = payment_id
    if page.after is not None:
        parameters["after_at"], parameters["after_id"] = page.after
    return _OWN_REFUNDS[payment_id is not None, page.after is not None], parameters


def refunds_with_attempts(rows: Iterable[Any]) -> list[Refund]:
    """Refunds from `own_refunds` rows, in their order, each with its attempts by seq."""
    refund_rows: dict[str, Any] = {}
    attempts: dict[str, list[PayoutAttempt]] = {}
    for row in rows:
        if row.refund_id not in refund_rows:
            refund_rows[row.refund_id] = row
            attempts[row.refund_id] = []
        fields = row._asdict()
        if fields[_ATTEMPT_PREFIX + "attempt_id"] is not None:
            attempts[row.refund_id].append(
                _attempt(
                    SimpleNamespace(
                        **{
                            name.removeprefix(_ATTEMPT_PREFIX): value
                            for name, value in fields.items()
                            if name.startswith(_ATTEMPT_PREFIX)
                        }
                    )
                )
            )
    return [_refund(row, attempts[refund_id]) for refund_id, row in refund_rows.items()]


class SqlRefundReads:
    """The `RefundReads` port: one statement per read, outside any unit of work."""

    def __init__(self, reads: SingleStatementReads) -> None:
        self._reads = reads

    async def list_for_account(
        self, account_id: str, payment_id: str | None, page: Page
    ) -> list[Refund]:
        statement, parameters = own_refunds(account_id, payment_id, page)
        return refunds_with_attempts(await self._reads.all(statement, parameters))


class SqlReads:
    """The `RefundReads` port (ListRefunds' read, without a transaction)."""

    def __init__(self, reads: SingleStatementReads) -> None:
        self.refunds = SqlRefundReads(reads)


class SqlRefunds:
    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def _load(self, rows: Sequence[Row[Any]]) -> list[Refund]:
        if not rows:
            return []
        a = tables.payout_attempts.c
        attempts: dict[str, list[PayoutAttempt]] = {row.refund_id: [] for row in rows}
        result = await self._executor.execute(
            select(tables.payout_attempts)
            .where(a.refund_id.in_(list(attempts)))
            .order_by(a.refund_id, a.seq)
        )
        for attempt_row in result:
            attempts[attempt_row.refund_id].append(_attempt(attempt_row))
        return [_refund(row, attempts[row.refund_id]) for row in rows]

    async def get(self, refund_id: str, *, for_update: bool = False) -> Refund | None:
        statement = select(tables.refunds).where(tables.refunds.c.refund_id == refund_id)
        if for_update:
            statement = lock_for_update(statement)
        loaded = await self._load((await self._executor.execute(statement)).all())
        return loaded[0] if loaded else None

    async def find_by_attempt(self, attempt_id: str) -> Refund | None:
        refund_id = (
            await self._executor.execute(
                select(tables.payout_attempts.c.refund_id).where(
                    tables.payout_attempts.c.attempt_id == attempt_id
                )
            )
        ).scalar()
        return None if refund_id is None else await self.get(refund_id)

    async def add(self, refund: Refund) -> None:
        await self._executor.execute(insert(tables.refunds).values(**_refund_values(refund)))
        await self._save_attempts(refund, known=set())

    async def save(self, refund: Refund) -> None:
        values = _refund_values(refund)
        del values["refund_id"]
        await self._executor.execute(
            update(tables.refunds)
            .where(tables.refunds.c.refund_id == refund.refund_id)
            .values(**values)
        )
        a = tables.payout_attempts.c
        known = set(
            (
                await self._executor.execute(
                    select(a.attempt_id).where(a.refund_id == refund.refund_id)
                )
            ).scalars()
        )
        await self._save_attempts(refund, known=known)

    async def _save_attempts(self, refund: Refund, *, known: set[str]) -> None:
        a = tables.payout_attempts
        # Settled attempts first, so the one-PENDING index never sees two at once.
        ordered = sorted(
            enumerate(refund.attempts), key=lambda item: item[1].state is AttemptState.PENDING
        )
        for seq, attempt in ordered:
            values = _attempt_values(refund.refund_id, seq, attempt)
            if attempt.attempt_id in known:
                await self._executor.execute(
                    update(a).where(a.c.attempt_id == attempt.attempt_id).values(**values)
                )
            else:
                await self._executor.execute(insert(a).values(**values))

    async def list_for_account(
        self, account_id: str, payment_id: str | None, page: Page
    ) -> list[Refund]:
        statement, parameters = own_refunds(account_id, payment_id, page)
        return refunds_with_attempts(await self._executor.execute(statement, parameters))

    async def queue(self, states: Sequence[RefundState], page: Page) -> list[Refund]:
        c = tables.refunds.c
        waited = func.coalesce(c.waiting_since, c.requested_at)
        statement = select(tables.refunds).where(c.state.in_([s.value for s in states]))
        if page.after is not None:
            at, key = page.after
            statement = statement.where(or_(waited > at, and_(waited == at, c.refund_id > key)))
        statement = statement.order_by(waited, c.refund_id).limit(page.size)
        return await self._load((await self._executor.execute(statement)).all())

    async def ready_for_payout(self, limit: int) -> list[str]:
        c = tables.refunds.c
        a = tables.payout_attempts.c
        pending = exists().where(a.refund_id == c.refund_id, a.state == AttemptState.PENDING.value)
        statement = (
            select(c.refund_id)
            .where(
                or_(
                    c.state == RefundState.APPROVED.value,
                    and_(
                        c.state == RefundState.PROCESSING.value,
                        c.round_attempts == 0,
                        ~pending,
                    ),
                )
            )
            .order_by(c.updated_at, c.refund_id)
            .limit(limit)
        )
        return list((await self._executor.execute(statement)).scalars())

    async def with_pending_attempts(self, started_before: datetime, limit: int) -> list[str]:
        a = tables.payout_attempts.c
        statement = (
            select(a.refund_id)
            .where(a.state == AttemptState.PENDING.value, a.started_at < started_before)
            .order_by(a.started_at, a.refund_id)
            .limit(limit)
        )
        return list((await self._executor.execute(statement)).scalars())

    async def holding(self, limit: int) -> list[str]:
        c = tables.refunds.c
        statement = (
            select(c.refund_id)
            .where(c.hold_placed.is_(True), c.state.in_([s.value for s in FINAL_FOR_USER]))
            .order_by(c.updated_at, c.refund_id)
            .limit(limit)
        )
        return list((await self._executor.execute(statement)).scalars())

    async def count_overdue(self, now: datetime) -> int:
        c = tables.refunds.c
        statement = select(func.count()).where(
            c.state.in_([s.value for s in WAITING_FOR_OPERATOR]), c.review_deadline < now
        )
        return int((await self._executor.execute(statement)).scalar_one())


class SqlCursors:
    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def get(self, name: str) -> str:
        c = tables.gateway_cursors.c
        value = (await self._executor.execute(select(c.value).where(c.name == name))).scalar()
        return value or ""

    async def set(self, name: str, value: str) -> None:
        c = tables.gateway_cursors.c
        updated = await self._executor.execute(
            update(tables.gateway_cursors).where(c.name == name).values(value=value)
        )
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            await self._executor.execute(
                insert(tables.gateway_cursors).values(name=name, value=value)
            )
