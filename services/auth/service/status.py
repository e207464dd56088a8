"""What other wallet services ask of auth (AccountStatusService): whether an account is frozen
or a session active, auth's public signing keys, and the contact change binding drives.

The internal port's access policy has already admitted the calling service (only binding may
change contacts). Nothing here involves the user's own client: binding calls on their behalf,
so security events of a contact change carry no client address or device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from services.auth.domain.account import AccountStatus, officer_note
from services.auth.domain.contacts import Contact, ContactKind
from services.auth.domain.events import NO_CLIENT, Actor
from services.auth.domain.pending import PendingContact, PendingContactPurpose
from services.auth.domain.proofs import ChallengePurpose
from services.auth.domain.reasons import Reason, account_frozen
from services.auth.domain.stepup import StepUpPurpose
from services.auth.service.admin import (
    MAX_ID_LENGTH,
    MaskedContactView,
    account_not_found,
    load_account,
)
from services.auth.service.codes import (
    check_code,
    destination_ref,
    destination_subject,
    send_code,
)
from services.auth.service.context import AuthContext, publish
from services.auth.service.grants import accept_grant
from services.auth.service.ports import AccountReads, AuthUnitOfWork
from walletcore.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)

SIGNING_KEYS_CACHE_TTL: Final = timedelta(minutes=5)
"""How long callers may cache the key list; a token with an unknown kid refetches anyway."""

CONTACT_IN_USE: Final = "CONTACT_IN_USE"
CONTACT_UNCHANGED: Final = "CONTACT_UNCHANGED"
VERIFICATION_NOT_FOUND: Final = "VERIFICATION_NOT_FOUND"
_CHANGE_PURPOSES: Final = {
    ContactKind.PHONE: StepUpPurpose.CHANGE_PHONE,
    ContactKind.EMAIL: StepUpPurpose.CHANGE_EMAIL,
}


# -- status ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountStatusView:
    status: AccountStatus
    frozen_at: datetime | None
    totp_enabled: bool
    session_active: bool | None
    """None when no session was asked about."""


async def get_account_status(
    reads: AccountReads, ctx: AuthContext, *, account_id: str, session_id: str | None
) -> AccountStatusView:
    """Every service asks this on each user request, so it is one read outside a unit of
    work (`AccountReads.standing`). A session of another account reads as not active: a
    token's session id and subject must belong together."""
    standing = await reads.standing(account_id, session_id)
    if standing is None:
        raise account_not_found()
    session_active = None
    if session_id is not None:
        session_active = standing.session is not None and standing.session.is_active(ctx.clock())
    return AccountStatusView(
        status=standing.status,
        frozen_at=standing.frozen_at,
        totp_enabled=standing.totp_enabled,
        session_active=session_active,
    )


@dataclass(frozen=True, slots=True)
class PublishedKey:
    kid: str
    alg: str
    public_jwk: Mapping[str, str]
    current: bool
    """The key new tokens are signed with; the others verify tokens signed before a rotation."""


def published_signing_keys(jwks: Sequence[Mapping[str, str]]) -> list[PublishedKey]:
    """`SigningKeyRing.public_jwks()` as published: the ring's first key signs."""
    return [
        PublishedKey(kid=jwk["kid"], alg=jwk["alg"], public_jwk=jwk, current=index == 0)
        for index, jwk in enumerate(jwks)
    ]


# -- contact change ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantAuthorization:
    """The user's CHANGE_PHONE / CHANGE_EMAIL grant, bound to the new contact."""

    token: str


@dataclass(frozen=True, slots=True)
class OperatorAssistance:
    """A change a security officer handled in binding after checking approved KYC."""

    operator_id: str
    reason: str
    ticket_ref: str


ChangeAuthorization = GrantAuthorization | OperatorAssistance


@dataclass(frozen=True, slots=True)
class StartedVerification:
    verification_id: str
    masked_destination: str
    expires_at: datetime


