"""The account aggregate in SQL: the account row and its contacts, freeze history, TOTP factor
and recovery codes.

`save` writes the difference between the aggregate and what this unit of work read or wrote
of it (a copy kept at `get` / `add`): the account row, contacts added or removed, freeze
records appended, the TOTP row, and the recovery codes. `add` and `save` write all of it or,
in a savepoint, nothing: after a refusal (CONTACT_IN_USE) the transaction can still commit
what the use case must keep, such as a used code. The account row carries a version, so
a `save` of an account read without `for_update` fails with ABORTED rather than overwrite a
change another transaction committed in between.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, FromClause, Row, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.adapters.repositories._sql import chunks, rowcount
from services.auth.adapters.repositories.protection import Protection, contact_from
from services.auth.adapters.tables import (
    account_contacts,
    accounts,
    freeze_history,
    recovery_code_sets,
    recovery_codes,
    totp_factors,
)
from services.auth.domain.account import Account, AccountStatus, FreezeRecord
from services.auth.domain.contacts import Contact, ContactKind, VerifiedContact
from services.auth.domain.events import Actor, ActorKind
from services.auth.domain.recovery import RecoveryCode, RecoveryCodeSet
from services.auth.domain.totp import TotpFactor, TotpState
from services.auth.service.ports import CodeDestination, SignInCredentials
from walletcore.db import is_unique_violation, lock_for_update
from walletcore.errors import Aborted, AlreadyExists

CONTACT_IN_USE: Final = "CONTACT_IN_USE"
_CONTACTS: Final = "account_contacts"


def contact_in_use() -> AlreadyExists:
    return AlreadyExists("this contact already belongs to an account", reason=CONTACT_IN_USE)


@dataclass(frozen=True, slots=True)
class _Stored:
    """An account as the database holds it within this unit of work."""

    version: int
    account: Account


class SqlAccounts:
    def __init__(self, session: AsyncSession, protection: Protection) -> None:
        self._session = session
        self._protection = protection
        self._stored: dict[str, _Stored] = {}

    async def get(self, account_id: str, *, for_update: bool = False) -> Account | None:
        found = await self.get_many([account_id], for_update=for_update)
        return found[0] if found else None

    async def get_many(
        self, account_ids: Sequence[str], *, for_update: bool = False
    ) -> list[Account]:
        accounts_found: list[Account] = []
        for chunk in chunks(sorted(set(account_ids))):
            accounts_found += await self._load(chunk, for_update=for_update)
        return accounts_found

    async def _load(self, account_ids: Sequence[str], *, for_update: bool) -> list[Account]:
        """The aggregates of `account_ids` (one chunk) that exist, in id order: one statement
        per table for all of them. Locked rows are locked in id order, so two callers over
        overlapping ids queue instead of deadlocking."""
        statement = select(accounts).where(accounts.c.id.in_(account_ids)).order_by(accounts.c.id)
        if for_update:
            statement = lock_for_update(statement)
        rows = (await self._session.execute(statement)).all()
        if not rows:
            return []
        present = [row.id for row in rows]
        contacts = await self._load_contacts(present)
        histories = await self._load_freeze_histories(present)
        factors = await self._load_totp_factors(present)
        code_sets = await self._load_recovery_codes(present)
        loaded = []
        for row in rows:
            account = Account(
                id=row.id,
                password_hash=row.password_hash,
                contacts=contacts.get(row.id, []),
                created_at=row.created_at,
                status=AccountStatus(row.status),
                freeze_history=histories.get(row.id, []),
                totp=factors.get(row.id),
                recovery_codes=code_sets.get(row.id),
                password_changed_at=row.password_changed_at,
            )
            self._remember(account, row.version)
            loaded.append(account)
        return loaded

    async def find_by_contact(
        self, contact: Contact, *, for_update: bool = False
    ) -> Account | None:
        account_id = await self._owner_of(contact)
        return None if account_id is None else await self.get(account_id, for_update=for_update)

    async def find_code_destination(
        self, identifier: Contact, kind: ContactKind
    ) -> CodeDestination | None:
        # One statement that finds nothing for an unknown identifier: loading the aggregate
        # (five or six statements) only when the identifier matched would tell strangers by
        # the time of the answer which contacts have an account.
        owner = account_contacts.alias("owner")
        destination = account_contacts.alias("destination")
        row = (
            await self._session.execute(
                select(
                    accounts.c.id,
                    accounts.c.status,
                    destination.c.id.label("contact_id"),
                    destination.c.value_encrypted,
                    destination.c.verified_at,
                )
                .select_from(owner)
                .join(accounts, accounts.c.id == owner.c.account_id)
                .outerjoin(
                    destination,
                    and_(
                        destination.c.account_id == owner.c.account_id,
                        destination.c.kind == kind.value,
                    ),
                )
                .where(*self._matches(owner, identifier))
            )
        ).first()
        if row is None:
            return None
        contact = None
        if row.contact_id is not None:
            value = self._protection.open(
                row.value_encrypted, table=_CONTACTS, row_id=row.contact_id, column="value"
            )
            contact = VerifiedContact(
                id=row.contact_id, value=contact_from(kind, value), verified_at=row.verified_at
            )
        return CodeDestination(row.id, AccountStatus(row.status), contact)

    async def find_sign_in_credentials(self, identifier: Contact) -> SignInCredentials | None:
        owner = account_contacts.alias("owner")
        contact = account_contacts.alias("contact")
        rows = (
            await self._session.execute(
                select(
                    accounts.c.id,
                    accounts.c.password_hash,
                    contact.c.id.label("contact_id"),
                    contact.c.kind,
                    contact.c.value_encrypted,
                )
                .select_from(owner)
                .join(accounts, accounts.c.id == owner.c.account_id)
                .join(contact, contact.c.account_id == owner.c.account_id)
                .where(*self._matches(owner, identifier))
                .order_by(contact.c.verified_at, contact.c.id)
            )
        ).all()
        if not rows:
            return None
        contacts = tuple(
            contact_from(
                ContactKind(row.kind),
                self._protection.open(
                    row.value_encrypted, table=_CONTACTS, row_id=row.contact_id, column="value"
                ),
            )
            for row in rows
        )
        return SignInCredentials(rows[0].id, rows[0].password_hash, contacts)

    async def contact_in_use(self, contact: Contact) -> bool:
        return await self._owner_of(contact) is not None

    async def add(self, account: Account) -> None:
        async with self._session.begin_nested():
            await self._session.execute(
                insert(accounts).values(id=account.id, **_row_of(account), version=1)
            )
            await self._insert_contacts(account.id, account.contacts)
            await self._append_freeze_records(account, already_stored=0)
            await self._write_totp(account, stored=None)
            await self._write_recovery_codes(account, stored=None)
        self._remember(account, version=1)

    async def save(self, account: Account) -> None:
        stored = self._stored.get(account.id)
        if stored is None:
            raise ValueError("save an account this unit of work has read or added")
        async with self._session.begin_nested():
            changed = await self._session.execute(
                update(accounts)
                .where(accounts.c.id == account.id, accounts.c.version == stored.version)
                .values(**_row_of(account), version=stored.version + 1)
            )
            if rowcount(changed) != 1:
                raise Aborted("the account was changed by another request: try again")
            await self._write_contacts(account, stored.account.contacts)
            await self._append_freeze_records(account, len(stored.account.freeze_history))
            await self._write_totp(account, stored.account.totp)
            await self._write_recovery_codes(account, stored.account.recovery_codes)
        self._remember(account, stored.version + 1)

    # -- reading ---------------------------------------------------------------------------

    async def _owner_of(self, contact: Contact) -> str | None:
        rows = await self._session.execute(
            select(account_contacts.c.account_id).where(*self._matches(account_contacts, contact))
        )
        return rows.scalars().first()

    def _matches(self, contacts: FromClause, contact: Contact) -> list[ColumnElement[bool]]:
        """The conditions under which a row of `contacts` (the table or an alias) is `contact`,
        whatever key of the blind index it was stored under."""
        return [
            contacts.c.kind == contact.kind.value,
            contacts.c.value_index.in_(self._protection.index_candidates(contact)),
        ]

    async def _load_contacts(self, account_ids: Sequence[str]) -> dict[str, list[VerifiedContact]]:
        rows = await self._session.execute(
            select(account_contacts)
            .where(account_contacts.c.account_id.in_(account_ids))
            .order_by(
                account_contacts.c.account_id,
                account_contacts.c.verified_at,
                account_contacts.c.id,
            )
        )
        by_account: dict[str, list[VerifiedContact]] = {}
        for row in rows:
            by_account.setdefault(row.account_id, []).append(self._contact_from(row))
        return by_account

    def _contact_from(self, row: Row[Any]) -> VerifiedContact:
        return open_contact(
            self._protection,
            contact_id=row.id,
            kind=row.kind,
            sealed=row.value_encrypted,
            verified_at=row.verified_at,
        )

    async def _load_freeze_histories(
        self, account_ids: Sequence[str]
    ) -> dict[str, list[FreezeRecord]]:
        rows = await self._session.execute(
            select(freeze_history)
            .where(freeze_history.c.account_id.in_(account_ids))
            .order_by(freeze_history.c.account_id, freeze_history.c.position)
        )
        by_account: dict[str, list[FreezeRecord]] = {}
        for row in rows:
            by_account.setdefault(row.account_id, []).append(
                FreezeRecord(
                    frozen=row.frozen,
                    actor=Actor(ActorKind(row.actor_kind), row.actor_id),
                    reason=row.reason,
                    ticket_ref=row.ticket_ref,
                    occurred_at=row.occurred_at,
                )
            )
        return by_account

    async def _load_totp_factors(self, account_ids: Sequence[str]) -> dict[str, TotpFactor]:
        rows = await self._session.execute(
            select(totp_factors).where(totp_factors.c.account_id.in_(account_ids))
        )
        return {
            row.account_id: TotpFactor(
                id=row.id,
                account_id=row.account_id,
                encrypted_secret=bytes(row.encrypted_secret),
                created_at=row.created_at,
                state=TotpState(row.state),
                confirmed_at=row.confirmed_at,
                disabled_at=row.disabled_at,
                last_accepted_step=row.last_accepted_step,
                failed_confirmations=row.failed_confirmations,
            )
            for row in rows
        }

    async def _load_recovery_codes(self, account_ids: Sequence[str]) -> dict[str, RecoveryCodeSet]:
        code_sets = (
            await self._session.execute(
                select(recovery_code_sets).where(recovery_code_sets.c.account_id.in_(account_ids))
            )
        ).all()
        if not code_sets:
            return {}
        codes = await self._session.execute(
            select(recovery_codes)
            .where(recovery_codes.c.set_id.in_([code_set.id for code_set in code_sets]))
            .order_by(recovery_codes.c.set_id, recovery_codes.c.position)
        )
        by_set: dict[str, list[RecoveryCode]] = {}
        for row in codes:
            by_set.setdefault(row.set_id, []).append(
                RecoveryCode(code_hash=row.code_hash, used_at=row.used_at)
            )
        return {
            code_set.account_id: RecoveryCodeSet(
                id=code_set.id,
                account_id=code_set.account_id,
                created_at=code_set.created_at,
                codes=by_set.get(code_set.id, []),
            )
            for code_set in code_sets
        }

    def _remember(self, account: Account, version: int) -> None:
        self._stored[account.id] = _Stored(version, copy.deepcopy(account))

    # -- writing ---------------------------------------------------------------------------

    async def _write_contacts(self, account: Account, stored: list[VerifiedContact]) -> None:
        current_ids = {contact.id for contact in account.contacts}
        stored_ids = {contact.id for contact in stored}
        # Removed first: a replacement has the kind of the contact it replaces, and an account
        # has one contact of each kind.
        if removed := stored_ids - current_ids:
            await self._session.execute(
                delete(account_contacts).where(account_contacts.c.id.in_(removed))
            )
        added = [contact for contact in account.contacts if contact.id not in stored_ids]
        await self._insert_contacts(account.id, added)

    async def _insert_contacts(self, account_id: str, contacts: list[VerifiedContact]) -> None:
        if not contacts:
            return
        rows = [
            {
                "id": contact.id,
                "account_id": account_id,
                "kind": contact.kind.value,
                "value_index": self._protection.index(contact.value),
                "value_encrypted": self._protection.seal(
                    contact.value.value, table=_CONTACTS, row_id=contact.id, column="value"
                ),
                "verified_at": contact.verified_at,
            }
            for contact in contacts
        ]
        try:
            await self._session.execute(insert(account_contacts), rows)
        except IntegrityError as exc:
            # The unique (kind, value_index) is the last word on who owns a contact: a
            # concurrent transaction may have taken it after the use case checked.
            if is_unique_violation(exc):
                raise contact_in_use() from None
            raise

    async def _append_freeze_records(self, account: Account, already_stored: int) -> None:
        new_records = account.freeze_history[already_stored:]
        if not new_records:
            return
        await self._session.execute(
            insert(freeze_history),
            [
                {
                    "account_id": account.id,
                    "position": position,
                    "frozen": record.frozen,
                    "actor_kind": record.actor.kind.value,
                    "actor_id": record.actor.id,
                    "reason": record.reason,
                    "ticket_ref": record.ticket_ref,
                    "occurred_at": record.occurred_at,
                }
                for position, record in enumerate(new_records, start=already_stored)
            ],
        )

    async def _write_totp(self, account: Account, stored: TotpFactor | None) -> None:
        factor = account.totp
        if factor == stored:
            return
        if factor is None:
            await self._session.execute(
                delete(totp_factors).where(totp_factors.c.account_id == account.id)
            )
            return
        values = {
            "id": factor.id,
            "encrypted_secret": factor.encrypted_secret,
            "state": factor.state.value,
            "created_at": factor.created_at,
            "confirmed_at": factor.confirmed_at,
            "disabled_at": factor.disabled_at,
            "last_accepted_step": factor.last_accepted_step,
            "failed_confirmations": factor.failed_confirmations,
        }
        if stored is None:
            await self._session.execute(
                insert(totp_factors).values(account_id=account.id, **values)
            )
        else:
            await self._session.execute(
                update(totp_factors).where(totp_factors.c.account_id == account.id).values(values)
            )

    async def _write_recovery_codes(self, account: Account, stored: RecoveryCodeSet | None) -> None:
        current = account.recovery_codes
        if current == stored:
            return
        if stored is not None and (current is None or current.id != stored.id):
            await self._delete_recovery_codes(stored.id)
            stored = None
        if current is None:
            return
        if stored is None:
            await self._insert_recovery_codes(current)
            return
        for position, (code, before) in enumerate(zip(current.codes, stored.codes, strict=True)):
            if code.used_at != before.used_at:
                await self._session.execute(
                    update(recovery_codes)
                    .where(
                        recovery_codes.c.set_id == current.id,
                        recovery_codes.c.position == position,
                    )
                    .values(used_at=code.used_at)
                )

    async def _insert_recovery_codes(self, code_set: RecoveryCodeSet) -> None:
        await self._session.execute(
            insert(recovery_code_sets).values(
                id=code_set.id, account_id=code_set.account_id, created_at=code_set.created_at
            )
        )
        if code_set.codes:
            await self._session.execute(
                insert(recovery_codes),
                [
                    {
                        "set_id": code_set.id,
                        "position": position,
                        "code_hash": code.code_hash,
                        "used_at": code.used_at,
                    }
                    for position, code in enumerate(code_set.codes)
                ],
            )

    async def _delete_recovery_codes(self, set_id: str) -> None:
        await self._session.execute(delete(recovery_codes).where(recovery_codes.c.set_id == set_id))
        await self._session.execute(
            delete(recovery_code_sets).where(recovery_code_sets.c.id == set_id)
        )


def open_contact(
    protection: Protection, *, contact_id: str, kind: str, sealed: bytes, verified_at: datetime
) -> VerifiedContact:
    """A stored contact, decrypted."""
    value = protection.open(sealed, table=_CONTACTS, row_id=contact_id, column="value")
    return VerifiedContact(
        id=contact_id, value=contact_from(ContactKind(kind), value), verified_at=verified_at
    )


def _row_of(account: Account) -> dict[str, object]:
    return {
        "status": account.status.value,
        "password_hash": account.password_hash,
        "created_at": account.created_at,
        "password_changed_at": account.password_changed_at,
    }
