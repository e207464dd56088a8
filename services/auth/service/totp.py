"""TOTP second factors (SPEC 3): enrolment with a first code, recovery codes, and the two
changes that need a step-up grant (disabling TOTP, regenerating recovery codes).

The secret is drawn by the domain (160 bits), encrypted with the account id as associated data
(`codes.encrypt_totp_secret`) and shown to the user once, with its otpauth:// URI. Recovery
codes exist in plaintext only in the answer that creates them. A grant is checked for the
account and purpose and recorded as used in the same transaction as the change it allows, so
each grant works once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.auth.domain.account import Account
from services.auth.domain.events import DomainEvent, Origin
from services.auth.domain.otp import normalize_numeric_code
from services.auth.domain.reasons import Reason
from services.auth.domain.recovery import RecoveryCodeSet
from services.auth.domain.stepup import StepUpPurpose
from services.auth.domain.totp import generate_totp_secret
from services.auth.service.codes import (
    code_check_hit,
    decrypt_totp_secret,
    encrypt_totp_secret,
)
from services.auth.service.context import AuthContext, publish
from services.auth.service.grants import accept_grant
from services.auth.service.ports import AuthUnitOfWork
from services.auth.service.stepup import load_own_account
from walletcore.errors import NotFound
from walletcore.idempotency import CommittedRefusal
from walletcore.ratelimit.enforce import enforce


@dataclass(frozen=True, slots=True)
class TotpEnrollmentStarted:
    enrollment_id: str
    otpauth_uri: str
    secret: str
    """Base32; shown once for typing in by hand, never logged."""
    expires_at: datetime


async def start_totp_enrollment(
    uow: AuthUnitOfWork, ctx: AuthContext, *, account_id: str
) -> TotpEnrollmentStarted:
    """A new secret awaiting its first code (replacing an earlier unconfirmed one);
    TOTP_ALREADY_ENABLED while a factor is active."""
    account = await load_own_account(uow, account_id)
    secret = generate_totp_secret()
    factor = account.start_totp_enrollment(
        factor_id=ctx.new_id(),
        encrypted_secret=encrypt_totp_secret(ctx, account.id, secret),
        now=ctx.clock(),
    )
    await uow.accounts.save(account)
    uri = factor.provisioning_uri(
        secret,
        issuer=ctx.rules.totp_issuer,
        # Authenticator apps show the label to whoever looks at the phone.
        account_label=account.contacts[0].value.masked(),
        parameters=ctx.rules.totp,
    )
    return TotpEnrollmentStarted(factor.id, uri, secret, factor.enrollment_expires_at)


async def confirm_totp_enrollment(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    account_id: str,
    enrollment_id: str,
    code: str,
    origin: Origin,
) -> list[str]:
    """Enables TOTP with the app's first code; returns the 10 new recovery codes, formatted
    for display. A wrong code counts against the enrolment (5 tries) and the account's
    enrolment ledger, and is committed before it is refused."""
    account = await load_own_account(uow, account_id)
    if account.totp is None or account.totp.id != enrollment_id:
        raise NotFound("no TOTP enrolment is pending", reason=Reason.ENROLLMENT_NOT_FOUND)
    # A malformed code costs no attempt, and none of the hourly code checks.
    normalize_numeric_code(code, digits=ctx.rules.totp.digits)
    subject = account.totp.enrollment_ledger_subject
    await enforce(ctx.limiter, [code_check_hit(subject)])
    ledger = await uow.code_failure_ledgers.get_or_new(subject)
    now = ctx.clock()
    recovery_codes, plaintext = _new_recovery_codes(ctx, account, now)
    outcome = account.confirm_totp_enrollment(
        code,
        secret=decrypt_totp_secret(ctx, account.id, account.totp.encrypted_secret),
        recovery_codes=recovery_codes,
        ledger=ledger,
        origin=origin,
        now=now,
        parameters=ctx.rules.totp,
    )
    await uow.accounts.save(account)
    await uow.code_failure_ledgers.save(ledger)
    await publish(uow, outcome.events)
    if outcome.failure is not None:
        raise CommittedRefusal(outcome.failure)
    return plaintext


async def disable_totp(
    uow: AuthUnitOfWork, ctx: AuthContext, *, account_id: str, grant: str, origin: Origin
) -> None:
    """Turns TOTP off and deletes the recovery codes, with a DISABLE_TOTP grant."""
    account = await load_own_account(uow, account_id)
    verified = await accept_grant(
        uow, ctx, grant, account_id=account_id, purpose=StepUpPurpose.DISABLE_TOTP.value
    )
    events = account.disable_totp(grant=verified, origin=origin, now=ctx.clock())
    await _save(uow, account, events)


async def regenerate_recovery_codes(
    uow: AuthUnitOfWork, ctx: AuthContext, *, account_id: str, grant: str, origin: Origin
) -> list[str]:
    """Replaces every recovery code, with a REGENERATE_RECOVERY_CODES grant; returns the new
    ones, formatted for display."""
    account = await load_own_account(uow, account_id)
    verified = await accept_grant(
        uow,
        ctx,
        grant,
        account_id=account_id,
        purpose=StepUpPurpose.REGENERATE_RECOVERY_CODES.value,
    )
    now = ctx.clock()
    new_codes, plaintext = _new_recovery_codes(ctx, account, now)
    events = account.regenerate_recovery_codes(
        grant=verified, new_codes=new_codes, origin=origin, now=now
    )
    await _save(uow, account, events)
    return plaintext


def _new_recovery_codes(
    ctx: AuthContext, account: Account, now: datetime
) -> tuple[RecoveryCodeSet, list[str]]:
    return RecoveryCodeSet.generate(
        id=ctx.new_id(), account_id=account.id, hasher=ctx.secrets, now=now
    )


async def _save(uow: AuthUnitOfWork, account: Account, events: tuple[DomainEvent, ...]) -> None:
    await uow.accounts.save(account)
    await publish(uow, events)
