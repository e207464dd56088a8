"""The security team's use cases: freezing one account or many, revoking sessions, reading an
account and its timeline, looking an account up by contact, and the audit trail's export."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from services.auth.domain.account import Account, AccountStatus
from services.auth.domain.contacts import Email, Phone, VerifiedContact
from services.auth.domain.events import (
    NO_CLIENT,
    Actor,
    ActorKind,
    Origin,
    RevokeReason,
    SecurityEventType,
)
from services.auth.domain.sessions import Session
from services.auth.service import admin
from services.auth.service.context import AuthContext
from services.auth.service.fakes import FakeClock, FakeStore, FakeTransactions
from services.auth.service.ports import AuthUnitOfWork
from services.auth.service.timeline import EventsPage
from walletcore import audit, audit_rpcs
from walletcore.audit import AuditRecord
from walletcore.audit_rpcs import AUDIT_EXPORT_TOKEN_LIFETIME, AuditExportPage, AuditExportTokens
from walletcore.errors import FailedPrecondition, InvalidArgument, NotFound

OFFICER = "officer-7"
ORIGIN = Origin(client_address="198.51.100.4")
PHONE = Phone("+8613800138000")
EMAIL = Email("alice@example.com")


async def add_account(
    tx: FakeTransactions, clock: FakeClock, account_id: str, *contacts: Phone | Email
) -> None:
    verified = [
        VerifiedContact(f"{account_id}-{index}", contact, clock())
        for index, contact in enumerate(contacts or (Email(f"{account_id}@example.com"),))
    ]
    account = Account(id=account_id, password_hash="h", contacts=verified, created_at=clock())

    async def work(uow: AuthUnitOfWork) -> None:
        await uow.accounts.add(account)

    await tx.run(work)


async def add_session(
    tx: FakeTransactions, ctx: AuthContext, account_id: str, session_id: str
) -> None:
    session, token = Session.start(
        id=session_id,
        account_id=account_id,
        origin=NO_CLIENT,
        first_token_id=f"{session_id}-token",
        first_token="secret",
        hasher=ctx.secrets,
        now=ctx.clock(),
    )

    async def work(uow: AuthUnitOfWork) -> None:
        await uow.sessions.add(session, token)

    await tx.run(work)


async def freeze(tx: FakeTransactions, ctx: AuthContext, account_id: str, **note: str) -> Any:
    async def work(uow: AuthUnitOfWork) -> admin.FreezeResult:
        return await admin.freeze_account(
            uow,
            ctx,
            officer_id=OFFICER,
            account_id=account_id,
            reason=note.get("reason", "card testing from a botnet"),
            ticket_ref=note.get("ticket_ref", "INC-42"),
            origin=ORIGIN,
        )

    return await tx.run(work)


async def bulk_freeze(
    tx: FakeTransactions, ctx: AuthContext, account_ids: list[str], reason: str = "breach"
) -> admin.BulkFreezeResult:
    async def work(uow: AuthUnitOfWork) -> admin.BulkFreezeResult:
        return await admin.bulk_freeze_accounts(
            uow,
            ctx,
            officer_id=OFFICER,
            account_ids=account_ids,
            reason=reason,
            ticket_ref="INC-99",
            origin=ORIGIN,
        )

    return await tx.run(work)


def audited(store: FakeStore, action: admin.AuditAction) -> list[AuditRecord]:
    return [record for record, _ in store.audit_records if record.action == action.value]


@pytest.fixture
async def alice(tx: FakeTransactions, clock: FakeClock) -> str:
    await add_account(tx, clock, "alice", PHONE, EMAIL)
    return "alice"


# -- freezing ----------------------------------------------------------------------------------


async def test_a_freeze_revokes_every_active_session_and_tells_every_contact(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, alice: str
) -> None:
    await add_session(tx, ctx, alice, "s1")
    await add_session(tx, ctx, alice, "s2")

    result = await freeze(tx, ctx, alice)

    assert (result.already_frozen, result.revoked_session_count) == (False, 2)
    assert result.frozen_at == ctx.clock()
    assert store.accounts[alice].status is AccountStatus.FROZEN
    assert all(
        session.revoke_reason is RevokeReason.ACCOUNT_FROZEN for session in store.sessions.values()
    )
    frozen = [e for e in store.events_of(alice) if e.type is SecurityEventType.ACCOUNT_FROZEN]
    assert frozen[0].actor == Actor.security_officer(OFFICER)
    assert {notice.to for notice in store.notifier.notices} == {PHONE, EMAIL}


async def test_a_freeze_is_audited_with_the_officer_ticket_and_reason_only(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, alice: str
) -> None:
    await freeze(tx, ctx, alice, reason="  stolen phone reported  ")

    [record] = audited(store, admin.AuditAction.FREEZE_ACCOUNT)
    assert record == AuditRecord(
        actor=OFFICER,
        actor_role="security_officer",
        action="FREEZE_ACCOUNT",
        target="account:alice",
        details={"reason": "stolen phone reported", "ticket_ref": "INC-42", "outcome": "FROZEN"},
    )


async def test_freezing_a_frozen_account_changes_nothing_and_says_so(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock, alice: str
) -> None:
    first = await freeze(tx, ctx, alice)
    clock.advance(timedelta(hours=1))

    again = await freeze(tx, ctx, alice)

    assert (again.already_frozen, again.revoked_session_count) == (True, 0)
    assert again.frozen_at == first.frozen_at
    assert len(store.accounts[alice].freeze_history) == 1
    outcomes = [r.details["outcome"] for r in audited(store, admin.AuditAction.FREEZE_ACCOUNT)]
    assert outcomes == ["FROZEN", "ALREADY_FROZEN"]


async def test_freezing_an_unknown_account_is_not_found_and_leaves_no_trace(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    with pytest.raises(NotFound) as caught:
        await freeze(tx, ctx, "nobody")

    assert caught.value.reason == "ACCOUNT_NOT_FOUND"
    assert store.audit_records == []


async def test_a_freeze_needs_a_reason_and_a_ticket(
    tx: FakeTransactions, ctx: AuthContext, alice: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await freeze(tx, ctx, alice, reason=" ", ticket_ref="")

    assert {violation.field for violation in caught.value.violations} == {"reason", "ticket_ref"}


async def unfreeze(tx: FakeTransactions, ctx: AuthContext, account_id: str) -> datetime:
    async def work(uow: AuthUnitOfWork) -> datetime:
        return await admin.unfreeze_account(
            uow,
            ctx,
            officer_id=OFFICER,
            account_id=account_id,
            reason="owner verified at branch",
            ticket_ref="INC-42",
            origin=ORIGIN,
        )

    return await tx.run(work)


async def test_an_unfreeze_restores_the_account_but_not_its_sessions(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock, alice: str
) -> None:
    await add_session(tx, ctx, alice, "s1")
    await freeze(tx, ctx, alice)
    clock.advance(timedelta(minutes=5))

    unfrozen_at = await unfreeze(tx, ctx, alice)

    account = store.accounts[alice]
    assert account.status is AccountStatus.ACTIVE
    assert [record.frozen for record in account.freeze_history] == [True, False]
    assert unfrozen_at == clock()
    assert not store.sessions["s1"].is_active(clock())
    [record] = audited(store, admin.AuditAction.UNFREEZE_ACCOUNT)
    assert record.target == "account:alice"


async def test_unfreezing_an_active_account_is_refused(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, alice: str
) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        await unfreeze(tx, ctx, alice)

    assert caught.value.reason == "ACCOUNT_NOT_FROZEN"
    assert store.audit_records == []


# -- bulk freezing -----------------------------------------------------------------------------


async def test_a_bulk_freeze_reports_each_distinct_id_in_the_order_given(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock
) -> None:
    for account_id in ("a1", "a2", "a3"):
        await add_account(tx, clock, account_id)
    await freeze(tx, ctx, "a2")

    result = await bulk_freeze(tx, ctx, ["a3", "ghost", "a2", "a1", "a3"])

    assert result.outcomes == [
        ("a3", admin.FreezeOutcome.FROZEN),
        ("ghost", admin.FreezeOutcome.NOT_FOUND),
        ("a2", admin.FreezeOutcome.ALREADY_FROZEN),
        ("a1", admin.FreezeOutcome.FROZEN),
    ]
    assert all(account.is_frozen for account in store.accounts.values())
    assert [len(store.accounts[a].freeze_history) for a in ("a1", "a2", "a3")] == [1, 1, 1]


async def test_a_bulk_freeze_audits_each_account_it_froze_and_the_call(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock
) -> None:
    for account_id in ("a1", "a2"):
        await add_account(tx, clock, account_id)
    await freeze(tx, ctx, "a2")
    store.audit_records.clear()

    await bulk_freeze(tx, ctx, ["a1", "a2", "ghost", "a1"])

    targets = [r.target for r in audited(store, admin.AuditAction.FREEZE_ACCOUNT)]
    assert targets == ["account:a1"]
    [summary] = audited(store, admin.AuditAction.BULK_FREEZE_ACCOUNTS)
    assert summary.details == {
        "reason": "breach",
        "ticket_ref": "INC-99",
        "requested_count": "3",
        "frozen_count": "1",
        "already_frozen_count": "1",
        "not_found_count": "1",
    }


@pytest.mark.parametrize("count", [0, admin.MAX_BULK_FREEZE_ACCOUNTS + 1])
async def test_a_bulk_freeze_takes_one_to_ten_thousand_ids(
    tx: FakeTransactions, ctx: AuthContext, count: int
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await bulk_freeze(tx, ctx, [f"id-{n}" for n in range(count)])

    assert [violation.field for violation in caught.value.violations] == ["account_ids"]


async def test_a_bulk_freeze_of_unknown_ids_still_needs_a_reason(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await bulk_freeze(tx, ctx, ["ghost"], reason="")

    assert [violation.field for violation in caught.value.violations] == ["reason"]


# -- sessions ----------------------------------------------------------------------------------


async def revoke_sessions(
    tx: FakeTransactions, ctx: AuthContext, account_id: str, reason: str = "device stolen"
) -> int:
    async def work(uow: AuthUnitOfWork) -> int:
        return await admin.revoke_account_sessions(
            uow,
            ctx,
            officer_id=OFFICER,
            account_id=account_id,
            reason=reason,
            ticket_ref="",
            origin=ORIGIN,
        )

    return await tx.run(work)


async def test_revoking_sessions_ends_the_active_ones_without_freezing(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock, alice: str
) -> None:
    await add_session(tx, ctx, alice, "s1")
    await add_session(tx, ctx, alice, "s2")
    await revoke_sessions(tx, ctx, alice)
    await add_session(tx, ctx, alice, "s3")

    revoked = await revoke_sessions(tx, ctx, alice)

    assert revoked == 1
    assert store.accounts[alice].status is AccountStatus.ACTIVE
    assert store.sessions["s3"].revoke_reason is RevokeReason.REVOKED_BY_OFFICER
    revocations = [e for e in store.events_of(alice) if e.type is SecurityEventType.SESSION_REVOKED]
    assert [e.details["session_id"] for e in revocations][-1] == "s3"
    assert revocations[-1].actor.kind is ActorKind.OPERATOR
    [_, last] = audited(store, admin.AuditAction.REVOKE_ACCOUNT_SESSIONS)
    assert last.details == {"reason": "device stolen", "revoked_session_count": "1"}


async def test_revoking_sessions_needs_a_reason(
    tx: FakeTransactions, ctx: AuthContext, alice: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await revoke_sessions(tx, ctx, alice, reason="")

    assert [violation.field for violation in caught.value.violations] == ["reason"]


# -- reading -----------------------------------------------------------------------------------


async def test_the_admin_view_masks_contacts_and_lists_freezes_newest_first(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, alice: str
) -> None:
    await add_session(tx, ctx, alice, "s1")
    await freeze(tx, ctx, alice)
    clock.advance(timedelta(minutes=1))
    await unfreeze(tx, ctx, alice)
    await add_session(tx, ctx, alice, "s2")

    async def work(uow: AuthUnitOfWork) -> admin.AdminAccountView:
        return await admin.get_account(uow, ctx, account_id=alice)

    view = await tx.run(work)

    assert [contact.masked_value for contact in view.contacts] == [
        PHONE.masked(),
        EMAIL.masked(),
    ]
    assert PHONE.e164 not in repr(view)
    assert EMAIL.address not in repr(view)
    assert [record.frozen for record in view.freeze_history] == [False, True]
    assert (view.status, view.active_session_count) == (AccountStatus.ACTIVE, 1)


async def find(tx: FakeTransactions, ctx: AuthContext, contact: Phone | Email) -> str:
    async def work(uow: AuthUnitOfWork) -> str:
        return await admin.find_account(uow, ctx, officer_id=OFFICER, contact=contact)

    return await tx.run(work)


async def test_finding_an_account_by_contact_is_audited_with_the_contact_masked(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, alice: str
) -> None:
    assert await find(tx, ctx, Email("ALICE@example.com")) == alice

    [record] = audited(store, admin.AuditAction.FIND_ACCOUNT)
    assert record.target == "account:alice"
    assert record.details == {
        "contact_kind": "email",
        "contact": "A***@example.com",
        "outcome": "FOUND",
    }


async def test_a_lookup_that_finds_nothing_is_not_found_and_still_audited(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    with pytest.raises(NotFound) as caught:
        await find(tx, ctx, PHONE)

    assert caught.value.reason == "ACCOUNT_NOT_FOUND"
    [record] = audited(store, admin.AuditAction.FIND_ACCOUNT)
    assert record.details["outcome"] == "NOT_FOUND"
    assert PHONE.e164 not in repr(record)


async def read_timeline(
    tx: FakeTransactions,
    ctx: AuthContext,
    account_id: str,
    *,
    page_size: int,
    page_token: str = "",
    types: frozenset[SecurityEventType] = frozenset(),
) -> EventsPage:
    async def work(uow: AuthUnitOfWork) -> EventsPage:
        return await admin.list_security_events(
            uow,
            ctx,
            account_id=account_id,
            page_size=page_size,
            page_token=page_token,
            types=types,
        )

    return await tx.run(work)


async def test_an_officer_pages_through_any_accounts_timeline_by_type(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, alice: str
) -> None:
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        await freeze(tx, ctx, alice)
        clock.advance(timedelta(minutes=1))
        await unfreeze(tx, ctx, alice)
    wanted = frozenset({SecurityEventType.ACCOUNT_FROZEN})

    first = await read_timeline(tx, ctx, alice, page_size=2, types=wanted)
    rest = await read_timeline(
        tx, ctx, alice, page_size=2, page_token=first.next_page_token, types=wanted
    )

    events = [stored.event for stored in [*first.events, *rest.events]]
    assert [event.type for event in events] == [SecurityEventType.ACCOUNT_FROZEN] * 3
    assert events == sorted(events, key=lambda event: event.occurred_at, reverse=True)
    assert rest.next_page_token == ""


async def test_the_timeline_of_an_unknown_account_is_not_found(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    with pytest.raises(NotFound):
        await read_timeline(tx, ctx, "nobody", page_size=10)


# -- the audit trail ---------------------------------------------------------------------------


class ChainReader:
    """An AuditReader over entries chained exactly as walletcore.audit chains them."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def append(self, action: str, at: datetime) -> None:
        entry: dict[str, Any] = {
            "seq": len(self.entries) + 1,
            "occurred_at": at.isoformat(timespec="microseconds"),
            "actor": OFFICER,
            "actor_role": "security_officer",
            "action": action,
            "target": "account:alice",
            "details": {"ticket_ref": "INC-1"},
            "prev_hash": self.entries[-1]["entry_hash"] if self.entries else audit.GENESIS_HASH,
        }
        entry["entry_hash"] = audit.compute_entry_hash(entry)
        self.entries.append(entry)

    async def verify(self) -> audit.AuditVerification:
        return audit.verify_entries(self.entries)

    async def export(self, *, after_seq: int, limit: int) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry["seq"] > after_seq][:limit]


