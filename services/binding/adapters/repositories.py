"""Binding's repositories on SQLAlchemy Core, for SQLite and PostgreSQL.

Each works in the unit of work's session, so everything one RPC writes commits or rolls back
together. Rows become domain objects explicitly; a card's holder name is decrypted on load and
encrypted on store with the card id as associated data, so a ciphertext moved to another row
does not decrypt.

Concurrency: the rows a use case reads to decide on are locked (`for_update`, SELECT ... FOR
UPDATE on PostgreSQL; SQLite runs writers one at a time anyway). The unique constraints are
the last word where a lock cannot help, because the row does not exist yet: two binds of one
card (the active-fingerprint index) and two first holds of one refund (its primary key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, Select, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.binding.adapters.tables import (
    cards,
    contact_changes,
    refund_holds,
    withdrawal_holds,
)
from services.binding.domain.cards import Card, CardBrand, CardStatus, Expiry
from services.binding.domain.contact_changes import (
    AbandonReason,
    Assistance,
    ChangeState,
    ContactChange,
    ContactKind,
)
from services.binding.domain.holds import RefundHold, WithdrawalHold
from services.binding.domain.reasons import card_already_bound
from walletcore.crypto import KeyRing
from walletcore.db import SingleStatementReads, dialect_name, is_unique_violation, lock_for_update
from walletcore.errors import Aborted


def _holder_name_data(card_id: str) -> bytes:
    return f"binding.card:{card_id}:holder_name".encode()


def _account_cards(*, include_unbound: bool) -> Select[Any]:
    statement = select(cards).where(cards.c.account_id == bindparam("account_id"))
    if not include_unbound:
        statement = statement.where(cards.c.status == CardStatus.ACTIVE.value)
    return statement.order_by(cards.c.bound_at.desc(), cards.c.id.desc())


# An account's cards, by include_unbound: built once, so a single-statement read compiles
# each once.
_ACCOUNT_CARDS: Final = {flag: _account_cards(include_unbound=flag) for flag in (False, True)}


class SqlCards:
    def __init__(self, session: AsyncSession, encryption: KeyRing) -> None:
        self._session = session
        self._encryption = encryption
        self._rows = CardRows(encryption)

    async def get(self, card_id: str, *, for_update: bool = False) -> Card | None:
        statement = select(cards).where(cards.c.id == card_id)
        if for_update:
            statement = lock_for_update(statement)
        row = (await self._session.execute(statement)).one_or_none()
        return None if row is None else self._rows.card_from(row)

    async def list_for_account(self, account_id: str, *, include_unbound: bool) -> list[Card]:
        rows = await self._session.execute(
            _ACCOUNT_CARDS[include_unbound], {"account_id": account_id}
        )
        return [self._rows.card_from(row) for row in rows]

    async def find_active_by_fingerprint(self, fingerprints: list[str]) -> Card | None:
        if not fingerprints:
            return None
        row = (
            await self._session.execute(
                select(cards)
                .where(
                    cards.c.fingerprint.in_(fingerprints),
                    cards.c.status == CardStatus.ACTIVE.value,
                )
                .limit(1)
            )
        ).one_or_none()
        return None if row is None else self._rows.card_from(row)

    async def add(self, card: Card) -> None:
        try:
            # A savepoint, so that the unique violation leaves the transaction usable for
            # whatever the caller does next (on PostgreSQL a failed statement aborts it).
            async with self._session.begin_nested():
                await self._session.execute(insert(cards).values(self._values(card)))
        except IntegrityError as error:
            if is_unique_violation(error):
                raise card_already_bound() from None
            raise

    async def save(self, card: Card) -> None:
        # Only the lifecycle changes after binding; everything else is fixed at bind time.
        result = await self._session.execute(
            update(cards)
            .where(cards.c.id == card.id)
            .values(status=card.status.value, unbound_at=card.unbound_at)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ValueError("save of a card that was never added")

    def _values(self, card: Card) -> dict[str, Any]:
        return {
            "id": card.id,
            "account_id": card.account_id,
            "token": card.token,
            "fingerprint": card.fingerprint,
            "brand": card.brand.value,
            "last4": card.last4,
            "expiry_year": card.expiry.year,
            "expiry_month": card.expiry.month,
            "holder_name": self._encryption.encrypt(
                card.holder_name.encode(), associated_data=_holder_name_data(card.id)
            ),
            "bound_at": card.bound_at,
            "status": card.status.value,
            "unbound_at": card.unbound_at,
        }


class CardRows:
    """Cards from `cards` rows (SQLAlchemy's or a single-statement read's), the holder name
    decrypted with the card id as associated data."""

    def __init__(self, encryption: KeyRing) -> None:
        self._encryption = encryption

    def card_from(self, row: Row[Any]) -> Card:
        holder_name = self._encryption.decrypt(
            row.holder_name, associated_data=_holder_name_data(row.id)
        ).decode()
        return Card(
            id=row.id,
            account_id=row.account_id,
            token=row.token,
            fingerprint=row.fingerprint,
            brand=CardBrand(row.brand),
            last4=row.last4,
            expiry=Expiry(year=row.expiry_year, month=row.expiry_month),
            holder_name=holder_name,
            bound_at=row.bound_at,
            status=CardStatus(row.status),
            unbound_at=row.unbound_at,
        )


class SqlCardReads:
    """The `CardReads` port: one statement per read, outside any unit of work."""

    def __init__(self, reads: SingleStatementReads, encryption: KeyRing) -> None:
        self._reads = reads
        self._rows = CardRows(encryption)

    async def list_for_account(self, account_id: str, *, include_unbound: bool) -> list[Card]:
        rows = await self._reads.all(_ACCOUNT_CARDS[include_unbound], {"account_id": account_id})
        return [self._rows.card_from(row) for row in rows]


class SqlBindingReads:
    """The `BindingReads` port (ListCards' read, without a transaction)."""

    def __init__(self, reads: SingleStatementReads, encryption: KeyRing) -> None:
        self.cards = SqlCardReads(reads, encryption)


class SqlRefundHolds:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, refund_id: str, *, for_update: bool = False) -> RefundHold | None:
        statement = select(refund_holds).where(refund_holds.c.refund_id == refund_id)
        if for_update:
            statement = lock_for_update(statement)
        row = (await self._session.execute(statement)).one_or_none()
        if row is None:
            return None
        return RefundHold(refund_id=row.refund_id, card_id=row.card_id, placed_at=row.placed_at)

    async def count_for_card(self, card_id: str) -> int:
        return (
            await self._session.execute(
                select(func.count())
                .select_from(refund_holds)
                .where(refund_holds.c.card_id == card_id)
            )
        ).scalar_one()

    async def add(self, hold: RefundHold) -> None:
        try:
            async with self._session.begin_nested():
                await self._session.execute(
                    insert(refund_holds).values(
                        refund_id=hold.refund_id, card_id=hold.card_id, placed_at=hold.placed_at
                    )
                )
        except IntegrityError as error:
            if is_unique_violation(error):
                raise Aborted("another hold for this refund was stored meanwhile") from None
            raise

    async def save(self, hold: RefundHold) -> None:
        result = await self._session.execute(
            update(refund_holds)
            .where(refund_holds.c.refund_id == hold.refund_id)
            .values(card_id=hold.card_id, placed_at=hold.placed_at)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ValueError("save of a hold that was never added")

    async def remove(self, refund_id: str) -> bool:
        result = await self._session.execute(
            delete(refund_holds).where(refund_holds.c.refund_id == refund_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


class SqlContactChanges:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, change_id: str, *, for_update: bool = False) -> ContactChange | None:
        statement = select(contact_changes).where(contact_changes.c.id == change_id)
        if for_update:
            statement = lock_for_update(statement)
        row = (await self._session.execute(statement)).one_or_none()
        return None if row is None else _change_from(row)

    async def add(self, change: ContactChange) -> None:
        await self._session.execute(insert(contact_changes).values(_change_values(change)))

    async def save(self, change: ContactChange) -> None:
        result = await self._session.execute(
            update(contact_changes)
            .where(contact_changes.c.id == change.id)
            .values(
                state=change.state.value,
                closed_at=change.closed_at,
                abandon_reason=change.abandon_reason.value if change.abandon_reason else None,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ValueError("save of a change that was never added")


def _change_values(change: ContactChange) -> dict[str, Any]:
    assistance = change.assistance
    return {
        "id": change.id,
        "account_id": change.account_id,
        "kind": change.kind.value,
        "verification_id": change.verification_id,
        "started_at": change.started_at,
        "expires_at": change.expires_at,
        "operator_id": assistance.operator_id if assistance else None,
        "ticket_ref": assistance.ticket_ref if assistance else None,
        "state": change.state.value,
        "closed_at": change.closed_at,
        "abandon_reason": change.abandon_reason.value if change.abandon_reason else None,
    }


def _change_from(row: Row[Any]) -> ContactChange:
    assistance = (
        None
        if row.operator_id is None
        else Assistance(operator_id=row.operator_id, ticket_ref=row.ticket_ref)
    )
    return ContactChange(
        id=row.id,
        account_id=row.account_id,
        kind=ContactKind(row.kind),
        verification_id=row.verification_id,
        started_at=row.started_at,
        expires_at=row.expires_at,
        assistance=assistance,
        state=ChangeState(row.state),
        closed_at=row.closed_at,
        abandon_reason=AbandonReason(row.abandon_reason) if row.abandon_reason else None,
    )


class SqlWithdrawalHolds:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, account_id: str) -> WithdrawalHold | None:
        row = (
            await self._session.execute(
                select(withdrawal_holds).where(withdrawal_holds.c.account_id == account_id)
            )
        ).one_or_none()
        return None if row is None else WithdrawalHold(row.account_id, row.last_change_at)

    async def restart(self, account_id: str, changed_at: datetime) -> WithdrawalHold:
        # One statement: the later of the stored and the new change wins, so two changes
        # completing at once both count and a late, older one never shortens the window.
        if dialect_name(self._session) == "postgresql":
            statement = postgresql.insert(withdrawal_holds)
            later = func.greatest(
                withdrawal_holds.c.last_change_at, statement.excluded.last_change_at
            )
        else:
            statement = sqlite.insert(withdrawal_holds)  # type: ignore[assignment]
            # SQLite's two-argument max() is its scalar "greatest".
            later = func.max(withdrawal_holds.c.last_change_at, statement.excluded.last_change_at)
        upsert = (
            statement.values(account_id=account_id, last_change_at=changed_at)
            .on_conflict_do_update(index_elements=["account_id"], set_={"last_change_at": later})
            .returning(withdrawal_holds.c.account_id, withdrawal_holds.c.last_change_at)
        )
        row = (await self._session.execute(upsert)).one()
        return WithdrawalHold(row.account_id, row.last_change_at)
