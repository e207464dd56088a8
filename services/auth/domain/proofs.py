"""What a successful code check proves, and the outcome type of checks that change state.

A `VerifiedFactor` comes out of the code checks of this package (`OtpChallenge`, `TotpFactor`,
`RecoveryCodeSet`); the actions that need proof (a credential reset, a self-freeze, a step-up,
a second-factor sign-in, adding a contact) take one as a required argument, so they cannot be
called without a check, and they refuse a proof of another account, method or purpose.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from walletcore.errors import DomainError

from .events import DomainEvent


class KeyedHasher(Protocol):
    """Keyed hashes of short secrets (codes, recovery codes, refresh tokens, tickets).
    `walletcore.crypto.SecretHasher` is the production implementation."""

    def hash(self, secret: str) -> str: ...

    def verify(self, secret: str, stored_hash: str) -> bool:
        """Constant-time comparison of `secret` against a hash made by `hash`."""
        ...


class FactorMethod(enum.StrEnum):
    """How the account holder proves themselves (wallet.auth.v1.StepUpMethod)."""

    SMS = "SMS"
    EMAIL = "EMAIL"
    TOTP = "TOTP"
    RECOVERY_CODE = "RECOVERY_CODE"


SECOND_FACTOR_METHODS = frozenset({FactorMethod.TOTP, FactorMethod.RECOVERY_CODE})


class ChallengePurpose(enum.StrEnum):
    """What a code is for; a code proves nothing outside its purpose."""

    REGISTRATION = "REGISTRATION"
    CONTACT_VERIFICATION = "CONTACT_VERIFICATION"
    CREDENTIAL_RESET = "CREDENTIAL_RESET"
    STEP_UP = "STEP_UP"
    SELF_FREEZE = "SELF_FREEZE"
    CONTACT_CHANGE = "CONTACT_CHANGE"
    SIGN_IN = "SIGN_IN"
    """The second factor of a sign-in; never a code sent by SMS or email."""
    TOTP_ENROLLMENT = "TOTP_ENROLLMENT"
    """The first authenticator code that confirms a TOTP enrolment."""


@dataclass(frozen=True, slots=True)
class VerifiedFactor:
    account_id: str | None
    """None only for a registration code, which precedes the account."""
    method: FactorMethod
    purpose: ChallengePurpose
    verified_at: datetime
    challenge_id: str | None = None
    """The OTP challenge the code belonged to (SMS and EMAIL)."""
    destination_ref: str | None = None
    """The contact the code was sent to (SMS and EMAIL)."""


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """The result of checking a code whose rejection may itself change state.

    Save every object the check was called on, store `events`, then call `proof_or_raise()`.
    """

    proof: VerifiedFactor | None = None
    failure: DomainError | None = None
    events: tuple[DomainEvent, ...] = ()

    def __post_init__(self) -> None:
        if (self.proof is None) == (self.failure is None):
            raise ValueError("an outcome holds either a proof or a failure")

    @property
    def accepted(self) -> bool:
        return self.proof is not None

    def proof_or_raise(self) -> VerifiedFactor:
        if self.proof is None:
            if self.failure is None:  # an invariant, checked also under python -O
                raise RuntimeError("an outcome without its result holds its failure")
            raise self.failure
        return self.proof


def accepted(proof: VerifiedFactor, events: tuple[DomainEvent, ...] = ()) -> CheckOutcome:
    return CheckOutcome(proof=proof, events=events)


def rejected(failure: DomainError, events: tuple[DomainEvent, ...] = ()) -> CheckOutcome:
    return CheckOutcome(failure=failure, events=events)
