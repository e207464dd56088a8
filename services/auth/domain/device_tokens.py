"""Device tokens: a signed note, kept by a device, that it once signed in to an account.

OWASP's "device cookie" against lock-out by throttling: auth issues one whenever a password
was right, and a sign-in that presents a valid token of the account it names is charged on
the token's own limits instead of the identifier's. A stranger can exhaust the identifier's
limit; they cannot exhaust a limit of a token they do not have, and they cannot make one.
docs/decisions/sign-in-device-tokens.md records the choices.

The token is `v1.<account id>.<token id>.<expiry, unix seconds>.<kid>:<hmac>`: the HMAC-SHA256
(a `KeyedHasher` with a context of its own, so rotation keeps working) covers everything
before it. Nothing is stored per token: the token id names the token's limiter bucket and
failure counter, which is all the state it needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from services.auth.domain.proofs import KeyedHasher
from services.auth.domain.throttling import KNOWN_PAIR_MEMORY

DEVICE_TOKEN_LIFETIME: Final = KNOWN_PAIR_MEMORY
"""As long as a successful sign-in makes an address "known" to the throttle."""
MAX_DEVICE_TOKEN_LENGTH: Final = 256
_VERSION: Final = "v1"
_TOKEN_ID: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
_ACCOUNT_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EXPIRY: Final = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class DeviceToken:
    """What a valid token says: which account signed in on the device, and until when the
    token counts."""

    account_id: str
    token_id: str
    expires_at: datetime

    @classmethod
    def issue(
        cls,
        *,
        account_id: str,
        token_id: str,
        now: datetime,
        lifetime: timedelta = DEVICE_TOKEN_LIFETIME,
    ) -> DeviceToken:
        if not _ACCOUNT_ID.fullmatch(account_id) or not _TOKEN_ID.fullmatch(token_id):
            raise ValueError("a device token names an account id and a url-safe token id")
        # Whole seconds, as the token carries them.
        expires_at = (now + lifetime).replace(microsecond=0)
        return cls(account_id=account_id, token_id=token_id, expires_at=expires_at)

    def renewed(self, now: datetime, lifetime: timedelta = DEVICE_TOKEN_LIFETIME) -> DeviceToken:
        """The same device's token with a new expiry: its limits and failures stay its own."""
        return DeviceToken.issue(
            account_id=self.account_id, token_id=self.token_id, now=now, lifetime=lifetime
        )

    def is_for(self, account_id: str) -> bool:
        return self.account_id == account_id

    def signed(self, signer: KeyedHasher) -> str:
        payload = self._payload()
        return f"{payload}.{signer.hash(payload)}"

    def _payload(self) -> str:
        expiry = int(self.expires_at.timestamp())
        return f"{_VERSION}.{self.account_id}.{self.token_id}.{expiry}"


def read_device_token(text: str, signer: KeyedHasher, now: datetime) -> DeviceToken | None:
    """The token `text` is, when auth signed it and it has not expired; None for anything
    else (empty, malformed, forged, expired, or signed under a key no longer in the ring).
    Callers treat None like no token at all, so a bad token tells the client nothing."""
    if not text or len(text) > MAX_DEVICE_TOKEN_LENGTH:
        return None
    parts = text.split(".")
    if len(parts) != 5:
        return None
    version, account_id, token_id, expiry, signature = parts
    if (
        version != _VERSION
        or not _ACCOUNT_ID.fullmatch(account_id)
        or not _TOKEN_ID.fullmatch(token_id)
        or not _EXPIRY.fullmatch(expiry)
    ):
        return None
    if not signer.verify(".".join(parts[:4]), signature):
        return None
    expires_at = datetime.fromtimestamp(int(expiry), UTC)
    if now >= expires_at:
        return None
    return DeviceToken(account_id=account_id, token_id=token_id, expires_at=expires_at)
