"""Sending and checking codes: the one place the rate limits of SPEC 7 meet the domain's checks.

- `send_code`: every RPC that sends an SMS or e-mail code charges the destination's minute and
  day limits (plus whatever else the RPC is limited by) in ONE limiter check, then issues the
  challenge and writes the code to the outbox.
- `check_code` / `check_second_factor`: every RPC that checks a code charges the code-check
  limit of the ledger subject (the account's or destination's, for the kind of code: see
  `domain.ledger`), runs the domain check and saves what it changed; a rejection that changed
  state (a wrong or replayed code counts against its limits) is raised as `CommittedRefusal`,
  so it is committed before the client sees the error.

A TOTP secret is encrypted at rest with the account id as associated data (see
`encrypt_totp_secret`), so a ciphertext copied to another account's row does not decrypt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from services.auth.domain.account import Account
from services.auth.domain.contacts import Contact, ContactKind, Email, Phone
from services.auth.domain.events import Origin
from services.auth.domain.ledger import second_factor_ledger_subject
from services.auth.domain.otp import OtpChallenge, OtpChannel, normalize_numeric_code
from services.auth.domain.proofs import ChallengePurpose, CheckOutcome, VerifiedFactor, rejected
from services.auth.domain.reasons import code_expired, code_invalid
from services.auth.domain.recovery import normalize_recovery_code
from services.auth.domain.totp import totp_not_enabled
from services.auth.service.context import AuthContext, AuthRules, publish
from services.auth.service.ports import AuthUnitOfWork
from walletcore.errors import FieldViolation, InvalidArgument
from walletcore.idempotency import CommittedRefusal
from walletcore.ratelimit.base import Hit, Policy
from walletcore.ratelimit.enforce import enforce
from walletcore.ratelimit.policies import (
    CODE_CHECKS_PER_ACCOUNT_HOUR,
    CODES_SENT_PER_DESTINATION_DAY,
)

CODES_SENT_PER_CLIENT_ADDRESS_HOUR: Final = Policy("codes_sent_per_client_address_hour", 30, 3600)
"""Codes a signed-out client address may have sent, to any destinations, in an hour: the
per-destination limits alone let one host pump SMS to many numbers."""

CODES_SENT_TO_NEW_CONTACTS_PER_ACCOUNT_DAY: Final = Policy(
    "codes_sent_to_new_contacts_per_account_day", 10, 86400
)
"""Codes one signed-in account may have sent to contacts it is adding, in a day: the same
bound for a signed-in pump (AddContact to ever new numbers) that the per-address limit is for
a signed-out one, while a person correcting a typo or two never meets it."""


def destination_subject(contact: Contact) -> str:
    """What the per-destination limits count: the number, or the address as "one email
    belongs to one account" compares it, so changing its case buys no extra codes."""
    if isinstance(contact, Email):
        return f"email:{contact.lookup_key}"
    return f"phone:{contact.e164}"


def destination_ref(ctx: AuthContext, contact: Contact) -> str:
    """An opaque, stable reference to a contact not yet verified (a registration's ledger
    subject, an OtpChallenge's destination): a keyed hash, never the contact itself."""
    return ctx.secrets.hash(f"destination:{destination_subject(contact)}")


def send_limit_hits(destination: Contact, rules: AuthRules) -> list[Hit]:
    """The per-destination resend-interval and day hits of one code sent to `destination`."""
    subject = destination_subject(destination)
    return [
        Hit(rules.code_resend, subject),
        Hit(CODES_SENT_PER_DESTINATION_DAY, subject),
    ]


def client_address_hit(client_address: str | None) -> list[Hit]:
    """The hit a signed-out caller's address adds to an RPC that sends a code."""
    return [Hit(CODES_SENT_PER_CLIENT_ADDRESS_HOUR, client_address or "unknown")]


def new_contact_hit(account_id: str) -> list[Hit]:
    """The hit a signed-in account adds to an RPC that sends a code to a contact it adds."""
    return [Hit(CODES_SENT_TO_NEW_CONTACTS_PER_ACCOUNT_DAY, account_id)]


