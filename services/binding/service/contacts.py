"""Changing the verified phone or email, by the user or through a security officer.

Binding drives the workflow (`domain.contact_changes`); auth checks the new contact is free
and unchanged, sends and checks the code, applies the change, records the security event and
notifies the old contact. When the change completes, binding starts (or restarts) the
account's 24-hour withdrawal hold from the moment auth applied it.

Auth's idempotency keys are binding's: StartContactVerification gets the change id, and each
completion attempt a digest of the change id and the client's request_id. A retry of one
attempt so reaches auth under the same key (auth answers it once), while a second attempt
with another code is a new request, and two users' request ids can never collide at auth,
where binding is the one caller.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NoReturn

from services.binding.domain.contact_changes import (
    GRANT_PURPOSES,
    AbandonReason,
    ContactChange,
    parse_assistance,
    refusal_for,
    require_kyc_approved,
)
from services.binding.domain.holds import HoldWindow
from services.binding.domain.reasons import Reason, change_not_found
from services.binding.service.context import BindingContext
from services.binding.service.ports import BindingUnitOfWork, NewContact, OperatorAssistance
from walletcore.audit import AuditRecord
from walletcore.errors import DomainError
from walletcore.idempotency import CommittedRefusal

SECURITY_OFFICER_ROLE: Final = "security_officer"
START_ASSISTED_ACTION: Final = "START_ASSISTED_CONTACT_CHANGE"
COMPLETE_ASSISTED_ACTION: Final = "COMPLETE_ASSISTED_CONTACT_CHANGE"
VERIFICATION_NOT_FOUND: Final = "VERIFICATION_NOT_FOUND"
"""Auth's reason for a verification it does not know (any more)."""

_CLOSING_REASONS: Final = {
    Reason.CODE_EXPIRED: AbandonReason.CODE_EXPIRED,
    Reason.TOO_MANY_ATTEMPTS: AbandonReason.TOO_MANY_ATTEMPTS,
    Reason.CONTACT_IN_USE: AbandonReason.CONTACT_IN_USE,
    VERIFICATION_NOT_FOUND: AbandonReason.VERIFICATION_LOST,
}


@dataclass(frozen=True, slots=True)
class StartedChange:
    change_id: str
    masked_destination: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CompletedChange:
    changed_at: datetime
    withdrawal_hold: HoldWindow


def attempt_request_id(change_id: str, request_id: str) -> str:
    """Auth's request_id for one completion attempt (see the module docstring)."""
    return hashlib.sha256(f"{change_id}\x00{request_id}".encode()).hexdigest()


async def start_contact_change(
    uow: BindingUnitOfWork,
    ctx: BindingContext,
    *,
    account_id: str,
    new_contact: NewContact,
    grant: str,
) -> StartedChange:
    """Accepts the user's CHANGE_PHONE / CHANGE_EMAIL grant whose object is the new contact
    (consumed here, so a refusal by auth leaves it usable), then auth sends the code."""
    await uow.grants.accept(
        grant,
        account_id=account_id,
        purpose=GRANT_PURPOSES[new_contact.kind],
        object_id=new_contact.value,
    )
    change_id = ctx.new_id()
    started = await ctx.contacts.start(
        request_id=change_id, account_id=account_id, new_contact=new_contact, grant=grant
    )
    change = ContactChange.start_by_user(
        id=change_id,
        account_id=account_id,
        kind=new_contact.kind,
        verification_id=started.verification_id,
        now=ctx.clock(),
        expires_at=started.expires_at,
    )
    await uow.contact_changes.add(change)
    return StartedChange(change_id, started.masked_destination, started.expires_at)


async def complete_contact_change(
    uow: BindingUnitOfWork,
    ctx: BindingContext,
    *,
    account_id: str,
    change_id: str,
    code: str,
    request_id: str,
) -> CompletedChange:
    """The user's own change (CHANGE_NOT_FOUND for anyone else's or an officer's)."""
    change = await uow.contact_changes.get(change_id, for_update=True)
    if change is None or not change.visible_to_user(account_id):
        raise change_not_found()
    return await _complete(uow, ctx, change, code=code, request_id=request_id)


