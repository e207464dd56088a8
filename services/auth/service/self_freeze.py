"""Self-freeze (SPEC 3): the holder of a stolen account freezes it with only a code sent to a
verified contact, because the password may already be the thief's.

The start is signed out and enumeration-safe like a credential reset's
(`reset.start_signed_out_challenge`). Unlike a reset, a frozen account still gets its code:
confirming it again is harmless and answers with the time of the existing freeze. The
confirmation revokes every session and refresh token in its own transaction, so the account's
old access tokens are refused from the next request on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.auth.domain.contacts import Contact
from services.auth.domain.events import Origin
from services.auth.domain.otp import OtpChannel
from services.auth.domain.proofs import ChallengePurpose
from services.auth.domain.reasons import code_invalid
from services.auth.service.codes import check_code
from services.auth.service.context import AuthContext, publish
from services.auth.service.ports import AuthUnitOfWork
from services.auth.service.reset import CodeChallengeStarted, start_signed_out_challenge


@dataclass(frozen=True, slots=True)
class SelfFreezeConfirmed:
    frozen_at: datetime


async def start_self_freeze(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    identifier: Contact,
    channel: OtpChannel,
    origin: Origin,
) -> CodeChallengeStarted:
    """Sends a SELF_FREEZE code to the account's verified contact of `channel`'s kind."""
    return await start_signed_out_challenge(
        uow,
        ctx,
        identifier=identifier,
        channel=channel,
        purpose=ChallengePurpose.SELF_FREEZE,
        origin=origin,
        serves_frozen=True,
    )


async def confirm_self_freeze(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    challenge_id: str,
    code: str,
    origin: Origin,
) -> SelfFreezeConfirmed:
    """Freezes the account the code was sent for; an already frozen account stays as it was."""
    proof = await check_code(
        uow, ctx, challenge_id=challenge_id, raw_code=code, purpose=ChallengePurpose.SELF_FREEZE
    )
    account = (
        await uow.accounts.get(proof.account_id, for_update=True) if proof.account_id else None
    )
    if account is None:
        # A decoy's code, guessed: it proves no account.
        raise code_invalid()
    events = account.freeze_by_self(proof=proof, origin=origin, now=ctx.clock())
    await uow.accounts.save(account)
    await publish(uow, events)
    if account.frozen_at is None:  # an invariant, checked also under python -O
        raise RuntimeError("a frozen account has its freeze time")
    return SelfFreezeConfirmed(frozen_at=account.frozen_at)
