"""Security events and the admin audit chain on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.auth.adapters import tables
from services.auth.adapters.repositories import PAGE_TOKEN_INVALID
from services.auth.domain.events import Actor, Origin, SecurityEvent, SecurityEventType
from services.auth.service.fakes import FakeClock
from services.auth.service.ports import StoredSecurityEvent
from tests.integration.auth.persistence.builders import SHANGHAI, START, NewUnitOfWork
from walletcore import audit
from walletcore.audit import AuditRecord
from walletcore.errors import FieldViolation, InvalidArgument


def sign_in(account_id: str, minutes: int, session_id: str) -> SecurityEvent:
    return SecurityEvent(
        type=SecurityEventType.SIGN_IN,
        account_id=account_id,
        occurred_at=START + timedelta(minutes=minutes),
        actor=Actor.user(account_id),
        details={"session_id": session_id},
    )


async def record(new_uow: NewUnitOfWork, *events: SecurityEvent) -> list[str]:
    async with new_uow() as uow:
        ids = [await uow.security_events.add(event) for event in events]
        await uow.commit()
    return ids


async def all_pages(new_uow: NewUnitOfWork, account_id: str, page_size: int) -> list[list[str]]:
    """The session ids of each page, fetched in turn with the page tokens."""
    pages: list[list[str]] = []
    token = ""
    while True:
        async with new_uow() as uow:
            page = await uow.security_events.list_for_account(
                account_id, page_size=page_size, page_token=token
            )
        pages.append([stored.event.details["session_id"] for stored in page.events])
        token = page.next_page_token
        if not token:
            return pages


async def test_an_event_comes_back_with_its_actor_origin_and_details(
    new_uow: NewUnitOfWork, origin: Origin
) -> None:
    event = SecurityEvent(
        type=SecurityEventType.ACCOUNT_FROZEN,
        account_id="acc-1",
        occurred_at=START.astimezone(SHANGHAI),
        actor=Actor.security_officer("officer-7"),
        origin=origin,
        details={"reason": "phishing report — 钓鱼", "ticket_ref": "SEC-101"},
    )
    [event_id] = await record(new_uow, event)

    async with new_uow() as uow:
        page = await uow.security_events.list_for_account("acc-1", page_size=10, page_token="")

    assert page.events == [StoredSecurityEvent(id=event_id, event=event)]
    assert page.next_page_token == ""


async def test_the_timeline_pages_newest_first_and_breaks_ties_by_recording_order(
    new_uow: NewUnitOfWork,
) -> None:
    await record(
        new_uow,
        sign_in("acc-1", 0, "first"),
        sign_in("acc-1", 5, "third"),
        sign_in("acc-2", 6, "someone else's"),
        sign_in("acc-1", 1, "second"),
        sign_in("acc-1", 5, "fourth, same instant as third"),
        sign_in("acc-1", 9, "fifth"),
    )

    pages = await all_pages(new_uow, "acc-1", page_size=2)

    assert pages == [
        ["fifth", "fourth, same instant as third"],
        ["third", "second"],
        ["first"],
    ]


async def test_a_full_last_page_has_no_next_page(new_uow: NewUnitOfWork) -> None:
    await record(new_uow, sign_in("acc-1", 0, "a"), sign_in("acc-1", 1, "b"))

    assert await all_pages(new_uow, "acc-1", page_size=2) == [["b", "a"]]


async def page_token_of(new_uow: NewUnitOfWork, account_id: str) -> str:
    async with new_uow() as uow:
        page = await uow.security_events.list_for_account(account_id, page_size=1, page_token="")
    assert page.next_page_token
    return page.next_page_token


@pytest.mark.parametrize("token", ["not a token!", "QUJD"], ids=["not base64", "not sealed"])
async def test_a_malformed_page_token_is_invalid_argument(
    new_uow: NewUnitOfWork, token: str
) -> None:
    async with new_uow() as uow:
        with pytest.raises(InvalidArgument) as refused:
            await uow.security_events.list_for_account("acc-1", page_size=1, page_token=token)

    assert refused.value.reason == PAGE_TOKEN_INVALID
    assert [v.field for v in refused.value.violations] == ["page.page_token"]


async def test_another_accounts_page_token_is_invalid_argument(new_uow: NewUnitOfWork) -> None:
    await record(new_uow, sign_in("acc-2", 0, "a"), sign_in("acc-2", 1, "b"))
    token = await page_token_of(new_uow, "acc-2")

    async with new_uow() as uow:
        with pytest.raises(InvalidArgument) as refused:
            await uow.security_events.list_for_account("acc-1", page_size=1, page_token=token)

    assert refused.value.reason == PAGE_TOKEN_INVALID


async def test_a_page_token_expires_after_a_day(new_uow: NewUnitOfWork, clock: FakeClock) -> None:
    await record(new_uow, sign_in("acc-1", 0, "a"), sign_in("acc-1", 1, "b"))
    token = await page_token_of(new_uow, "acc-1")
    clock.advance(timedelta(hours=23))
    async with new_uow() as uow:
        still_valid = await uow.security_events.list_for_account(
            "acc-1", page_size=1, page_token=token
        )
    clock.advance(timedelta(hours=1))

    async with new_uow() as uow:
        with pytest.raises(InvalidArgument) as refused:
            await uow.security_events.list_for_account("acc-1", page_size=1, page_token=token)

    assert [s.event.details["session_id"] for s in still_valid.events] == ["a"]
    assert refused.value.violations == (
        FieldViolation("page.page_token", "is not a token of this list, or has expired"),
    )


async def test_audit_records_are_appended_to_the_verifiable_chain(new_uow: NewUnitOfWork) -> None:
    async with new_uow() as uow:
        for action in ("FREEZE_ACCOUNT", "UNFREEZE_ACCOUNT"):
            record_ = AuditRecord(
                actor="officer-7",
                actor_role="security_officer",
                action=action,
                target="account:acc-1",
                details={"ticket_ref": "SEC-101"},
            )
            await uow.audit.append(record_, START)
        await uow.commit()

    async with new_uow() as uow:
        verification = await audit.verify(uow.session, tables.audit_log)
        entries = await audit.export(uow.session, tables.audit_log)

    assert verification.ok
    assert [(e["seq"], e["action"], e["details"]) for e in entries] == [
        (1, "FREEZE_ACCOUNT", {"ticket_ref": "SEC-101"}),
        (2, "UNFREEZE_ACCOUNT", {"ticket_ref": "SEC-101"}),
    ]