async def start_assisted_contact_change(
    uow: BindingUnitOfWork,
    ctx: BindingContext,
    *,
    operator_id: str,
    account_id: str,
    new_contact: NewContact,
    reason: str,
    ticket_ref: str,
) -> StartedChange:
    """An officer's change for a user who lost the old contact: KYC_NOT_APPROVED unless the
    account's KYC is approved (checked before auth sends anything); audit-chained."""
    assistance, checked_reason = parse_assistance(operator_id, reason=reason, ticket_ref=ticket_ref)
    require_kyc_approved(await ctx.kyc.is_approved(account_id))
    change_id = ctx.new_id()
    started = await ctx.contacts.start(
        request_id=change_id,
        account_id=account_id,
        new_contact=new_contact,
        assistance=OperatorAssistance(operator_id, checked_reason, assistance.ticket_ref),
    )
    now = ctx.clock()
    change = ContactChange.start_assisted(
        id=change_id,
        account_id=account_id,
        kind=new_contact.kind,
        verification_id=started.verification_id,
        now=now,
        expires_at=started.expires_at,
        assistance=assistance,
        kyc_approved=True,
    )
    await uow.contact_changes.add(change)
    await uow.audit.append(
        _audit_record(
            START_ASSISTED_ACTION,
            change,
            operator_id,
            reason=checked_reason,
        ),
        now,
    )
    return StartedChange(change_id, started.masked_destination, started.expires_at)


async def complete_assisted_contact_change(
    uow: BindingUnitOfWork,
    ctx: BindingContext,
    *,
    operator_id: str,
    change_id: str,
    code: str,
    request_id: str,
) -> CompletedChange:
    """An officer-assisted change (CHANGE_NOT_FOUND for a user's own); audit-chained."""
    change = await uow.contact_changes.get(change_id, for_update=True)
    if change is None or not change.is_assisted:
        raise change_not_found()
    completed = await _complete(uow, ctx, change, code=code, request_id=request_id)
    await uow.audit.append(
        _audit_record(COMPLETE_ASSISTED_ACTION, change, operator_id), ctx.clock()
    )
    return completed


async def _complete(
    uow: BindingUnitOfWork,
    ctx: BindingContext,
    change: ContactChange,
    *,
    code: str,
    request_id: str,
) -> CompletedChange:
    """Auth checks the code; a refusal that ends the change (expired, too many attempts, the
    contact taken meanwhile) closes it for good, committed, before the error is raised."""
    now = ctx.clock()
    if (due := change.require_open(now)) is not None:
        await _abandon(uow, change, due, now)
    try:
        changed_at = await ctx.contacts.complete(
            request_id=attempt_request_id(change.id, request_id),
            verification_id=change.verification_id,
            code=code,
        )
    except DomainError as error:
        closing = _CLOSING_REASONS.get(error.reason)
        if closing is None:
            raise
        await _abandon(uow, change, closing, now)
    change.complete(changed_at)
    await uow.contact_changes.save(change)
    hold = await uow.withdrawal_holds.restart(change.account_id, changed_at)
    return CompletedChange(changed_at=changed_at, withdrawal_hold=hold.window(now))


async def _abandon(
    uow: BindingUnitOfWork, change: ContactChange, reason: AbandonReason, now: datetime
) -> NoReturn:
    change.abandon(reason, now)
    await uow.contact_changes.save(change)
    raise CommittedRefusal(refusal_for(reason))


def _audit_record(
    action: str, change: ContactChange, operator_id: str, *, reason: str | None = None
) -> AuditRecord:
    details = {"change_id": change.id, "contact_kind": change.kind.value}
    if change.assistance is not None:
        details["ticket_ref"] = change.assistance.ticket_ref
    if reason is not None:
        details["reason"] = reason
    return AuditRecord(
        actor=operator_id,
        actor_role=SECURITY_OFFICER_ROLE,
        action=action,
        target=f"account:{change.account_id}",
        details=details,
    )
