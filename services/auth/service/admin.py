"""The security team's use cases (AccountAdminService): freezing, session revocation, account
lookup and the security timeline (VerifyAuditLog and ExportAuditLog are
`walletcore.audit_rpcs.AuditLogServicer`'s).

The admin port's access policy has already admitted the caller as a security officer; the use
cases take the officer's id and act as `Actor.security_officer`. Every mutating action, and
every lookup of an account by contact, appends an `AuditRecord` to the hash-chained trail in
the same transaction. The records hold references (account ids, the ticket, the officer's
reason, masked contacts), never a full phone number or address.

Lock order (PostgreSQL): account rows first, in ascending id order, and the audit trail last.
The trail's append takes a transaction-wide lock that serialises appenders; taking it only
after every row lock means no transaction ever waits for a row while holding it, so freezes
running concurrently on overlapping accounts queue instead of deadlocking.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from services.auth.domain.account import (
    MAX_FREEZE_REASON_LENGTH,
    MAX_TICKET_REF_LENGTH,
    Account,
    AccountStatus,
    FreezeRecord,
    officer_note,
)
from services.auth.domain.contacts import Contact, ContactKind
from services.auth.domain.events import (
    Actor,
    DomainEvent,
    Origin,
    RevokeReason,
    SecurityEventType,
)
from services.auth.service import timeline
from services.auth.service.context import AuthContext, publish
from services.auth.service.ports import AuthUnitOfWork
from walletcore.audit import AuditRecord
from walletcore.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from walletcore.idempotency import CommittedRefusal
from walletcore.identity import OperatorRole

MAX_ID_LENGTH: Final = 128
MAX_BULK_FREEZE_ACCOUNTS: Final = 10_000
_OFFICER_ROLE: Final = OperatorRole.SECURITY_OFFICER.value


class AuditAction(enum.StrEnum):
    """The `action` of auth's audit records."""

    FREEZE_ACCOUNT = "FREEZE_ACCOUNT"
    UNFREEZE_ACCOUNT = "UNFREEZE_ACCOUNT"
    BULK_FREEZE_ACCOUNTS = "BULK_FREEZE_ACCOUNTS"
    REVOKE_ACCOUNT_SESSIONS = "REVOKE_ACCOUNT_SESSIONS"
    FIND_ACCOUNT = "FIND_ACCOUNT"


class AdminReason(enum.StrEnum):
    """ErrorInfo reasons of the admin API beyond the domain's."""

    ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
    ACCOUNT_NOT_FROZEN = "ACCOUNT_NOT_FROZEN"
    PAGE_TOKEN_INVALID = "PAGE_TOKEN_INVALID"  # noqa: S105 (a name, not a password)


def parse_id(raw: str, *, field: str) -> str:
    """An opaque id (account, session) from a request: 1 to MAX_ID_LENGTH printable
    characters. Anything else is bad input, not an unknown id."""
    if not raw or len(raw) > MAX_ID_LENGTH or not raw.isprintable():
        raise InvalidArgument.field(
            field, f"must be an id of 1 to {MAX_ID_LENGTH} printable characters"
        )
    return raw


def account_not_found() -> NotFound:
    return NotFound("no account has this id", reason=AdminReason.ACCOUNT_NOT_FOUND)


def account_target(account_id: str) -> str:
    """An audit record's target for an account, as wallet.common.v1.AuditEntry spells it."""
    return f"account:{account_id}"


async def load_account(uow: AuthUnitOfWork, account_id: str, *, for_update: bool) -> Account:
    """The account, or NOT_FOUND / ACCOUNT_NOT_FOUND."""
    account = await uow.accounts.get(account_id, for_update=for_update)
    if account is None:
        raise account_not_found()
    return account


# -- freezing ----------------------------------------------------------------------------------


class FreezeOutcome(enum.StrEnum):
    FROZEN = "FROZEN"
    ALREADY_FROZEN = "ALREADY_FROZEN"
    NOT_FOUND = "NOT_FOUND"


@dataclass(frozen=True, slots=True)
class FreezeResult:
    frozen_at: datetime
    """When the account was frozen: now, or the earlier time when it already was."""
    already_frozen: bool
    revoked_session_count: int


async def freeze_account(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    officer_id: str,
    account_id: str,
    reason: str,
    ticket_ref: str,
    origin: Origin,
) -> FreezeResult:
    """Freezes the account, revoking every session; an already frozen account stays as it
    was (`already_frozen`). The attempt is audited either way."""
    reason, ticket_ref = officer_note(reason, ticket_ref)
    officer = Actor.security_officer(officer_id)
    now = ctx.clock()
    account = await load_account(uow, account_id, for_update=True)
    active_sessions = await _active_session_count(uow, account.id, now)
    events = account.freeze_by_officer(
        officer=officer, reason=reason, ticket_ref=ticket_ref, origin=origin, now=now
    )
    already_frozen = not events
    if not already_frozen:
        await _apply(uow, account, events)
    frozen_at = account.frozen_at
    if frozen_at is None:  # an invariant, checked also under python -O
        raise RuntimeError("a frozen account has its freeze time")
    outcome = FreezeOutcome.ALREADY_FROZEN if already_frozen else FreezeOutcome.FROZEN
    await _audit(
        uow,
        officer_id,
        AuditAction.FREEZE_ACCOUNT,
        account_target(account.id),
        {"reason": reason, "ticket_ref": ticket_ref, "outcome": outcome.value},
        now,
    )
    return FreezeResult(
        frozen_at=frozen_at,
        already_frozen=already_frozen,
        revoked_session_count=0 if already_frozen else active_sessions,
    )