@pytest.fixture
def chain(clock: FakeClock) -> ChainReader:
    reader = ChainReader()
    for minute in range(5):
        reader.append(f"ACTION_{minute}", clock() + timedelta(minutes=minute))
    return reader


async def export(
    chain: ChainReader,
    ctx: AuthContext,
    *,
    page_size: int = 50,
    page_token: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
    officer_id: str = OFFICER,
) -> AuditExportPage:
    return await audit_rpcs.export_audit_log(
        chain,
        AuditExportTokens(ctx.encryption, "auth"),
        ctx.clock(),
        operator_id=officer_id,
        start=start,
        end=end,
        page_size=page_size,
        page_token=page_token,
    )


async def test_the_export_pages_through_the_chain_in_sequence_order(
    chain: ChainReader, ctx: AuthContext
) -> None:
    first = await export(chain, ctx, page_size=2)
    second = await export(chain, ctx, page_size=2, page_token=first.next_page_token)
    third = await export(chain, ctx, page_size=2, page_token=second.next_page_token)

    entries = [*first.entries, *second.entries, *third.entries]
    assert [entry.seq for entry in entries] == [1, 2, 3, 4, 5]
    assert third.next_page_token == ""
    assert audit.verify_entries(chain.entries).ok
    assert [entry.entry_hash for entry in entries] == [e["entry_hash"] for e in chain.entries]


