"""Accepting a step-up grant: the one way a use case spends one."""

from __future__ import annotations

from services.auth.service.context import AuthContext
from services.auth.service.ports import AuthUnitOfWork
from walletcore import grants
from walletcore.tokens import VerifiedGrant


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
    action (a refused, rolled-back action leaves it usable): `walletcore.grants.accept_grant`
    over auth's own keys and its `used_grants` rows.

    Refusals are PERMISSION_DENIED: GRANT_EXPIRED, GRANT_ALREADY_USED, or GRANT_INVALID for
    anything else (bad signature, another account, purpose or object).
    """
    return await grants.accept_grant(
        ctx.grants,
        uow.used_grants,
        token,
        account_id=account_id,
        purpose=purpose,
        object_id=object_id,
    )
