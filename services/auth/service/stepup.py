"""Step-up: the account holder proves themselves again and gets a grant for one sensitive action.

StartStepUp sends a code by SMS or e-mail (an OTP challenge of purpose STEP_UP) or, for TOTP
and recovery codes, only opens the challenge; CompleteStepUp checks the code and signs the
grant, bound to the account, the purpose and the object, for `AuthRules.grant_lifetime` (at
most 5 minutes). Which methods may prove which purpose is the domain's rule
(`Account.step_up_methods`); a frozen account passes no step-up.

Also here, because the credential reset uses them too: loading the caller's own account, and
checking a TOTP or recovery code with its refusal reported on the request's own field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from services.auth.domain.account import Account
from services.auth.domain.contacts import ContactKind, VerifiedContact
from services.auth.domain.events import Origin
from services.auth.domain.proofs import ChallengePurpose, FactorMethod, VerifiedFactor
from services.auth.domain.reasons import Reason, code_expired
from services.auth.domain.stepup import StepUpChallenge, StepUpPurpose, normalize_object_id
from services.auth.service.codes import check_code, check_second_factor, send_code
from services.auth.service.context import AuthContext, publish
from services.auth.service.ports import AuthUnitOfWork
from walletcore.errors import (
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from walletcore.idempotency import CommittedRefusal

CHALLENGE_NOT_FOUND: Final = "CHALLENGE_NOT_FOUND"
ACCOUNT_NOT_FOUND: Final = "ACCOUNT_NOT_FOUND"
_CONTACT_OF_METHOD: Final = {
    FactorMethod.SMS: ContactKind.PHONE,
    FactorMethod.EMAIL: ContactKind.EMAIL,
}


@dataclass(frozen=True, slots=True)
class StepUpStarted:
    challenge_id: str
    expires_at: datetime
    masked_destination: str
    """Where the code went, masked; empty for TOTP and recovery codes."""


@dataclass(frozen=True, slots=True)
class IssuedGrant:
    token: str
    """The signed grant; a secret until used, never logged."""
    purpose: StepUpPurpose
    object_id: str | None
    expires_at: datetime


async def load_own_account(
    uow: AuthUnitOfWork, account_id: str, *, for_update: bool = True
) -> Account:
    """The signed-in caller's account. Its token was verified, so a missing account means it
    is gone since: NOT_FOUND rather than a crash."""
    account = await uow.accounts.get(account_id, for_update=for_update)
    if account is None:
        raise NotFound("the account no longer exists", reason=ACCOUNT_NOT_FOUND)
    return account


async def start_step_up(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    account_id: str,
    purpose: StepUpPurpose,
    object_id: str,
    method: FactorMethod,
) -> StepUpStarted:
    """Opens a challenge for `purpose` (and its object, InvalidArgument on `object_id` when
    missing or malformed); for SMS and EMAIL sends the code to the account's contact of that
    kind, charging the destination's send limits."""
    account = await load_own_account(uow, account_id, for_update=False)
    account.ensure_active()
    bound_object = normalize_object_id(purpose, object_id)
    if method not in account.step_up_methods(purpose):
        # Checked before anything is sent: a refused method must not spend the send limits.
        raise FailedPrecondition(
            f"{method} cannot authorise {purpose} for this account",
            reason=Reason.STEP_UP_METHOD_UNAVAILABLE,
        )
    contact = _code_destination(account, method)
    otp = None
    if contact is not None:
        otp = await send_code(
            uow,
            ctx,
            account_id=account.id,
            purpose=ChallengePurpose.STEP_UP,
            destination=contact.value,
            destination_ref=contact.id,
        )
    challenge = account.start_step_up(
        challenge_id=ctx.new_id(),
        purpose=purpose,
        object_id=bound_object,
        method=method,
        otp_challenge_id=otp.id if otp is not None else None,
        now=ctx.clock(),
    )
    await uow.step_up_challenges.add(challenge)
    # The code may be configured to live shorter than the challenge that waits for it.
    expires_at = min(challenge.expires_at, otp.expires_at) if otp else challenge.expires_at
    masked = contact.value.masked() if contact is not None else ""
    return StepUpStarted(challenge.id, expires_at, masked)


def _code_destination(account: Account, method: FactorMethod) -> VerifiedContact | None:
    kind = _CONTACT_OF_METHOD.get(method)
    return account.contact_of_kind(kind) if kind is not None else None


async def complete_step_up(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    account_id: str,
    challenge_id: str,
    code: str,
    origin: Origin,
) -> IssuedGrant:
    """Checks the challenge's code (SMS, e-mail, TOTP or recovery code) and signs the grant.

    Another account's challenge is NOT_FOUND like an unknown one; a completed or expired one
    is CODE_EXPIRED, refused before its code is checked.
    """
    challenge = await uow.step_up_challenges.get(challenge_id, for_update=True)
    if challenge is None or challenge.account_id != account_id:
        raise NotFound("no such step-up challenge", reason=CHALLENGE_NOT_FOUND)
    account = await load_own_account(uow, account_id)
    account.ensure_active()
    if challenge.completed_at is not None or ctx.clock() >= challenge.expires_at:
        raise code_expired()
    proof = await _prove(uow, ctx, account, challenge, code, origin)
    grant, events = account.complete_step_up(
        challenge,
        proof=proof,
        origin=origin,
        now=ctx.clock(),
        grant_lifetime=ctx.rules.grant_lifetime,
    )
    await uow.step_up_challenges.save(challenge)
    await publish(uow, events)
    signed = ctx.tokens.step_up_grant(
        account_id=account.id,
        purpose=grant.purpose.value,
        object_id=grant.object_id,
        ttl=ctx.rules.grant_lifetime,
    )
    return IssuedGrant(signed.token, grant.purpose, grant.object_id, signed.expires_at)


async def _prove(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    account: Account,
    challenge: StepUpChallenge,
    code: str,
    origin: Origin,
) -> VerifiedFactor:
    if challenge.otp_challenge_id is not None:
        return await check_code(
            uow,
            ctx,
            challenge_id=challenge.otp_challenge_id,
            raw_code=code,
            purpose=ChallengePurpose.STEP_UP,
        )
    return await prove_second_factor(
        uow,
        ctx,
        account,
        method=challenge.method,
        code=code,
        purpose=ChallengePurpose.STEP_UP,
        origin=origin,
        field="code",
    )


async def prove_second_factor(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    account: Account,
    *,
    method: FactorMethod,
    code: str,
    purpose: ChallengePurpose,
    origin: Origin,
    field: str,
    reason: str | None = None,
) -> VerifiedFactor:
    """`codes.check_second_factor` for a TOTP or recovery `code` that the request carries at
    proto path `field`: a malformed or wrong code is reported on that field, and under
    `reason` when one is given (e.g. SECOND_FACTOR_INVALID beside a reset's own code)."""
    try:
        return await check_second_factor(
            uow,
            ctx,
            account,
            totp_code=code if method is FactorMethod.TOTP else None,
            recovery_code=code if method is FactorMethod.RECOVERY_CODE else None,
            purpose=purpose,
            origin=origin,
        )
    except CommittedRefusal as refusal:
        raise CommittedRefusal(_reported_on(refusal.error, field, reason)) from None
    except InvalidArgument as error:
        raise _reported_on(error, field, reason) from None


def _reported_on(error: DomainError, field: str, reason: str | None) -> DomainError:
    if not isinstance(error, InvalidArgument):
        return error
    moved = InvalidArgument(
        [FieldViolation(field, violation.description) for violation in error.violations],
        error.message,
        reason=reason or error.reason,
    )
    moved.metadata.update(error.metadata)
    return moved
