"""The account holder's own security timeline (AuthService.ListSecurityEvents)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from services.auth.domain.events import SecurityEventType
from services.auth.service.context import AuthContext
from services.auth.service.ports import AuthUnitOfWork, StoredSecurityEvent

# A filtered page reads at most this many stored pages, so a filter that matches little of a
# long timeline still answers in bounded time (with a token to go on).
_READS_PER_PAGE: Final = 10


@dataclass(frozen=True, slots=True)
class EventsPage:
    events: list[StoredSecurityEvent]
    """Newest first."""
    next_page_token: str
    """Empty on the last page."""


async def list_security_events(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    account_id: str,
    page_size: int,
    page_token: str,
    types: frozenset[SecurityEventType],
) -> EventsPage:
    """The account's events, newest first, only of `types` when given. A filtered page may
    hold fewer than `page_size` events (even none) and still continue."""
    events: list[StoredSecurityEvent] = []
    token = page_token
    for _ in range(_READS_PER_PAGE):
        page = await uow.security_events.list_for_account(
            account_id, page_size=page_size - len(events), page_token=token
        )
        events += [stored for stored in page.events if not types or stored.event.type in types]
        token = page.next_page_token
        if not token or len(events) >= page_size:
            break
    return EventsPage(events=events, next_page_token=token)