def code_check_hit(subject: str) -> Hit:
    """One code check charged to a ledger subject (`domain.ledger.ledger_subject`): the hourly
    checks are counted per kind of code, like the failures, so that a stranger's checks of
    reset codes cannot refuse the owner's self-freeze or second factor."""
    return Hit(CODE_CHECKS_PER_ACCOUNT_HOUR, subject)


CONTACT_OF_CHANNEL: Final = {OtpChannel.SMS: ContactKind.PHONE, OtpChannel.EMAIL: ContactKind.EMAIL}
"""The kind of contact a code sent on a channel goes to."""


def channel_of(contact: Contact) -> OtpChannel:
    return OtpChannel.SMS if isinstance(contact, Phone) else OtpChannel.EMAIL


async def send_code(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    account_id: str | None,
    purpose: ChallengePurpose,
    destination: Contact,
    destination_ref: str,
    extra_hits: Sequence[Hit] = (),
) -> OtpChallenge:
    """Charges the limits (one check), issues a challenge and puts its code in the outbox.

    `destination_ref` is what the challenge records about where the code went (a verified
    contact's id, or `destination_ref(ctx, contact)` for one not yet verified).
    """
    await enforce(ctx.limiter, [*send_limit_hits(destination, ctx.rules), *extra_hits])
    return await deliver_code(
        uow,
        ctx,
        account_id=account_id,
        purpose=purpose,
        destination=destination,
        destination_ref=destination_ref,
    )


async def deliver_code(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    account_id: str | None,
    purpose: ChallengePurpose,
    destination: Contact,
    destination_ref: str,
) -> OtpChallenge:
    """`send_code` for an RPC that charged its limits itself: issues the challenge and puts
    its code in the outbox. Its statements are those of `issue_undelivered_challenge`."""
    code = ctx.new_code()
    challenge = OtpChallenge.issue(
        id=ctx.new_id(),
        account_id=account_id,
        purpose=purpose,
        channel=channel_of(destination),
        destination_ref=destination_ref,
        code=code,
        hasher=ctx.secrets,
        now=ctx.clock(),
        lifetimes=ctx.rules.otp_lifetimes,
    )
    await uow.otp_challenges.add(challenge)
    await uow.notifier.send_code(
        destination, code=code, purpose=purpose, expires_at=challenge.expires_at
    )
    return challenge


async def check_code(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    challenge_id: str,
    raw_code: str,
    purpose: ChallengePurpose,
) -> VerifiedFactor:
    """The proof of a sent code, or the domain's refusal.

    An unknown challenge answers like an expired code: there is nothing to learn from probing
    ids. An untried self-freeze code is not charged to the hourly code checks, which a
    stranger can spend (`OtpChallenge.is_untried_self_freeze`).
    """
    challenge = await uow.otp_challenges.get(challenge_id, for_update=True)
    if challenge is None:
        raise code_expired()
    subject = challenge.ledger_subject
    if not challenge.is_untried_self_freeze:
        await enforce(ctx.limiter, [code_check_hit(subject)])
    ledger = await uow.code_failure_ledgers.get_or_new(subject)
    outcome = challenge.check(
        raw_code, purpose=purpose, hasher=ctx.secrets, ledger=ledger, now=ctx.clock()
    )
    await uow.otp_challenges.save(challenge)
    await uow.code_failure_ledgers.save(ledger)
    return await _proof_or_committed_refusal(uow, outcome)


def totp_associated_data(account_id: str) -> bytes:
    """The associated data of an account's encrypted TOTP secret (the persistence adapters
    store the ciphertext as the domain holds it)."""
    return f"auth.totp:{account_id}".encode()


def encrypt_totp_secret(ctx: AuthContext, account_id: str, secret: str) -> bytes:
    return ctx.encryption.encrypt(secret.encode(), associated_data=totp_associated_data(account_id))


def decrypt_totp_secret(ctx: AuthContext, account_id: str, encrypted_secret: bytes) -> str:
    return ctx.encryption.decrypt(
        encrypted_secret, associated_data=totp_associated_data(account_id)
    ).decode()


