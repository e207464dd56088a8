"""Accepting a step-up grant: the one way a use case spends one."""

from __future__ import annotations

from services.auth.domain.reasons import Reason
from services.auth.service.context import AuthContext
from services.auth.service.ports import AuthUnitOfWork
from walletcore.errors import PermissionDenied
from walletcore.tokens import VerifiedGrant

GRANT_EXPIRED = "GRANT_EXPIRED"
GRANT_ALREADY_USED = "GRANT_ALREADY_USED"


async def accept_grant(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    token: str,
    *,
    account_id: str,
    purpose: str,
    object_id: str | None = None,
) -> VerifiedGrant:
    """The grant, if it allows exactly this action, recorded as used in the transaction of the
    action (a refused, rolled-back action leaves it usable).

    Refusals are PERMISSION_DENIED: GRANT_EXPIRED, GRANT_ALREADY_USED, or GRANT_INVALID for
    anything else (bad signature, another account, purpose or object), since which of them it
    is helps nobody holding a grant they should not.
    """
    try:
        grant = await ctx.grants.verify(
            token, account_id=account_id, purpose=purpose, object_id=object_id
        )
    except PermissionDenied as error:
        if error.reason == GRANT_EXPIRED:
            raise
        raise PermissionDenied(
            "the step-up grant is not for this action", reason=Reason.GRANT_INVALID
        ) from None
    if not await uow.used_grants.consume(grant.jti, grant.expires_at):
        raise PermissionDenied("the step-up grant was already used", reason=GRANT_ALREADY_USED)
    return grant