async def unfreeze_account(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    officer_id: str,
    account_id: str,
    reason: str,
    ticket_ref: str,
    origin: Origin,
) -> datetime:
    """Unfreezes the account and returns when. Sessions the freeze revoked stay revoked.
    FAILED_PRECONDITION / ACCOUNT_NOT_FROZEN when it is not frozen."""
    reason, ticket_ref = officer_note(reason, ticket_ref)
    officer = Actor.security_officer(officer_id)
    now = ctx.clock()
    account = await load_account(uow, account_id, for_update=True)
    events = account.unfreeze(
        officer=officer, reason=reason, ticket_ref=ticket_ref, origin=origin, now=now
    )
    if not events:
        raise FailedPrecondition("the account is not frozen", reason=AdminReason.ACCOUNT_NOT_FROZEN)
    await _apply(uow, account, events)
    await _audit(
        uow,
        officer_id,
        AuditAction.UNFREEZE_ACCOUNT,
        account_target(account.id),
        {"reason": reason, "ticket_ref": ticket_ref},
        now,
    )
    return now


@dataclass(frozen=True, slots=True)
class BulkFreezeResult:
    outcomes: list[tuple[str, FreezeOutcome]]
    """One (account id, outcome) per distinct id, in the order given."""

    def count(self, outcome: FreezeOutcome) -> int:
        return sum(1 for _, each in self.outcomes if each is outcome)


async def bulk_freeze_accounts(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    officer_id: str,
    account_ids: Sequence[str],
    reason: str,
    ticket_ref: str,
    origin: Origin,
) -> BulkFreezeResult:
    """Freezes up to MAX_BULK_FREEZE_ACCOUNTS accounts in this one transaction.

    Audit: one FREEZE_ACCOUNT record per account this call froze (so "who froze this account"
    has the same answer however it was frozen), then one BULK_FREEZE_ACCOUNTS record for the
    call with its counts. Accounts already frozen and unknown ids appear only in the counts.
    """
    distinct = _distinct_account_ids(account_ids)
    reason, ticket_ref = officer_note(reason, ticket_ref)
    officer = Actor.security_officer(officer_id)
    now = ctx.clock()
    # Loaded and locked all at once, in id order: a few statements for the batch, not per account.
    found = await uow.accounts.get_many(distinct, for_update=True)
    outcomes = dict.fromkeys(distinct, FreezeOutcome.NOT_FOUND)
    for account in found:
        events = account.freeze_by_officer(
            officer=officer, reason=reason, ticket_ref=ticket_ref, origin=origin, now=now
        )
        if events:
            await _apply(uow, account, events)
            outcomes[account.id] = FreezeOutcome.FROZEN
        else:
            outcomes[account.id] = FreezeOutcome.ALREADY_FROZEN
    result = BulkFreezeResult(list(outcomes.items()))
    note = {"reason": reason, "ticket_ref": ticket_ref}
    for account_id in sorted(account.id for account in found):
        if outcomes[account_id] is FreezeOutcome.FROZEN:
            target = account_target(account_id)
            details = {**note, "outcome": FreezeOutcome.FROZEN.value, "bulk": "true"}
            await _audit(uow, officer_id, AuditAction.FREEZE_ACCOUNT, target, details, now)
    counts = {
        f"{outcome.value.lower()}_count": str(result.count(outcome)) for outcome in FreezeOutcome
    }
    await _audit(
        uow,
        officer_id,
        AuditAction.BULK_FREEZE_ACCOUNTS,
        f"ticket:{ticket_ref}",
        {**note, "requested_count": str(len(distinct)), **counts},
        now,
    )
    return result


def _distinct_account_ids(account_ids: Sequence[str]) -> list[str]:
    if not 1 <= len(account_ids) <= MAX_BULK_FREEZE_ACCOUNTS:
        raise InvalidArgument.field(
            "account_ids", f"must hold 1 to {MAX_BULK_FREEZE_ACCOUNTS:,} account ids"
        )
    return list(dict.fromkeys(account_ids))


# -- sessions ----------------------------------------------------------------------------------


