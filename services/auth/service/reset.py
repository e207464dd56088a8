"""Credential reset by a code sent by SMS or e-mail (SPEC 3), and the enumeration-safe start
that the self-freeze shares.

A signed-out start must not tell whether an account exists. Whatever the identifier matches,
the answer is an id and an expiry of the same shape, the same send limits are charged for the
identifier given, and a challenge row is written; only when the account exists (and, for a
reset, is not frozen) and has a verified contact of the channel's kind is a code sent to it.
Otherwise the row is a decoy: a challenge for a random code nobody receives, checked like any
other, so completing it fails like a wrong code, down to the attempt count and the lock-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from services.auth.domain.account import Account
from services.auth.domain.contacts import Contact, ContactKind, VerifiedContact
from services.auth.domain.events import Origin
from services.auth.domain.otp import OtpChannel
from services.auth.domain.proofs import ChallengePurpose, FactorMethod
from services.auth.domain.reasons import code_invalid
from services.auth.domain.throttling import CounterScope, FailureCounter
from services.auth.service.codes import (
    check_code,
    client_address_hit,
    destination_ref,
    issue_undelivered_challenge,
    send_code,
    send_limit_hits,
)
from services.auth.service.context import AuthContext, publish
from services.auth.service.ports import AuthUnitOfWork
from services.auth.service.stepup import prove_second_factor
from walletcore.ratelimit.enforce import enforce

SECOND_FACTOR_INVALID: Final = "SECOND_FACTOR_INVALID"
"""A reset's TOTP or recovery code is wrong (its own code was right)."""

_CONTACT_OF_CHANNEL: Final = {
    OtpChannel.SMS: ContactKind.PHONE,
    OtpChannel.EMAIL: ContactKind.EMAIL,
}
_SECOND_FACTOR_FIELDS: Final = {
    FactorMethod.TOTP: "totp_code",
    FactorMethod.RECOVERY_CODE: "recovery_code",
}


@dataclass(frozen=True, slots=True)
class CodeChallengeStarted:
    """What a signed-out start answers, whether or not a code was sent."""

    challenge_id: str
    expires_at: datetime


async def start_credential_reset(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    identifier: Contact,
    channel: OtpChannel,
    origin: Origin,
) -> CodeChallengeStarted:
    """Sends a CREDENTIAL_RESET code to the account's verified contact of `channel`'s kind;
    a frozen account, like an unknown one, gets nothing (a reset cannot lift a freeze)."""
    return await start_signed_out_challenge(
        uow,
        ctx,
        identifier=identifier,
        channel=channel,
        purpose=ChallengePurpose.CREDENTIAL_RESET,
        origin=origin,
        serves_frozen=False,
    )


async def start_signed_out_challenge(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    identifier: Contact,
    channel: OtpChannel,
    purpose: ChallengePurpose,
    origin: Origin,
    serves_frozen: bool,
) -> CodeChallengeStarted:
    """The enumeration-safe start of this module's docstring, for `purpose`."""
    account = await uow.accounts.find_by_contact(identifier)
    destination = _destination(account, channel, serves_frozen=serves_frozen)
    # Charged whatever matched, so refusals say nothing about the account either.
    identifier_hits = [
        *send_limit_hits(identifier, ctx.rules),
        *client_address_hit(origin.client_address),
    ]
    if account is None or destination is None:
        await enforce(ctx.limiter, identifier_hits)
        decoy = await issue_undelivered_challenge(
            uow,
            ctx,
            purpose=purpose,
            channel=channel,
            destination_ref=destination_ref(ctx, identifier),
        )
        return CodeChallengeStarted(decoy.id, decoy.expires_at)
    destination_hits = send_limit_hits(destination.value, ctx.rules)
    challenge = await send_code(
        uow,
        ctx,
        account_id=account.id,
        purpose=purpose,
        destination=destination.value,
        destination_ref=destination.id,
        # The identifier and the destination are one subject when the channel is the
        # identifier's own kind: a counter is charged once per code.
        extra_hits=[hit for hit in identifier_hits if hit not in destination_hits],
    )
    return CodeChallengeStarted(challenge.id, challenge.expires_at)


def _destination(
    account: Account | None, channel: OtpChannel, *, serves_frozen: bool
) -> VerifiedContact | None:
    if account is None or (account.is_frozen and not serves_frozen):
        return None
    return account.contact_of_kind(_CONTACT_OF_CHANNEL[channel])


async def complete_credential_reset(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    reset_id: str,
    code: str,
    new_password: str,
    second_factor: tuple[FactorMethod, str] | None,
    origin: Origin,
) -> None:
    """Sets `new_password` with the code sent for `reset_id`, and with a TOTP or recovery
    code (`second_factor`: the method and the code) when the account has TOTP.

    Every session is revoked, every verified contact notified, and the sign-in locks of the
    account (and of the resetting client's address) cleared. Refusals that change nothing
    (PASSWORD_REJECTED, SECOND_FACTOR_REQUIRED, ACCOUNT_FROZEN) leave the code usable; a wrong
    second factor uses it up, so a stolen reset code buys one guess at the second factor.
    """
    proof = await check_code(
        uow, ctx, challenge_id=reset_id, raw_code=code, purpose=ChallengePurpose.CREDENTIAL_RESET
    )
    if proof.account_id is None:
        # Someone guessed a decoy's code: it still proves no account.
        raise code_invalid()
    account = await uow.accounts.get(proof.account_id, for_update=True)
    if account is None:
        raise code_invalid()
    account.ensure_active()
    password = ctx.password_policy.check(
        new_password, contacts=account.contact_values, field="new_password"
    )
    second_proof = None
    if account.totp_active and second_factor is not None:
        method, second_code = second_factor
        second_proof = await prove_second_factor(
            uow,
            ctx,
            account,
            method=method,
            code=second_code,
            purpose=ChallengePurpose.CREDENTIAL_RESET,
            origin=origin,
            field=f"second_factor.{_SECOND_FACTOR_FIELDS[method]}",
            reason=SECOND_FACTOR_INVALID,
        )
    events = account.complete_credential_reset(
        code_proof=proof,
        second_factor=second_proof,
        new_password_hash=await ctx.passwords.hash(password),
        origin=origin,
        now=ctx.clock(),
    )
    await uow.accounts.save(account)
    await publish(uow, events)
    await _clear_sign_in_locks(uow, ctx, account.id, origin.client_address)


async def _clear_sign_in_locks(
    uow: AuthUnitOfWork, ctx: AuthContext, account_id: str, client_address: str | None
) -> None:
    """The account's failure count, and its count from this address, start again from zero.
    Counts from other addresses are left to age out: the repository cannot list them, and
    they lock only the addresses that failed."""
    account_counter = await uow.failure_counters.get_or_new(CounterScope.ACCOUNT, account_id)
    pairs = []
    if client_address is not None:
        pair_key = FailureCounter.for_pair(account_id, client_address).key
        pairs.append(await uow.failure_counters.get_or_new(CounterScope.ACCOUNT_ADDRESS, pair_key))
    ctx.rules.throttle.clear_after_credential_reset(account_counter, pairs)
    for counter in (account_counter, *pairs):
        await uow.failure_counters.save(counter)