async def start_contact_verification(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    service: str,
    account_id: str,
    new_contact: Contact,
    authorization: ChangeAuthorization,
) -> StartedVerification:
    """Sends a CONTACT_CHANGE code to `new_contact`, which will replace the account's
    verified contact of its kind once CompleteContactChange brings the code back."""
    requested_by = _requester(authorization, service)
    account = await load_account(uow, account_id, for_update=False)
    if account.is_frozen:
        raise account_frozen()
    current = account.contact_of_kind(new_contact.kind)
    if current is None:
        raise FailedPrecondition(
            f"the account has no verified {new_contact.kind} to replace",
            reason=Reason.CONTACT_NOT_FOUND,
        )
    if destination_subject(current.value) == destination_subject(new_contact):
        raise FailedPrecondition("the account already has this contact", reason=CONTACT_UNCHANGED)
    if isinstance(authorization, GrantAuthorization):
        await _consume_change_grant(uow, ctx, authorization.token, account.id, new_contact)
    if await uow.accounts.contact_in_use(new_contact):
        raise contact_in_use()
    challenge = await send_code(
        uow,
        ctx,
        account_id=account.id,
        purpose=ChallengePurpose.CONTACT_CHANGE,
        destination=new_contact,
        destination_ref=destination_ref(ctx, new_contact),
    )
    pending = PendingContact(
        id=ctx.new_id(),
        purpose=PendingContactPurpose.CHANGE,
        account_id=account.id,
        contact=new_contact,
        challenge_id=challenge.id,
        created_at=challenge.created_at,
        expires_at=challenge.expires_at,
        requested_by=requested_by,
    )
    await uow.pending_contacts.add(pending)
    return StartedVerification(pending.id, new_contact.masked(), pending.expires_at)


@dataclass(frozen=True, slots=True)
class ContactChange:
    changed_at: datetime
    contact: MaskedContactView


async def complete_contact_change(
    uow: AuthUnitOfWork, ctx: AuthContext, *, service: str, verification_id: str, code: str
) -> ContactChange:
    """Replaces the contact with the one the code proves; a CONTACT_CHANGED event notifies
    the old contact and the new one. A contact taken by another account since the start
    fails ALREADY_EXISTS / CONTACT_IN_USE."""
    pending = await uow.pending_contacts.get(verification_id, for_update=True)
    if pending is None or pending.purpose is not PendingContactPurpose.CHANGE:
        raise NotFound("no contact change has this id", reason=VERIFICATION_NOT_FOUND)
    if pending.account_id is None:  # an invariant, checked also under python -O
        raise RuntimeError("a contact change belongs to an account")
    now = ctx.clock()
    pending.ensure_open(now)
    await check_code(
        uow,
        ctx,
        challenge_id=pending.challenge_id,
        raw_code=code,
        purpose=ChallengePurpose.CONTACT_CHANGE,
    )
    account = await load_account(uow, pending.account_id, for_update=True)
    if await uow.accounts.contact_in_use(pending.contact):
        raise contact_in_use()
    verified = pending.complete(contact_id=ctx.new_id(), now=now)
    actor = pending.requested_by or Actor.service(service)
    events = account.replace_contact(verified, actor=actor, origin=NO_CLIENT, now=now)
    await uow.pending_contacts.save(pending)
    await uow.accounts.save(account)
    await publish(uow, events)
    masked = MaskedContactView(verified.kind, verified.value.masked(), verified.verified_at)
    return ContactChange(changed_at=now, contact=masked)


def contact_in_use() -> AlreadyExists:
    return AlreadyExists("another account has this contact", reason=CONTACT_IN_USE)


def _requester(authorization: ChangeAuthorization, service: str) -> Actor:
    """Who the change is for the record: the officer of an assisted change, else the service
    acting on the user's grant. Bad officer fields name `operator_assisted.*`."""
    if isinstance(authorization, GrantAuthorization):
        return Actor.service(service)
    violations = []
    operator_id = authorization.operator_id.strip()
    if not operator_id or len(operator_id) > MAX_ID_LENGTH or not operator_id.isprintable():
        violations.append(
            FieldViolation(
                "operator_assisted.operator_id", f"is required: 1 to {MAX_ID_LENGTH} characters"
            )
        )
    try:
        officer_note(authorization.reason, authorization.ticket_ref)
    except InvalidArgument as error:
        violations += [
            FieldViolation(f"operator_assisted.{violation.field}", violation.description)
            for violation in error.violations
        ]
    if violations:
        raise InvalidArgument(violations)
    return Actor.security_officer(operator_id)


async def _consume_change_grant(
    uow: AuthUnitOfWork, ctx: AuthContext, token: str, account_id: str, new_contact: Contact
) -> None:
    """Accepts the user's grant for exactly this change (its new contact), once."""
    await accept_grant(
        uow,
        ctx,
        token,
        account_id=account_id,
        purpose=_CHANGE_PURPOSES[new_contact.kind].value,
        object_id=new_contact.value,
    )