async def revoke_account_sessions(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    officer_id: str,
    account_id: str,
    reason: str,
    ticket_ref: str,
    origin: Origin,
) -> int:
    """Revokes every active session of the account without freezing it; returns how many.
    Each revoked session is a SESSION_REVOKED event in the account's timeline."""
    reason, ticket_ref = _revocation_note(reason, ticket_ref)
    officer = Actor.security_officer(officer_id)
    now = ctx.clock()
    account = await load_account(uow, account_id, for_update=True)
    revoked = 0
    for session in await uow.sessions.list_for_account(account.id):
        if not session.is_active(now):
            continue
        events = account.revoke_session(
            session, reason=RevokeReason.REVOKED_BY_OFFICER, actor=officer, origin=origin, now=now
        )
        await uow.sessions.save(session)
        await publish(uow, events)
        revoked += 1
    details = {"reason": reason, "revoked_session_count": str(revoked)}
    if ticket_ref:
        details["ticket_ref"] = ticket_ref
    target = account_target(account.id)
    await _audit(uow, officer_id, AuditAction.REVOKE_ACCOUNT_SESSIONS, target, details, now)
    return revoked


def _revocation_note(reason: str, ticket_ref: str) -> tuple[str, str]:
    """A required reason and an optional ticket, trimmed, with the freeze's length limits."""
    reason, ticket_ref = reason.strip(), ticket_ref.strip()
    violations = []
    if not reason or len(reason) > MAX_FREEZE_REASON_LENGTH or not reason.isprintable():
        violations.append(
            FieldViolation("reason", f"is required: 1 to {MAX_FREEZE_REASON_LENGTH} characters")
        )
    if len(ticket_ref) > MAX_TICKET_REF_LENGTH or not ticket_ref.isprintable():
        violations.append(
            FieldViolation("ticket_ref", f"must be at most {MAX_TICKET_REF_LENGTH} characters")
        )
    if violations:
        raise InvalidArgument(violations)
    return reason, ticket_ref


# -- reading accounts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MaskedContactView:
    kind: ContactKind
    masked_value: str
    verified_at: datetime


@dataclass(frozen=True, slots=True)
class AdminAccountView:
    account_id: str
    status: AccountStatus
    contacts: list[MaskedContactView]
    totp_enabled: bool
    recovery_codes_remaining: int
    created_at: datetime
    active_session_count: int
    freeze_history: list[FreezeRecord]
    """Newest first."""


async def get_account(
    uow: AuthUnitOfWork, ctx: AuthContext, *, account_id: str
) -> AdminAccountView:
    account = await load_account(uow, account_id, for_update=False)
    codes = account.recovery_codes
    return AdminAccountView(
        account_id=account.id,
        status=account.status,
        contacts=[
            MaskedContactView(contact.kind, contact.value.masked(), contact.verified_at)
            for contact in account.contacts
        ],
        totp_enabled=account.totp_active,
        recovery_codes_remaining=codes.remaining
        if codes is not None and account.totp_active
        else 0,
        created_at=account.created_at,
        active_session_count=await _active_session_count(uow, account.id, ctx.clock()),
        freeze_history=list(reversed(account.freeze_history)),
    )


async def find_account(
    uow: AuthUnitOfWork, ctx: AuthContext, *, officer_id: str, contact: Contact
) -> str:
    """The id of the account that has verified `contact`. The lookup is audited, also when it
    finds nothing (then NOT_FOUND / ACCOUNT_NOT_FOUND, with the record committed)."""
    now = ctx.clock()
    account = await uow.accounts.find_by_contact(contact)
    details = {"contact_kind": contact.kind.value, "contact": contact.masked()}
    if account is None:
        target = f"contact:{contact.kind.value}"
        details["outcome"] = "NOT_FOUND"
        await _audit(uow, officer_id, AuditAction.FIND_ACCOUNT, target, details, now)
        raise CommittedRefusal(
            NotFound("no account has this contact", reason=AdminReason.ACCOUNT_NOT_FOUND)
        )
    details["outcome"] = "FOUND"
    target = account_target(account.id)
    await _audit(uow, officer_id, AuditAction.FIND_ACCOUNT, target, details, now)
    return account.id


async def list_security_events(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    account_id: str,
    page_size: int,
    page_token: str,
    types: frozenset[SecurityEventType],
) -> timeline.EventsPage:
    """Any account's timeline, as its holder pages through their own (newest first, only
    `types` when given); NOT_FOUND / ACCOUNT_NOT_FOUND for an unknown account."""
    await load_account(uow, account_id, for_update=False)
    return await timeline.list_security_events(
        uow,
        ctx,
        account_id=account_id,
        page_size=page_size,
        page_token=page_token,
        types=types,
    )


# -- helpers -----------------------------------------------------------------------------------


async def _apply(uow: AuthUnitOfWork, account: Account, events: Sequence[DomainEvent]) -> None:
    await uow.accounts.save(account)
    await publish(uow, events)


async def _active_session_count(uow: AuthUnitOfWork, account_id: str, now: datetime) -> int:
    sessions = await uow.sessions.list_for_account(account_id)
    return sum(1 for session in sessions if session.is_active(now))


async def _audit(
    uow: AuthUnitOfWork,
    officer_id: str,
    action: AuditAction,
    target: str,
    details: dict[str, str],
    now: datetime,
) -> None:
    record = AuditRecord(
        actor=officer_id,
        actor_role=_OFFICER_ROLE,
        action=action.value,
        target=target,
        details=details,
    )
    await uow.audit.append(record, now)