async def check_second_factor(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    account: Account,
    *,
    totp_code: str | None,
    recovery_code: str | None,
    purpose: ChallengePurpose,
    origin: Origin,
    field: str = "second_factor",
) -> VerifiedFactor:
    """The proof of exactly one of a TOTP code or a recovery code of `account`.

    Violations name `{field}.totp_code` / `{field}.recovery_code`. A wrong code and a replayed
    or reused one get the same answer (INVALID_ARGUMENT / CODE_INVALID) and the same charge:
    one hourly code check and one failure in the account's second-factor ledger, committed
    with the refusal.
    """
    if (totp_code is None) == (recovery_code is None):
        raise InvalidArgument(
            [FieldViolation(field, "give exactly one of a TOTP code or a recovery code")]
        )
    account.ensure_active()
    # Malformed codes are refused before anything is charged: they cost no attempt.
    if totp_code is not None:
        code_field = f"{field}.totp_code"
        normalize_numeric_code(totp_code, digits=ctx.rules.totp.digits, field=code_field)
    else:
        if recovery_code is None:  # an invariant, checked also under python -O
            raise RuntimeError("a second factor is a TOTP or a recovery code")
        code_field = f"{field}.recovery_code"
        normalize_recovery_code(recovery_code, field=code_field)
    subject = second_factor_ledger_subject(account.id)
    await enforce(ctx.limiter, [code_check_hit(subject)])
    ledger = await uow.code_failure_ledgers.get_or_new(subject)
    now = ctx.clock()
    if totp_code is not None:
        secret = _totp_secret(ctx, account)
        outcome = account.check_totp(
            totp_code,
            secret=secret,
            purpose=purpose,
            ledger=ledger,
            now=now,
            parameters=ctx.rules.totp,
        )
    else:
        if recovery_code is None:  # an invariant, checked also under python -O
            raise RuntimeError("a second factor is a TOTP or a recovery code")
        outcome = account.redeem_recovery_code(
            recovery_code,
            purpose=purpose,
            hasher=ctx.secrets,
            ledger=ledger,
            origin=origin,
            now=now,
        )
    await uow.accounts.save(account)
    await uow.code_failure_ledgers.save(ledger)
    if not outcome.accepted:
        # The domain names its own field for a wrong code; the client sent it in `code_field`.
        outcome = rejected(code_invalid(code_field), outcome.events)
    return await _proof_or_committed_refusal(uow, outcome)


def _totp_secret(ctx: AuthContext, account: Account) -> str:
    if account.totp is None or not account.totp_active:
        raise totp_not_enabled()
    return decrypt_totp_secret(ctx, account.id, account.totp.encrypted_secret)


async def _proof_or_committed_refusal(uow: AuthUnitOfWork, outcome: CheckOutcome) -> VerifiedFactor:
    await publish(uow, outcome.events)
    if outcome.proof is None:
        if outcome.failure is None:  # an invariant, checked also under python -O
            raise RuntimeError("a refused check holds its failure")
        raise CommittedRefusal(outcome.failure)
    return outcome.proof


async def issue_undelivered_challenge(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    purpose: ChallengePurpose,
    channel: OtpChannel,
    destination_ref: str,
) -> OtpChallenge:
    """A real, stored challenge for a random code that is sent to nobody: what an
    enumeration-safe start hands out when there is no one to send to. Completing it fails like
    a wrong code, counted in the ledger of `destination_ref` (for `purpose`) like an account's
    would be.

    It writes what `deliver_code` writes, the challenge and an outbox row, in the same order,
    but the row is a settled decoy that is never sent (`Notifier.decoy_code`): the answer
    costs the same database work as one that sent a code, and strangers are sent nothing."""
    challenge = OtpChallenge.issue(
        id=ctx.new_id(),
        account_id=None,
        purpose=purpose,
        channel=channel,
        destination_ref=destination_ref,
        code=ctx.new_code(),
        hasher=ctx.secrets,
        now=ctx.clock(),
        lifetimes=ctx.rules.otp_lifetimes,
    )
    await uow.otp_challenges.add(challenge)
    await uow.notifier.decoy_code(
        CONTACT_OF_CHANNEL[channel], purpose=purpose, expires_at=challenge.expires_at
    )
    return challenge
