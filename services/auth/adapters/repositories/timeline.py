"""Security events (the account's timeline) and the admin audit chain, in SQL.

The timeline pages newest first by (occurred_at, seq), seq being the order events were
recorded in. A page token is that position of the page's last event with an expiry, sealed
with the key ring and bound to the account: opaque to clients, useless for another account,
and refused after a day (INVALID_ARGUMENT, reason PAGE_TOKEN_INVALID, on `page.page_token`).
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Row, and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.adapters.repositories._sql import origin_from, origin_values
from services.auth.adapters.tables import audit_log, security_events
from services.auth.domain.events import Actor, ActorKind, SecurityEvent, SecurityEventType
from services.auth.service.ports import EventPage, StoredSecurityEvent
from walletcore import audit
from walletcore.clock import Clock
from walletcore.crypto import DecryptionFailed, KeyRing
from walletcore.errors import FieldViolation, InvalidArgument

PAGE_TOKEN_LIFETIME: Final = timedelta(days=1)
PAGE_TOKEN_INVALID: Final = "PAGE_TOKEN_INVALID"  # noqa: S105 (a reason, not a password)
PAGE_TOKEN_FIELD: Final = "page.page_token"  # noqa: S105 (a field path, not a password)


def page_token_invalid() -> InvalidArgument:
    return InvalidArgument(
        [FieldViolation(PAGE_TOKEN_FIELD, "is not a token of this list, or has expired")],
        "the page token does not fit this list",
        reason=PAGE_TOKEN_INVALID,
    )


@dataclass(frozen=True, slots=True)
class _Position:
    occurred_at: datetime
    seq: int


class _PageTokens:
    def __init__(self, encryption: KeyRing, clock: Clock) -> None:
        self._encryption = encryption
        self._clock = clock

    def issue(self, account_id: str, after: _Position) -> str:
        expires = self._clock() + PAGE_TOKEN_LIFETIME
        content = {
            "at": after.occurred_at.astimezone(UTC).isoformat(),
            "seq": after.seq,
            "exp": int(expires.timestamp()),
        }
        sealed = self._encryption.encrypt(
            json.dumps(content).encode(), associated_data=_token_binding(account_id)
        )
        return base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    def read(self, account_id: str, token: str) -> _Position:
        try:
            sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            content = json.loads(
                self._encryption.decrypt(sealed, associated_data=_token_binding(account_id))
            )
            position = _Position(datetime.fromisoformat(content["at"]), int(content["seq"]))
            expired = self._clock().timestamp() >= int(content["exp"])
        except (ValueError, KeyError, TypeError, DecryptionFailed):
            raise page_token_invalid() from None
        if expired:
            raise page_token_invalid()
        return position


def _token_binding(account_id: str) -> bytes:
    return f"auth.security_events:{account_id}:page_token".encode()


class SqlSecurityEvents:
    def __init__(self, session: AsyncSession, encryption: KeyRing, clock: Clock) -> None:
        self._session = session
        self._page_tokens = _PageTokens(encryption, clock)

    async def add(self, event: SecurityEvent) -> str:
        event_id = uuid.uuid4().hex
        await self._session.execute(
            insert(security_events).values(
                id=event_id,
                account_id=event.account_id,
                type=event.type.value,
                occurred_at=event.occurred_at,
                actor_kind=event.actor.kind.value,
                actor_id=event.actor.id,
                **origin_values(event.origin),
                details=json.dumps(dict(event.details), sort_keys=True, ensure_ascii=False),
            )
        )
        return event_id

    async def list_for_account(
        self, account_id: str, *, page_size: int, page_token: str
    ) -> EventPage:
        if page_size < 1:
            raise ValueError("a page holds at least one event")
        columns = security_events.c
        statement = select(security_events).where(columns.account_id == account_id)
        if page_token:
            after = self._page_tokens.read(account_id, page_token)
            statement = statement.where(
                or_(
                    columns.occurred_at < after.occurred_at,
                    and_(columns.occurred_at == after.occurred_at, columns.seq < after.seq),
                )
            )
        rows = (
            await self._session.execute(
                statement.order_by(columns.occurred_at.desc(), columns.seq.desc()).limit(
                    page_size + 1
                )
            )
        ).all()
        page = rows[:page_size]
        next_page_token = ""
        if len(rows) > page_size:
            last = page[-1]
            next_page_token = self._page_tokens.issue(
                account_id, _Position(last.occurred_at, last.seq)
            )
        return EventPage(
            events=[_stored_event(row) for row in page], next_page_token=next_page_token
        )


def _stored_event(row: Row[Any]) -> StoredSecurityEvent:
    event = SecurityEvent(
        type=SecurityEventType(row.type),
        account_id=row.account_id,
        occurred_at=row.occurred_at,
        actor=Actor(ActorKind(row.actor_kind), row.actor_id),
        origin=origin_from(row),
        details=json.loads(row.details),
    )
    return StoredSecurityEvent(id=row.id, event=event)


class SqlAuditTrail(audit.SqlAuditTrail):
    """Appends to auth's hash-chained audit log in the unit of work's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, audit_log)
