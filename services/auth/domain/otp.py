"""One-time codes sent by SMS or email.

A code is 6 random digits (drawn by the service layer, e.g. `walletcore.crypto.
random_numeric_code`), stored only as a keyed hash, valid 10 minutes by SMS and at most 60 by
email, usable once, and dead after 5 wrong tries. States: PENDING -> USED | EXHAUSTED | EXPIRED.
Every wrong try also counts in the `CodeFailureLedger` of the code's purpose for the account
(or destination), which a new code does not reset.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from walletcore.errors import DomainError

from .ledger import CodeFailureLedger, purpose_ledger_subject
from .proofs import (
    ChallengePurpose,
    CheckOutcome,
    FactorMethod,
    KeyedHasher,
    VerifiedFactor,
    accepted,
    rejected,
)
from .reasons import code_expired, code_invalid, too_many_attempts

OTP_CODE_LENGTH: Final = 6
MAX_FAILED_ATTEMPTS_PER_CODE: Final = 5
MAX_SMS_CODE_LIFETIME: Final = timedelta(minutes=10)
MAX_EMAIL_CODE_LIFETIME: Final = timedelta(minutes=60)
# Purposes a sent code can serve; the others are proved with an authenticator or recovery code.
_SENDABLE_PURPOSES: Final = frozenset(ChallengePurpose) - {
    ChallengePurpose.SIGN_IN,
    ChallengePurpose.TOTP_ENROLLMENT,
}


class OtpChannel(enum.StrEnum):
    SMS = "SMS"
    EMAIL = "EMAIL"

    @property
    def method(self) -> FactorMethod:
        return FactorMethod(self.value)


class OtpState(enum.StrEnum):
    PENDING = "PENDING"
    USED = "USED"
    EXHAUSTED = "EXHAUSTED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, slots=True)
class OtpLifetimes:
    """How long codes live; configurable, but never beyond the SPEC's caps."""

    sms: timedelta = MAX_SMS_CODE_LIFETIME
    email: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.sms <= MAX_SMS_CODE_LIFETIME:
            raise ValueError("an SMS code lives more than 0 and at most 10 minutes")
        if not timedelta(0) < self.email <= MAX_EMAIL_CODE_LIFETIME:
            raise ValueError("an email code lives more than 0 and at most 60 minutes")

    def for_channel(self, channel: OtpChannel) -> timedelta:
        return self.sms if channel is OtpChannel.SMS else self.email


DEFAULT_OTP_LIFETIMES: Final = OtpLifetimes()


def normalize_numeric_code(raw: str, *, digits: int, field: str = "code") -> str:
    """The code without spaces; InvalidArgument (CODE_INVALID) on `field` unless it is then
    exactly `digits` ASCII digits. A malformed code costs no attempt."""
    code = "".join(raw.split())
    if len(code) != digits or not (code.isascii() and code.isdigit()):
        raise code_invalid(field)
    return code


def normalize_otp_code(raw: str, *, field: str = "code") -> str:
    return normalize_numeric_code(raw, digits=OTP_CODE_LENGTH, field=field)


