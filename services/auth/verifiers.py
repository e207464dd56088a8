"""The public port's credential check: a valid access token of a live session of an active account.

An access token is verified offline (signature, issuer, audience, expiry), but that alone would
let a stolen token work for up to 15 minutes after a sign-out or a freeze. So every call also
reads the account and the session: SPEC 3 wants a frozen account refused "from the next
request after the freeze returns, whatever tokens it still holds". That read is one statement
(`AccountReads.standing`, one database round trip): it sees every freeze and revocation that
committed before the request arrived, and it runs on every authenticated call.
"""

from __future__ import annotations

from services.auth.domain.account import AccountStatus
from services.auth.domain.reasons import Reason, account_frozen
from services.auth.service.ports import AccountReads
from walletcore.clock import Clock
from walletcore.errors import Unauthenticated
from walletcore.identity import Caller, CredentialVerifier


def session_revoked() -> Unauthenticated:
    return Unauthenticated("the session has ended: sign in again", reason=Reason.SESSION_REVOKED)


class ActiveSessionVerifier:
    """Wraps the access-token verifier: FAILED_PRECONDITION / ACCOUNT_FROZEN for a frozen
    account (checked first, so a frozen account is told why whatever its session's state), and
    UNAUTHENTICATED / SESSION_REVOKED for a session that was revoked, has ended, or is not the
    token subject's."""

    def __init__(self, tokens: CredentialVerifier, reads: AccountReads, clock: Clock) -> None:
        self._tokens = tokens
        self._reads = reads
        self._clock = clock

    async def verify(self, token: str) -> Caller:
        caller = await self._tokens.verify(token)
        session_id = caller.session_id
        if session_id is None:
            raise session_revoked()
        standing = await self._reads.standing(caller.subject, session_id)
        if standing is None:
            raise session_revoked()
        if standing.status is AccountStatus.FROZEN:
            raise account_frozen()
        if standing.session is None or not standing.session.is_active(self._clock()):
            raise session_revoked()
        return caller
