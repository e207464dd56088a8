"""TOTP second factors (RFC 6238 through pyotp): enrolment, verification, replay protection.

The secret is 160 random bits (32 base32 characters). The service layer stores it encrypted
(`TotpFactor.encrypted_secret` is that opaque ciphertext) and passes the decrypted secret to
the methods that need it. A code is accepted for the current 30-second step or one step either
side (clock drift), and at most once: the factor remembers the last step it accepted and
refuses that step and every earlier one. A replayed code is refused as a wrong one, and counts
as one: to whoever replays an intercepted code it is a failed guess.

States: PENDING_CONFIRMATION -> ACTIVE -> DISABLED. An enrolment is confirmed with a first code
within 10 minutes; 5 wrong confirmation codes end it.
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import pyotp

from walletcore.errors import DomainError, FailedPrecondition, NotFound

from .ledger import (
    CodeFailureLedger,
    purpose_ledger_subject,
    second_factor_ledger_subject,
)
from .otp import normalize_numeric_code
from .proofs import (
    ChallengePurpose,
    CheckOutcome,
    FactorMethod,
    VerifiedFactor,
    accepted,
    rejected,
)
from .reasons import Reason, code_expired, code_invalid, too_many_attempts

TOTP_SECRET_LENGTH: Final = 32
"""Base32 characters: 32 x 5 = 160 bits."""
ENROLLMENT_LIFETIME: Final = timedelta(minutes=10)
MAX_FAILED_CONFIRMATIONS: Final = 5


def generate_totp_secret() -> str:
    """160 bits from the operating system's CSPRNG, in base32."""
    return pyotp.random_base32(TOTP_SECRET_LENGTH)


@dataclass(frozen=True, slots=True)
class TotpParameters:
    """What authenticator apps assume by default: 6 digits, 30-second steps, SHA-1."""

    digits: int = 6
    period_seconds: int = 30
    drift_steps: int = 1

    def generator(self, secret: str) -> pyotp.TOTP:
        return pyotp.TOTP(secret, digits=self.digits, interval=self.period_seconds)

    def matching_step(self, secret: str, code: str, now: datetime) -> int | None:
        """The latest time step within the drift window whose code equals `code`."""
        generator = self.generator(secret)
        current = generator.timecode(now)
        matched = None
        # Every candidate is compared, in constant time, so timing tells nothing about which
        # step (if any) matched.
        for step in range(current - self.drift_steps, current + self.drift_steps + 1):
            if hmac.compare_digest(generator.generate_otp(step).encode(), code.encode()):
                matched = step
        return matched


DEFAULT_TOTP_PARAMETERS: Final = TotpParameters()


class TotpState(enum.StrEnum):
    PENDING_CONFIRMATION = "PENDING_CONFIRMATION"
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


def totp_not_enabled() -> FailedPrecondition:
    return FailedPrecondition("TOTP is not enabled", reason=Reason.TOTP_NOT_ENABLED)