async def test_the_export_keeps_to_its_time_range(
    chain: ChainReader, ctx: AuthContext, clock: FakeClock
) -> None:
    page = await export(
        chain,
        ctx,
        start=clock() + timedelta(minutes=1),
        end=clock() + timedelta(minutes=3),
    )

    assert [entry.action for entry in page.entries] == ["ACTION_1", "ACTION_2"]


async def test_a_range_ending_before_it_starts_is_refused(
    chain: ChainReader, ctx: AuthContext, clock: FakeClock
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await export(chain, ctx, start=clock(), end=clock() - timedelta(seconds=1))

    assert [violation.field for violation in caught.value.violations] == ["end_time"]


@pytest.mark.parametrize("change", ["other_officer", "other_range", "edited", "expired"])
async def test_a_page_token_only_continues_its_own_export_for_a_day(
    chain: ChainReader, ctx: AuthContext, clock: FakeClock, change: str
) -> None:
    token = (await export(chain, ctx, page_size=2)).next_page_token
    request: dict[str, Any] = {"page_size": 2, "page_token": token}
    if change == "other_officer":
        request["officer_id"] = "officer-8"
    elif change == "other_range":
        request["start"] = clock()
    elif change == "edited":
        request["page_token"] = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    else:
        clock.advance(AUDIT_EXPORT_TOKEN_LIFETIME + timedelta(seconds=1))

    with pytest.raises(InvalidArgument) as caught:
        await export(chain, ctx, **request)

    assert caught.value.reason == "PAGE_TOKEN_INVALID"


async def test_verifying_reports_the_chain_and_when_it_was_checked(
    chain: ChainReader, ctx: AuthContext, clock: FakeClock
) -> None:
    chain.entries[2]["details"] = {"ticket_ref": "INC-2"}

    check = await audit_rpcs.verify_audit_log(chain, ctx.clock)

    assert (check.verification.ok, check.verification.first_invalid_seq) == (False, 3)
    assert check.verified_at == clock()
