"""The account holder's own account and contacts: reading it, and adding a second contact.

AddContact sends a code to the new contact without asking whether another account has it:
answering CONTACT_IN_USE there would let any signed-in user test which phones and addresses
are registered. The code proves the caller receives messages there; only then, at
VerifyContact, does the repository's uniqueness check answer ALREADY_EXISTS / CONTACT_IN_USE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from services.auth.domain.account import Account
from services.auth.domain.contacts import Contact, VerifiedContact
from services.auth.domain.events import Origin
from services.auth.domain.pending import PendingContact, PendingContactPurpose
from services.auth.domain.proofs import ChallengePurpose
from services.auth.domain.reasons import Reason
from services.auth.service.codes import check_code, destination_ref, new_contact_hit, send_code
from services.auth.service.context import AuthContext, publish
from services.auth.service.ports import AccountReads, AccountSummary, AuthUnitOfWork
from walletcore.errors import FailedPrecondition, NotFound

VERIFICATION_NOT_FOUND: Final = "VERIFICATION_NOT_FOUND"
ACCOUNT_NOT_FOUND: Final = "ACCOUNT_NOT_FOUND"


@dataclass(frozen=True, slots=True)
class ContactVerificationStarted:
    verification_id: str
    masked_destination: str
    expires_at: datetime


async def get_account(reads: AccountReads, ctx: AuthContext, *, account_id: str) -> AccountSummary:
    """The caller's own account; a frozen account still reads itself. Only what the answer
    shows is read, in one statement (`AccountReads.summary`)."""
    summary = await reads.summary(account_id)
    if summary is None:
        raise _no_such_account()
    return summary


async def add_contact(
    uow: AuthUnitOfWork, ctx: AuthContext, *, account_id: str, contact: Contact
) -> ContactVerificationStarted:
    """Sends a CONTACT_VERIFICATION code to a contact of the kind the account lacks; besides
    the destination's limits, the account's daily budget of codes to contacts it adds
    (`CODES_SENT_TO_NEW_CONTACTS_PER_ACCOUNT_DAY`) is charged, known contact or not."""
    account = await _own_account(uow, account_id, for_update=False)
    account.ensure_active()
    if account.contact_of_kind(contact.kind) is not None:
        raise FailedPrecondition(
            f"the account already has a verified {contact.kind}",
            reason=Reason.CONTACT_KIND_ALREADY_VERIFIED,
        )
    challenge = await send_code(
        uow,
        ctx,
        account_id=account.id,
        purpose=ChallengePurpose.CONTACT_VERIFICATION,
        destination=contact,
        destination_ref=destination_ref(ctx, contact),
        extra_hits=new_contact_hit(account.id),
    )
    pending = PendingContact(
        id=ctx.new_id(),
        purpose=PendingContactPurpose.ADD,
        account_id=account.id,
        contact=contact,
        challenge_id=challenge.id,
        created_at=challenge.created_at,
        expires_at=challenge.expires_at,
    )
    await uow.pending_contacts.add(pending)
    return ContactVerificationStarted(
        verification_id=pending.id,
        masked_destination=contact.masked(),
        expires_at=pending.expires_at,
    )


async def verify_contact(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    account_id: str,
    verification_id: str,
    code: str,
    origin: Origin,
) -> VerifiedContact:
    """Completes AddContact with the code; another account's verification is NOT_FOUND like
    one that does not exist."""
    pending = await uow.pending_contacts.get(verification_id, for_update=True)
    if (
        pending is None
        or pending.purpose is not PendingContactPurpose.ADD
        or pending.account_id != account_id
    ):
        raise NotFound("no such contact verification", reason=VERIFICATION_NOT_FOUND)
    now = ctx.clock()
    pending.ensure_open(now)
    proof = await check_code(
        uow,
        ctx,
        challenge_id=pending.challenge_id,
        raw_code=code,
        purpose=ChallengePurpose.CONTACT_VERIFICATION,
    )
    account = await _own_account(uow, account_id, for_update=True)
    contact = pending.complete(contact_id=ctx.new_id(), now=now)
    events = account.add_contact(contact, proof=proof, origin=origin, now=now)
    await uow.pending_contacts.save(pending)
    # Raises ALREADY_EXISTS / CONTACT_IN_USE when another account has verified it meanwhile.
    await uow.accounts.save(account)
    await publish(uow, events)
    return contact


async def _own_account(uow: AuthUnitOfWork, account_id: str, *, for_update: bool) -> Account:
    account = await uow.accounts.get(account_id, for_update=for_update)
    if account is None:
        raise _no_such_account()
    return account


def _no_such_account() -> NotFound:
    # Only a token of a deleted account gets here; there is nothing else to tell it.
    return NotFound("no such account", reason=ACCOUNT_NOT_FOUND)