@dataclass(slots=True)
class TotpFactor:
    id: str
    account_id: str
    encrypted_secret: bytes
    created_at: datetime
    state: TotpState = TotpState.PENDING_CONFIRMATION
    confirmed_at: datetime | None = None
    disabled_at: datetime | None = None
    last_accepted_step: int | None = None
    """The RFC 6238 counter of the last accepted code; that step and earlier ones are refused."""
    failed_confirmations: int = 0

    @classmethod
    def start_enrollment(
        cls, *, id: str, account_id: str, encrypted_secret: bytes, now: datetime
    ) -> TotpFactor:
        return cls(id=id, account_id=account_id, encrypted_secret=encrypted_secret, created_at=now)

    @property
    def is_active(self) -> bool:
        return self.state is TotpState.ACTIVE

    @property
    def enrollment_ledger_subject(self) -> str:
        """The ledger of wrong confirmation codes: a pending enrolment's secret is not the
        second factor yet, so its failures do not cool the active one's down."""
        return purpose_ledger_subject(ChallengePurpose.TOTP_ENROLLMENT, self.account_id)

    @property
    def enrollment_expires_at(self) -> datetime:
        return self.created_at + ENROLLMENT_LIFETIME

    def provisioning_uri(
        self,
        secret: str,
        *,
        issuer: str,
        account_label: str,
        parameters: TotpParameters = DEFAULT_TOTP_PARAMETERS,
    ) -> str:
        """The otpauth:// URI for a QR code. Use a masked contact as `account_label`: the app
        shows it to anyone who looks at the phone."""
        uri = parameters.generator(secret).provisioning_uri(name=account_label, issuer_name=issuer)
        return str(uri)

    def confirm(
        self,
        raw_code: str,
        *,
        secret: str,
        ledger: CodeFailureLedger,
        now: datetime,
        parameters: TotpParameters = DEFAULT_TOTP_PARAMETERS,
    ) -> CheckOutcome:
        """Activates a pending enrolment with the app's first code.

        Raises, changing nothing: ENROLLMENT_NOT_FOUND (disabled), TOTP_ALREADY_ENABLED,
        CODE_EXPIRED (older than 10 minutes), TOO_MANY_ATTEMPTS (5 wrong codes), CODE_INVALID
        (malformed) and RATE_LIMITED (ledger cooling down). `ledger` is the
        `enrollment_ledger_subject`'s.
        """
        ledger.require_subject(self.enrollment_ledger_subject)
        self._ensure_pending(now)
        code = normalize_numeric_code(raw_code, digits=parameters.digits)
        ledger.ensure_open(now)
        step = parameters.matching_step(secret, code, now)
        if step is None:
            return rejected(self._record_failed_confirmation(ledger, now))
        self.state = TotpState.ACTIVE
        self.confirmed_at = now
        self.last_accepted_step = step
        return accepted(self._proof(ChallengePurpose.TOTP_ENROLLMENT, now))

    def check(
        self,
        raw_code: str,
        *,
        secret: str,
        purpose: ChallengePurpose,
        ledger: CodeFailureLedger,
        now: datetime,
        parameters: TotpParameters = DEFAULT_TOTP_PARAMETERS,
    ) -> CheckOutcome:
        """Checks a code of an active factor.

        Raises, changing nothing: TOTP_NOT_ENABLED, CODE_INVALID (malformed) and RATE_LIMITED
        (ledger cooling down). A wrong code, and a replayed one (its step, or an earlier one,
        was already accepted), return the same rejection (CODE_INVALID), counted in the
        account's second-factor ledger; a right one returns a proof for `purpose`.
        """
        ledger.require_subject(second_factor_ledger_subject(self.account_id))
        if not self.is_active:
            raise totp_not_enabled()
        code = normalize_numeric_code(raw_code, digits=parameters.digits)
        ledger.ensure_open(now)
        step = parameters.matching_step(secret, code, now)
        replayed = step is not None and (
            self.last_accepted_step is not None and step <= self.last_accepted_step
        )
        if step is None or replayed:
            ledger.record_failure(now)
            return rejected(code_invalid())
        self.last_accepted_step = step
        return accepted(self._proof(purpose, now))

    def disable(self, now: datetime) -> None:
        if not self.is_active:
            raise totp_not_enabled()
        self.state = TotpState.DISABLED
        self.disabled_at = now

    def _ensure_pending(self, now: datetime) -> None:
        if self.state is TotpState.ACTIVE:
            raise FailedPrecondition("TOTP is already enabled", reason=Reason.TOTP_ALREADY_ENABLED)
        if self.state is TotpState.DISABLED:
            raise NotFound("no TOTP enrolment is pending", reason=Reason.ENROLLMENT_NOT_FOUND)
        if now >= self.enrollment_expires_at:
            raise code_expired()
        if self.failed_confirmations >= MAX_FAILED_CONFIRMATIONS:
            raise too_many_attempts()

    def _record_failed_confirmation(self, ledger: CodeFailureLedger, now: datetime) -> DomainError:
        self.failed_confirmations += 1
        ledger.record_failure(now)
        if self.failed_confirmations >= MAX_FAILED_CONFIRMATIONS:
            return too_many_attempts()
        return code_invalid(attempts_left=MAX_FAILED_CONFIRMATIONS - self.failed_confirmations)

    def _proof(self, purpose: ChallengePurpose, now: datetime) -> VerifiedFactor:
        return VerifiedFactor(
            account_id=self.account_id,
            method=FactorMethod.TOTP,
            purpose=purpose,
            verified_at=now,
        )
