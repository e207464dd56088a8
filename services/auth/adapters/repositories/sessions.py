"""Sessions with their refresh tokens, and pending sign-ins, in SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.adapters.repositories._sql import origin_from, origin_values, rowcount
from services.auth.adapters.tables import pending_sign_ins, refresh_tokens, sessions
from services.auth.domain.events import RevokeReason
from services.auth.domain.sessions import (
    PendingSignIn,
    RefreshToken,
    Session,
    refresh_token_invalid,
)
from walletcore.db import lock_for_update


class SqlSessions:
    """Sessions handed out by this unit of work are kept, so `revoke_all` revokes them in
    memory too and a later `save` of one cannot bring it back to life."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._handed_out: dict[str, Session] = {}
        self._stored_used_at: dict[str, datetime | None] = {}

    async def get(self, session_id: str, *, for_update: bool = False) -> Session | None:
        statement = select(sessions).where(sessions.c.id == session_id)
        if for_update:
            statement = lock_for_update(statement)
        row = (await self._session.execute(statement)).one_or_none()
        return None if row is None else self._hand_out(_session_from(row))

    async def list_for_account(self, account_id: str) -> list[Session]:
        rows = await self._session.execute(
            select(sessions)
            .where(sessions.c.account_id == account_id)
            .order_by(sessions.c.created_at.desc(), sessions.c.id.desc())
        )
        return [self._hand_out(_session_from(row)) for row in rows]

    async def add(self, session: Session, first_token: RefreshToken) -> None:
        if first_token.session_id != session.id:
            raise ValueError("the first refresh token belongs to another session")
        await self._session.execute(
            insert(sessions).values(
                id=session.id,
                account_id=session.account_id,
                created_at=session.created_at,
                **_session_changes(session),
            )
        )
        self._hand_out(session)
        await self.add_refresh_token(first_token)

    async def save(self, session: Session) -> None:
        saved = await self._session.execute(
            update(sessions).where(sessions.c.id == session.id).values(_session_changes(session))
        )
        if rowcount(saved) != 1:
            raise ValueError("save of a session that was never added")

    async def get_refresh_token(
        self, token_id: str, *, for_update: bool = False
    ) -> RefreshToken | None:
        statement = select(refresh_tokens).where(refresh_tokens.c.id == token_id)
        if for_update:
            statement = lock_for_update(statement)
        row = (await self._session.execute(statement)).one_or_none()
        if row is None:
            return None
        token = RefreshToken(
            id=row.id,
            session_id=row.session_id,
            token_hash=row.token_hash,
            issued_at=row.issued_at,
            expires_at=row.expires_at,
            used_at=row.used_at,
        )
        self._stored_used_at[token.id] = token.used_at
        return token

    async def add_refresh_token(self, token: RefreshToken) -> None:
        await self._session.execute(
            insert(refresh_tokens).values(
                id=token.id,
                session_id=token.session_id,
                token_hash=token.token_hash,
                issued_at=token.issued_at,
                expires_at=token.expires_at,
                used_at=token.used_at,
            )
        )
        self._stored_used_at[token.id] = token.used_at

    async def save_refresh_token(self, token: RefreshToken) -> None:
        """Records the token's use. Only its use ever changes, and it is written only if the
        token is still unused in the database: of two concurrent refreshes with one token that
        both read it unused, the second fails with REFRESH_TOKEN_INVALID and changes nothing."""
        if token.id not in self._stored_used_at:
            raise ValueError("save a refresh token this unit of work has read or added")
        if token.used_at is None or self._stored_used_at[token.id] is not None:
            return
        marked = await self._session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.id == token.id, refresh_tokens.c.used_at.is_(None))
            .values(used_at=token.used_at)
        )
        if rowcount(marked) != 1:
            raise refresh_token_invalid()
        self._stored_used_at[token.id] = token.used_at

    async def revoke_all(self, account_id: str, reason: RevokeReason, now: datetime) -> int:
        revoked = await self._session.execute(
            update(sessions)
            .where(
                sessions.c.account_id == account_id,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > now,
            )
            .values(revoked_at=now, revoke_reason=reason.value)
        )
        for handed_out in self._handed_out.values():
            if handed_out.account_id == account_id and handed_out.is_active(now):
                handed_out.revoke(reason, now)
        return rowcount(revoked)

    def _hand_out(self, session: Session) -> Session:
        self._handed_out[session.id] = session
        return session


def _session_changes(session: Session) -> dict[str, Any]:
    return {
        **origin_values(session.origin),
        "last_used_at": session.last_used_at,
        "expires_at": session.expires_at,
        "revoked_at": session.revoked_at,
        "revoke_reason": session.revoke_reason.value if session.revoke_reason else None,
    }


def _session_from(row: Row[Any]) -> Session:
    return Session(
        id=row.id,
        account_id=row.account_id,
        origin=origin_from(row),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        revoke_reason=RevokeReason(row.revoke_reason) if row.revoke_reason else None,
    )


class SqlPendingSignIns:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, pending_id: str, *, for_update: bool = False) -> PendingSignIn | None:
        statement = select(pending_sign_ins).where(pending_sign_ins.c.id == pending_id)
        if for_update:
            statement = lock_for_update(statement)
        row = (await self._session.execute(statement)).one_or_none()
        if row is None:
            return None
        return PendingSignIn(
            id=row.id,
            account_id=row.account_id,
            ticket_hash=row.ticket_hash,
            origin=origin_from(row),
            created_at=row.created_at,
            expires_at=row.expires_at,
            completed_at=row.completed_at,
        )

    async def add(self, pending: PendingSignIn) -> None:
        await self._session.execute(
            insert(pending_sign_ins).values(
                id=pending.id,
                account_id=pending.account_id,
                ticket_hash=pending.ticket_hash,
                **origin_values(pending.origin),
                created_at=pending.created_at,
                expires_at=pending.expires_at,
                completed_at=pending.completed_at,
            )
        )

    async def save(self, pending: PendingSignIn) -> None:
        saved = await self._session.execute(
            update(pending_sign_ins)
            .where(pending_sign_ins.c.id == pending.id)
            .values(completed_at=pending.completed_at)
        )
        if rowcount(saved) != 1:
            raise ValueError("save of a pending sign-in that was never added")