@dataclass(slots=True)
class OtpChallenge:
    id: str
    account_id: str | None
    """None for a registration, which has no account until the code is checked."""
    purpose: ChallengePurpose
    channel: OtpChannel
    destination_ref: str
    """Which contact the code went to: a contact id, or an opaque reference (e.g. a keyed hash)
    for a contact not yet verified. Never the phone number or address itself."""
    code_hash: str
    created_at: datetime
    expires_at: datetime
    state: OtpState = OtpState.PENDING
    used_at: datetime | None = None
    failed_attempts: int = 0

    @classmethod
    def issue(
        cls,
        *,
        id: str,
        account_id: str | None,
        purpose: ChallengePurpose,
        channel: OtpChannel,
        destination_ref: str,
        code: str,
        hasher: KeyedHasher,
        now: datetime,
        lifetimes: OtpLifetimes = DEFAULT_OTP_LIFETIMES,
    ) -> OtpChallenge:
        """A pending challenge for `code`, which is stored only as its keyed hash."""
        if purpose not in _SENDABLE_PURPOSES:
            raise ValueError(f"{purpose} is not proved with a sent code")
        if normalize_otp_code(code) != code:
            raise ValueError("a sent code is exactly 6 digits")
        return cls(
            id=id,
            account_id=account_id,
            purpose=purpose,
            channel=channel,
            destination_ref=destination_ref,
            code_hash=hasher.hash(code),
            created_at=now,
            expires_at=now + lifetimes.for_channel(channel),
        )

    @property
    def ledger_subject(self) -> str:
        """The subject of the `CodeFailureLedger` this challenge's failures count in: its
        purpose's, of the account, or of the destination when there is no account."""
        owner = self.account_id if self.account_id is not None else self.destination_ref
        return purpose_ledger_subject(self.purpose, owner)

    @property
    def is_untried_self_freeze(self) -> bool:
        """Whether this is a self-freeze code no one has tried yet, which no limit across codes
        refuses (neither a cooling ledger nor the hourly code checks): anyone who knows the
        owner's contact can start self-freezes and spend those limits, and the owner must still
        be able to freeze a stolen account with the code they were sent (SPEC 3). Its failure
        still counts; another first try costs another code sent to the owner's contact."""
        return self.purpose is ChallengePurpose.SELF_FREEZE and self.failed_attempts == 0

    def check(
        self,
        raw_code: str,
        *,
        purpose: ChallengePurpose,
        hasher: KeyedHasher,
        ledger: CodeFailureLedger,
        now: datetime,
    ) -> CheckOutcome:
        """Checks a code the user typed for `purpose`.

        Raises, changing nothing, for a malformed code or another purpose's challenge
        (CODE_INVALID), a used or expired one (CODE_EXPIRED), an exhausted one
        (TOO_MANY_ATTEMPTS) and a ledger in its cooling period (RATE_LIMITED; never for
        `is_untried_self_freeze`). Otherwise
        returns an outcome: the proof, or a rejection that changed this challenge (and, for a
        wrong code, the ledger), which must be saved before it is raised.
        """
        ledger.require_subject(self.ledger_subject)
        code = normalize_otp_code(raw_code)
        if not self.is_untried_self_freeze:
            ledger.ensure_open(now)
        if purpose is not self.purpose:
            raise code_invalid()
        self._ensure_pending()
        if now >= self.expires_at:
            self.state = OtpState.EXPIRED
            return rejected(code_expired())
        if hasher.verify(code, self.code_hash):
            self.state = OtpState.USED
            self.used_at = now
            return accepted(self._proof(now))
        return rejected(self._record_wrong_code(ledger, now))

    def _ensure_pending(self) -> None:
        if self.state is OtpState.EXHAUSTED:
            raise too_many_attempts()
        if self.state is not OtpState.PENDING:
            # A used code reads as expired: it no longer works, and which of the two it is
            # helps nobody but someone replaying an intercepted code.
            raise code_expired()

    def _record_wrong_code(self, ledger: CodeFailureLedger, now: datetime) -> DomainError:
        self.failed_attempts += 1
        ledger.record_failure(now)
        if self.failed_attempts >= MAX_FAILED_ATTEMPTS_PER_CODE:
            self.state = OtpState.EXHAUSTED
            return too_many_attempts()
        return code_invalid(attempts_left=MAX_FAILED_ATTEMPTS_PER_CODE - self.failed_attempts)

    def _proof(self, now: datetime) -> VerifiedFactor:
        return VerifiedFactor(
            account_id=self.account_id,
            method=self.channel.method,
            purpose=self.purpose,
            verified_at=now,
            challenge_id=self.id,
            destination_ref=self.destination_ref,
        )
