"""Recovery codes: 10 single-use codes of 80 bits each, shown once, stored as keyed hashes.

A code is 16 characters of Crockford base32, shown as XXXX-XXXX-XXXX-XXXX. Crockford's
alphabet has no I, L, O or U, so what people misread is forgiven: input is upper-cased, spaces
and dashes are dropped, I and L read as 1 and O as 0. Regenerating replaces the whole set.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from .ledger import CodeFailureLedger, second_factor_ledger_subject
from .proofs import (
    ChallengePurpose,
    CheckOutcome,
    FactorMethod,
    KeyedHasher,
    VerifiedFactor,
    accepted,
    rejected,
)
from .reasons import code_invalid

RECOVERY_CODE_COUNT: Final = 10
RECOVERY_CODE_BYTES: Final = 10
"""80 bits: 16 base32 characters without padding."""
_CODE_CHARACTERS: Final = 16
_GROUP: Final = 4
_CROCKFORD_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_FROM_RFC4648: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD_ALPHABET)
_MISREAD: Final = str.maketrans({"I": "1", "L": "1", "O": "0", "-": None, " ": None})

TokenBytes = Callable[[int], bytes]


def _encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").translate(_FROM_RFC4648)


def format_recovery_code(canonical: str) -> str:
    """In groups of four: ABCD1234EFGH5678 -> ABCD-1234-EFGH-5678."""
    return "-".join(canonical[i : i + _GROUP] for i in range(0, len(canonical), _GROUP))


def normalize_recovery_code(raw: str, *, field: str = "recovery_code") -> str:
    """The canonical 16 characters; InvalidArgument (CODE_INVALID) on `field` when malformed."""
    canonical = "".join(raw.split()).upper().translate(_MISREAD)
    if len(canonical) != _CODE_CHARACTERS or not set(canonical) <= set(_CROCKFORD_ALPHABET):
        raise code_invalid(field)
    return canonical


@dataclass(slots=True)
class RecoveryCode:
    code_hash: str
    used_at: datetime | None = None


@dataclass(slots=True)
class RecoveryCodeSet:
    id: str
    account_id: str
    created_at: datetime
    codes: list[RecoveryCode] = field(default_factory=list)

    @classmethod
    def generate(
        cls,
        *,
        id: str,
        account_id: str,
        hasher: KeyedHasher,
        now: datetime,
        token_bytes: TokenBytes = secrets.token_bytes,
    ) -> tuple[RecoveryCodeSet, list[str]]:
        """A new set and its codes, formatted for display. The plaintext exists only in the
        return value: show it once, never store or log it."""
        canonical = [_encode(token_bytes(RECOVERY_CODE_BYTES)) for _ in range(RECOVERY_CODE_COUNT)]
        if len(set(canonical)) != RECOVERY_CODE_COUNT:
            raise ValueError("the random source repeated itself")
        codes = [RecoveryCode(hasher.hash(code)) for code in canonical]
        return cls(id, account_id, now, codes), [format_recovery_code(c) for c in canonical]

    @property
    def remaining(self) -> int:
        return sum(1 for code in self.codes if code.used_at is None)

    def redeem(
        self,
        raw_code: str,
        *,
        purpose: ChallengePurpose,
        hasher: KeyedHasher,
        ledger: CodeFailureLedger,
        now: datetime,
        field: str = "recovery_code",
    ) -> CheckOutcome:
        """Uses up the matching code. Raises, changing nothing, for a malformed code
        (CODE_INVALID) and a ledger cooling down (RATE_LIMITED). A wrong code, and an already
        used one, return the same rejection (CODE_INVALID), counted in the account's
        second-factor ledger: a reused code is someone's guess, and answering it apart would
        tell them which codes the owner has used."""
        ledger.require_subject(second_factor_ledger_subject(self.account_id))
        canonical = normalize_recovery_code(raw_code, field=field)
        ledger.ensure_open(now)
        # Every stored hash is compared, so timing does not tell which position matched.
        matches = [code for code in self.codes if hasher.verify(canonical, code.code_hash)]
        if not matches or matches[0].used_at is not None:
            ledger.record_failure(now)
            return rejected(code_invalid(field))
        match = matches[0]
        match.used_at = now
        return accepted(
            VerifiedFactor(
                account_id=self.account_id,
                method=FactorMethod.RECOVERY_CODE,
                purpose=purpose,
                verified_at=now,
            )
        )
