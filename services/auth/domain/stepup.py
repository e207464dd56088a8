"""Step-up: proving oneself again for one sensitive action, and the grant that results.

Which methods may prove which purpose:

- With TOTP enabled, every purpose needs the authenticator (TOTP or a recovery code): a code
  sent by SMS is only as safe as the SIM, and 2FA that an SMS can bypass protects nothing.
- Without TOTP, a code sent to a verified contact; for CHANGE_PHONE it must go to the current
  phone (the OLD contact) and for CHANGE_EMAIL to the current email, falling back to the other
  kind only when the account has no contact of the kind being changed. DISABLE_TOTP and
  REGENERATE_RECOVERY_CODES need TOTP and so have no method without it.

A grant is bound to the account, the purpose and, where the purpose has one, the object (card
id, new phone, new email, payment id), and lives at most 5 minutes. Auth signs it; consumers
verify it and accept each grant once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from walletcore.errors import FieldViolation, InvalidArgument, PermissionDenied

from .contacts import ContactKind, Email, Phone
from .otp import DEFAULT_OTP_LIFETIMES, OtpChannel
from .proofs import SECOND_FACTOR_METHODS, ChallengePurpose, FactorMethod, VerifiedFactor
from .reasons import Reason, code_expired

MAX_GRANT_LIFETIME: Final = timedelta(minutes=5)
AUTHENTICATOR_CHALLENGE_LIFETIME: Final = timedelta(minutes=5)
MAX_OBJECT_ID_LENGTH: Final = 128


class StepUpPurpose(enum.StrEnum):
    UNBIND_CARD = "UNBIND_CARD"
    CHANGE_PHONE = "CHANGE_PHONE"
    CHANGE_EMAIL = "CHANGE_EMAIL"
    DISABLE_TOTP = "DISABLE_TOTP"
    REGENERATE_RECOVERY_CODES = "REGENERATE_RECOVERY_CODES"
    REFUND_ABOVE_THRESHOLD = "REFUND_ABOVE_THRESHOLD"


_PURPOSES_WITH_OBJECT: Final = frozenset(
    {
        StepUpPurpose.UNBIND_CARD,
        StepUpPurpose.CHANGE_PHONE,
        StepUpPurpose.CHANGE_EMAIL,
        StepUpPurpose.REFUND_ABOVE_THRESHOLD,
    }
)
_NEEDS_TOTP: Final = frozenset(
    {StepUpPurpose.DISABLE_TOTP, StepUpPurpose.REGENERATE_RECOVERY_CODES}
)
_OWN_CONTACT_KIND: Final = {
    StepUpPurpose.CHANGE_PHONE: ContactKind.PHONE,
    StepUpPurpose.CHANGE_EMAIL: ContactKind.EMAIL,
}
_CODE_METHOD: Final = {ContactKind.PHONE: FactorMethod.SMS, ContactKind.EMAIL: FactorMethod.EMAIL}


def allowed_methods(
    purpose: StepUpPurpose, *, contact_kinds: frozenset[ContactKind], totp_active: bool
) -> frozenset[FactorMethod]:
    """The methods that may prove `purpose` for an account with these verified contact kinds
    and TOTP state (the rule in this module's docstring)."""
    if totp_active:
        return SECOND_FACTOR_METHODS
    if purpose in _NEEDS_TOTP:
        return frozenset()
    own_kind = _OWN_CONTACT_KIND.get(purpose)
    if own_kind in contact_kinds:
        return frozenset({_CODE_METHOD[own_kind]})
    return frozenset(_CODE_METHOD[kind] for kind in contact_kinds)


def normalize_object_id(
    purpose: StepUpPurpose, object_id: str, *, field: str = "object_id"
) -> str | None:
    """The object the grant binds: None for purposes without one; a new phone or email in
    normalised form; otherwise an id of at most 128 printable characters."""
    if purpose not in _PURPOSES_WITH_OBJECT:
        if object_id:
            raise InvalidArgument.field(field, f"must be empty for {purpose}")
        return None
    if not object_id:
        raise InvalidArgument(
            [FieldViolation(field, f"is required for {purpose}")],
            "the step-up purpose needs an object",
            reason=Reason.OBJECT_REQUIRED,
        )
    if purpose is StepUpPurpose.CHANGE_PHONE:
        return Phone.parse(object_id, field=field).e164
    if purpose is StepUpPurpose.CHANGE_EMAIL:
        return Email.parse(object_id, field=field).address
    if len(object_id) > MAX_OBJECT_ID_LENGTH or not object_id.isprintable():
        raise InvalidArgument.field(field, f"must be at most {MAX_OBJECT_ID_LENGTH} characters")
    return object_id


@dataclass(slots=True)
class StepUpChallenge:
    """A step-up in progress. For SMS and EMAIL, `otp_challenge_id` names the OtpChallenge
    (purpose STEP_UP) holding the code; TOTP and recovery codes are checked directly."""

    id: str
    account_id: str
    purpose: StepUpPurpose
    object_id: str | None
    method: FactorMethod
    created_at: datetime
    expires_at: datetime
    otp_challenge_id: str | None = None
    completed_at: datetime | None = None

    @classmethod
    def start(
        cls,
        *,
        id: str,
        account_id: str,
        purpose: StepUpPurpose,
        object_id: str | None,
        method: FactorMethod,
        otp_challenge_id: str | None,
        now: datetime,
    ) -> StepUpChallenge:
        sends_code = method in (FactorMethod.SMS, FactorMethod.EMAIL)
        if sends_code != (otp_challenge_id is not None):
            raise ValueError("SMS and EMAIL step-ups, and only they, have an OTP challenge")
        lifetime = (
            DEFAULT_OTP_LIFETIMES.for_channel(OtpChannel(method.value))
            if sends_code
            else AUTHENTICATOR_CHALLENGE_LIFETIME
        )
        return cls(
            id=id,
            account_id=account_id,
            purpose=purpose,
            object_id=object_id,
            method=method,
            created_at=now,
            expires_at=now + lifetime,
            otp_challenge_id=otp_challenge_id,
        )

    def complete(self, proof: VerifiedFactor, now: datetime) -> None:
        """CODE_EXPIRED for a completed or expired challenge; ValueError for a proof that is
        not of this challenge (a bug in the caller, not the user's doing)."""
        if self.completed_at is not None or now >= self.expires_at:
            raise code_expired()
        if (
            proof.account_id != self.account_id
            or proof.method is not self.method
            or proof.purpose is not ChallengePurpose.STEP_UP
            or (self.otp_challenge_id is not None and proof.challenge_id != self.otp_challenge_id)
        ):
            raise ValueError("the proof does not belong to this step-up challenge")
        self.completed_at = now


@dataclass(frozen=True, slots=True)
class StepUpGrant:
    """What auth signs (with `walletcore.tokens.TokenIssuer.step_up_grant`)."""

    account_id: str
    purpose: StepUpPurpose
    object_id: str | None
    method: FactorMethod
    issued_at: datetime
    expires_at: datetime

    def __post_init__(self) -> None:
        if not timedelta(0) < self.expires_at - self.issued_at <= MAX_GRANT_LIFETIME:
            raise ValueError("a grant lives more than 0 and at most 5 minutes")


class VerifiedGrant(Protocol):
    """A grant whose signature and expiry the service layer checked (e.g.
    `walletcore.tokens.VerifiedGrant`) and whose id it records as used in the same
    transaction as the action."""

    @property
    def jti(self) -> str: ...

    @property
    def account_id(self) -> str: ...

    @property
    def purpose(self) -> str: ...

    @property
    def object_id(self) -> str | None: ...


def require_grant(
    grant: VerifiedGrant,
    *,
    account_id: str,
    purpose: StepUpPurpose,
    object_id: str | None = None,
) -> None:
    """PERMISSION_DENIED / GRANT_INVALID unless the grant is for this account, purpose and
    object."""
    if (
        grant.account_id != account_id
        or grant.purpose != purpose.value
        or grant.object_id != object_id
    ):
        raise PermissionDenied(
            "the step-up grant is not for this action", reason=Reason.GRANT_INVALID
        )
