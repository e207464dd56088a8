"""Registration: a password and a first contact, proved with a code, make an account.

Enumeration safety. StartRegistration answers a contact that already belongs to an account
exactly as it answers a fresh one: the same limits are charged, the password is checked and
hashed all the same, and a registration with a stored challenge comes back. The only
difference is that no message is sent at all, so the code of that challenge reaches nobody and
CompleteRegistration can only fail on it as on any wrong code (each wrong try counting in the
contact's ledger). Telling the owner "someone tried to register with your contact" would need a
notice the Notifier port and the SecurityEventType enum do not have, and would let anyone send
the owner messages; a person who forgot they have an account gets no code and can reset their
password instead.

Two registrations of one fresh contact may both be started; the first to complete wins, and
the other ends in ALREADY_EXISTS / CONTACT_IN_USE from the repository's uniqueness check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from services.auth.domain.account import Account
from services.auth.domain.contacts import Contact
from services.auth.domain.events import Origin
from services.auth.domain.pending import PendingContact, PendingContactPurpose
from services.auth.domain.proofs import ChallengePurpose
from services.auth.service.codes import (
    channel_of,
    check_code,
    client_address_hit,
    destination_ref,
    issue_undelivered_challenge,
    send_code,
    send_limit_hits,
)
from services.auth.service.context import AuthContext, publish
from services.auth.service.ports import AuthUnitOfWork
from services.auth.service.sessions import TokenPair, open_session
from walletcore.errors import NotFound
from walletcore.ratelimit.enforce import enforce

REGISTRATION_NOT_FOUND: Final = "REGISTRATION_NOT_FOUND"


@dataclass(frozen=True, slots=True)
class RegistrationStarted:
    registration_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Registered:
    account_id: str
    tokens: TokenPair


async def start_registration(
    uow: AuthUnitOfWork, ctx: AuthContext, *, password: str, contact: Contact, origin: Origin
) -> RegistrationStarted:
    """Checks the password (field `password`), hashes it, and sends a REGISTRATION code to
    `contact`; see the module docstring for a contact already in use."""
    normalized = ctx.password_policy.check(password, contacts=[contact], field="password")
    anonymous_hits = client_address_hit(origin.client_address)
    contact_ref = destination_ref(ctx, contact)
    if await uow.accounts.contact_in_use(contact):
        await enforce(ctx.limiter, [*send_limit_hits(contact, ctx.rules), *anonymous_hits])
        challenge = await issue_undelivered_challenge(
            uow,
            ctx,
            purpose=ChallengePurpose.REGISTRATION,
            channel=channel_of(contact),
            destination_ref=contact_ref,
        )
    else:
        challenge = await send_code(
            uow,
            ctx,
            account_id=None,
            purpose=ChallengePurpose.REGISTRATION,
            destination=contact,
            destination_ref=contact_ref,
            extra_hits=anonymous_hits,
        )
    # Hashed only once the limits admitted the request: a refused flood costs no argon2 work.
    password_hash = await ctx.passwords.hash(normalized)
    pending = PendingContact(
        id=ctx.new_id(),
        purpose=PendingContactPurpose.REGISTRATION,
        account_id=None,
        contact=contact,
        challenge_id=challenge.id,
        created_at=challenge.created_at,
        expires_at=challenge.expires_at,
        password_hash=password_hash,
    )
    await uow.pending_contacts.add(pending)
    return RegistrationStarted(registration_id=pending.id, expires_at=pending.expires_at)


async def complete_registration(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    registration_id: str,
    code: str,
    origin: Origin,
) -> Registered:
    """Checks the code, creates the account with its first verified contact and signs it in
    on a first session."""
    pending = await uow.pending_contacts.get(registration_id, for_update=True)
    if pending is None or pending.purpose is not PendingContactPurpose.REGISTRATION:
        raise NotFound("no such registration", reason=REGISTRATION_NOT_FOUND)
    now = ctx.clock()
    pending.ensure_open(now)
    await check_code(
        uow,
        ctx,
        challenge_id=pending.challenge_id,
        raw_code=code,
        purpose=ChallengePurpose.REGISTRATION,
    )
    if pending.password_hash is None:  # an invariant, checked also under python -O
        raise RuntimeError("a registration keeps its password hash")
    contact = pending.complete(contact_id=ctx.new_id(), now=now)
    await uow.pending_contacts.save(pending)
    account, events = Account.register(
        id=ctx.new_id(),
        password_hash=pending.password_hash,
        contact=contact,
        origin=origin,
        now=now,
    )
    # Raises ALREADY_EXISTS / CONTACT_IN_USE when another registration of this contact won.
    await uow.accounts.add(account)
    await publish(uow, events)
    tokens = await open_session(uow, ctx, account_id=account.id, origin=origin)
    return Registered(account_id=account.id, tokens=tokens)
