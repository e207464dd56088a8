"""The `AccountReads` port in SQL: each read is one SELECT, outside any unit of work.

Every request to auth's public port, and every request kyc, binding and refund answer, asks
auth whether an account is frozen and a session live; so these reads are one statement each
(`walletcore.db.SingleStatementReads`: one round trip on PostgreSQL, on asyncpg directly) and
read only the columns they answer with, rather than the account aggregate's five tables. The
statements are built once, with bound parameters, and compiled once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import bindparam, func, select
from sqlalchemy.sql import Select

from services.auth.adapters.repositories.accounts import open_contact
from services.auth.adapters.repositories.protection import Protection
from services.auth.adapters.tables import (
    account_contacts,
    accounts,
    freeze_history,
    recovery_code_sets,
    recovery_codes,
    sessions,
    totp_factors,
)
from services.auth.domain.account import AccountStatus
from services.auth.domain.sessions import SessionTerm
from services.auth.domain.totp import TotpState
from services.auth.service.ports import AccountStanding, AccountSummary
from walletcore.db import SingleStatementReads


def _account_columns() -> Select[Any]:
    """The account's status, its latest freeze time and its TOTP factor's state."""
    latest_freeze = (
        select(freeze_history.c.occurred_at)
        .where(freeze_history.c.account_id == accounts.c.id)
        .order_by(freeze_history.c.position.desc())
        .limit(1)
        .scalar_subquery()
    )
    totp_state = (
        select(totp_factors.c.state)
        .where(totp_factors.c.account_id == accounts.c.id)
        .scalar_subquery()
    )
    return select(
        accounts.c.status, latest_freeze.label("latest_freeze_at"), totp_state.label("totp_state")
    ).where(accounts.c.id == bindparam("account_id"))


# The session joins only when it is this account's: another account's session reads as none,
# like a missing one; and a NULL session_id (none asked about) matches no session.
_STANDING: Final = (
    _account_columns()
    .add_columns(sessions.c.id.label("session_id"), sessions.c.expires_at, sessions.c.revoked_at)
    .select_from(
        accounts.outerjoin(
            sessions,
            (sessions.c.id == bindparam("session_id")) & (sessions.c.account_id == accounts.c.id),
        )
    )
)

_UNUSED_CODES: Final = (
    select(func.count())
    .select_from(recovery_codes.join(recovery_code_sets))
    .where(recovery_code_sets.c.account_id == accounts.c.id, recovery_codes.c.used_at.is_(None))
    .scalar_subquery()
)

# One row per contact (an account has at most one of each kind), the account's columns
# repeated on each.
_SUMMARY: Final = (
    _account_columns()
    .add_columns(
        accounts.c.created_at,
        _UNUSED_CODES.label("unused_codes"),
        account_contacts.c.id.label("contact_id"),
        account_contacts.c.kind,
        account_contacts.c.value_encrypted,
        account_contacts.c.verified_at,
    )
    .select_from(
        accounts.outerjoin(account_contacts, account_contacts.c.account_id == accounts.c.id)
    )
    .order_by(account_contacts.c.verified_at, account_contacts.c.id)
)


class SqlAccountReads:
    def __init__(self, reads: SingleStatementReads, protection: Protection) -> None:
        self._reads = reads
        self._protection = protection

    async def standing(self, account_id: str, session_id: str | None) -> AccountStanding | None:
        rows = await self._reads.all(
            _STANDING, {"account_id": account_id, "session_id": session_id}
        )
        if not rows:
            return None
        row = rows[0]
        session = (
            None
            if row.session_id is None
            else SessionTerm(expires_at=row.expires_at, revoked_at=row.revoked_at)
        )
        status = AccountStatus(row.status)
        return AccountStanding(
            status=status,
            frozen_at=_frozen_at(status, row),
            totp_enabled=_totp_enabled(row),
            session=session,
        )

    async def summary(self, account_id: str) -> AccountSummary | None:
        rows = await self._reads.all(_SUMMARY, {"account_id": account_id})
        if not rows:
            return None
        first = rows[0]
        status = AccountStatus(first.status)
        return AccountSummary(
            id=account_id,
            status=status,
            contacts=[
                open_contact(
                    self._protection,
                    contact_id=row.contact_id,
                    kind=row.kind,
                    sealed=row.value_encrypted,
                    verified_at=row.verified_at,
                )
                for row in rows
                if row.contact_id is not None
            ],
            totp_enabled=_totp_enabled(first),
            unused_recovery_codes=first.unused_codes,
            created_at=first.created_at,
            frozen_at=_frozen_at(status, first),
        )


def _frozen_at(status: AccountStatus, row: Any) -> datetime | None:
    # As `Account.frozen_at`: the latest freeze record is the freeze, while frozen.
    return row.latest_freeze_at if status is AccountStatus.FROZEN else None


def _totp_enabled(row: Any) -> bool:
    return bool(row.totp_state == TotpState.ACTIVE.value)
