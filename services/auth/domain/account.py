"""The account aggregate: credentials, verified contacts, second factors and the freeze state.

Every state-changing method returns the domain events it caused. A frozen account cannot sign
in, reset its password, or pass a step-up (ACCOUNT_FROZEN); it can still be read, and frozen
again. For sign-in, tell a frozen account apart only after the password was right, so that
the answer to a wrong password never reveals the freeze.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from walletcore.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)

from .contacts import Contact, ContactKind, VerifiedContact
from .events import (
    AccountSessionsRevoked,
    Actor,
    ActorKind,
    DomainEvent,
    Origin,
    RevokeReason,
    SecurityEvent,
    SecurityEventType,
    recorded,
)
from .ledger import CodeFailureLedger
from .proofs import (
    SECOND_FACTOR_METHODS,
    ChallengePurpose,
    CheckOutcome,
    FactorMethod,
    KeyedHasher,
    VerifiedFactor,
)
from .reasons import Reason, account_frozen
from .recovery import RecoveryCodeSet
from .sessions import DEFAULT_SESSION_LIFETIMES, RefreshToken, Rotation, Session, SessionLifetimes
from .stepup import (
    MAX_GRANT_LIFETIME,
    StepUpChallenge,
    StepUpGrant,
    StepUpPurpose,
    VerifiedGrant,
    allowed_methods,
    require_grant,
)
from .totp import DEFAULT_TOTP_PARAMETERS, TotpFactor, TotpParameters, totp_not_enabled

MAX_FREEZE_REASON_LENGTH: Final = 500
MAX_TICKET_REF_LENGTH: Final = 64
_SENT_CODE_METHODS: Final = frozenset({FactorMethod.SMS, FactorMethod.EMAIL})


class AccountStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    FROZEN = "FROZEN"


@dataclass(frozen=True, slots=True)
class FreezeRecord:
    """One freeze or unfreeze in the account's history (never edited, only appended)."""

    frozen: bool
    actor: Actor
    reason: str
    """The officer's reason; empty for a self-freeze."""
    ticket_ref: str
    """The officer's ticket reference; empty for a self-freeze."""
    occurred_at: datetime


@dataclass(slots=True)
class Account:
    id: str
    password_hash: str
    contacts: list[VerifiedContact]
    created_at: datetime
    status: AccountStatus = AccountStatus.ACTIVE
    freeze_history: list[FreezeRecord] = field(default_factory=list)
    totp: TotpFactor | None = None
    """The active factor, or a pending enrolment, or a disabled one; None if never enrolled."""
    recovery_codes: RecoveryCodeSet | None = None
    password_changed_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.contacts:
            raise ValueError("an account has at least one verified contact")
        if len({contact.kind for contact in self.contacts}) != len(self.contacts):
            raise ValueError("an account has at most one verified contact of each kind")

    @classmethod
    def register(
        cls,
        *,
        id: str,
        password_hash: str,
        contact: VerifiedContact,
        origin: Origin,
        now: datetime,
    ) -> tuple[Account, tuple[DomainEvent, ...]]:
        """A new account whose first contact was just verified with a REGISTRATION code."""
        account = cls(id=id, password_hash=password_hash, contacts=[contact], created_at=now)
        return account, account._record(SecurityEventType.ACCOUNT_CREATED, origin, now)

    # -- reading -------------------------------------------------------------------------

    @property
    def is_frozen(self) -> bool:
        return self.status is AccountStatus.FROZEN

    @property
    def frozen_at(self) -> datetime | None:
        if not self.is_frozen:
            return None
        return self.freeze_history[-1].occurred_at

    @property
    def totp_active(self) -> bool:
        return self.totp is not None and self.totp.is_active

    @property
    def contact_values(self) -> tuple[Contact, ...]:
        return tuple(contact.value for contact in self.contacts)

    def contact_of_kind(self, kind: ContactKind) -> VerifiedContact | None:
        return next((contact for contact in self.contacts if contact.kind is kind), None)

    def ensure_active(self) -> None:
        if self.is_frozen:
            raise account_frozen()

    # -- password and sign-in ------------------------------------------------------------

    def upgrade_password_hash(self, new_hash: str) -> None:
        """Stores the rehash made at a successful sign-in when hashing parameters changed."""
        self.password_hash = new_hash

    def record_sign_in(
        self,
        *,
        session_id: str,
        second_factor: FactorMethod | None,
        new_device: bool,
        origin: Origin,
        now: datetime,
    ) -> tuple[DomainEvent, ...]:
        """A completed sign-in; a device the account never used before is notified."""
        self.ensure_active()
        details = {"session_id": session_id}
        if second_factor is not None:
            details["method"] = second_factor.value
        return self._record(
            SecurityEventType.SIGN_IN, origin, now, details=details, notify=new_device
        )

    def record_failed_sign_in(
        self, *, locked: bool, origin: Origin, now: datetime
    ) -> tuple[DomainEvent, ...]:
        """A wrong password or second factor; `locked` is what SignInThrottle.record_failure
        answered, and adds a notified SIGN_IN_LOCKED event."""
        return failed_sign_in_events(
            self.id, locked=locked, origin=origin, now=now, contacts=self.contact_values
        )

    def complete_credential_reset(
        self,
        *,
        code_proof: VerifiedFactor,
        second_factor: VerifiedFactor | None,
        new_password_hash: str,
        origin: Origin,
        now: datetime,
    ) -> tuple[DomainEvent, ...]:
        """Sets a password checked by PasswordPolicy against this account's contacts.

        Needs a CREDENTIAL_RESET code sent to a verified contact and, when TOTP is enabled, a
        TOTP or recovery code too (SECOND_FACTOR_REQUIRED): a reset never bypasses 2FA.
        Revokes every session and notifies every verified contact.
        """
        self.ensure_active()
        self._require_proof(code_proof, _SENT_CODE_METHODS, ChallengePurpose.CREDENTIAL_RESET)
        if self.totp_active:
            if second_factor is None:
                raise FailedPrecondition(
                    "this account also needs a TOTP or recovery code",
                    reason=Reason.SECOND_FACTOR_REQUIRED,
                )
            self._require_proof(
                second_factor, SECOND_FACTOR_METHODS, ChallengePurpose.CREDENTIAL_RESET
            )
        self.password_hash = new_password_hash
        self.password_changed_at = now
        revoked = AccountSessionsRevoked(self.id, RevokeReason.CREDENTIAL_RESET, now)
        return (revoked, *self._record(SecurityEventType.CREDENTIAL_RESET, origin, now))

    # -- sessions ------------------------------------------------------------------------

    def refresh_session(
        self,
        session: Session,
        presented: RefreshToken,
        *,
        new_token_id: str,
        new_token: str,
        hasher: KeyedHasher,
        origin: Origin,
        now: datetime,
        lifetimes: SessionLifetimes = DEFAULT_SESSION_LIFETIMES,
    ) -> Rotation:
        """Session.rotate for an active account; a reuse is notified to every contact."""
        self._require_own(session)
        self.ensure_active()
        return session.rotate(
            presented,
            new_token_id=new_token_id,
            new_token=new_token,
            hasher=hasher,
            origin=origin,
            now=now,
            notify=self.contact_values,
            lifetimes=lifetimes,
        )

    def revoke_session(
        self,
        session: Session,
        *,
        reason: RevokeReason,
        actor: Actor,
        origin: Origin,
        now: datetime,
    ) -> tuple[DomainEvent, ...]:
        """Ends one session (a sign-out, or the user's or an officer's revocation); nothing
        happens to a session already revoked."""
        self._require_own(session)
        if not session.revoke(reason, now):
            return ()
        event_type = (
            SecurityEventType.SIGN_OUT
            if reason is RevokeReason.SIGN_OUT
            else SecurityEventType.SESSION_REVOKED
        )
        details = {"session_id": session.id, "reason": reason.value}
        return self._record(event_type, origin, now, actor=actor, details=details)

    # -- freezing ------------------------------------------------------------------------

    def freeze_by_officer(
        self, *, officer: Actor, reason: str, ticket_ref: str, origin: Origin, now: datetime
    ) -> tuple[DomainEvent, ...]:
        """Freezes with the officer's reason and ticket; () when already frozen."""
        _require_security_officer(officer)
        reason, ticket_ref = officer_note(reason, ticket_ref)
        return self._freeze(FreezeRecord(True, officer, reason, ticket_ref, now), origin)

    def freeze_by_self(
        self, *, proof: VerifiedFactor, origin: Origin, now: datetime
    ) -> tuple[DomainEvent, ...]:
        """Freezes with only a SELF_FREEZE code sent to a verified contact (the password may
        be the thief's); () when already frozen."""
        self._require_proof(proof, _SENT_CODE_METHODS, ChallengePurpose.SELF_FREEZE)
        return self._freeze(FreezeRecord(True, Actor.user(self.id), "", "", now), origin)

    def unfreeze(
        self, *, officer: Actor, reason: str, ticket_ref: str, origin: Origin, now: datetime
    ) -> tuple[DomainEvent, ...]:
        """A security officer's act alone; () when not frozen."""
        _require_security_officer(officer)
        reason, ticket_ref = officer_note(reason, ticket_ref)
        if not self.is_frozen:
            return ()
        self.status = AccountStatus.ACTIVE
        self.freeze_history.append(FreezeRecord(False, officer, reason, ticket_ref, now))
        return self._record(
            SecurityEventType.ACCOUNT_UNFROZEN,
            origin,
            now,
            actor=officer,
            details={"reason": reason, "ticket_ref": ticket_ref},
        )

    def _freeze(self, record: FreezeRecord, origin: Origin) -> tuple[DomainEvent, ...]:
        if self.is_frozen:
            return ()
        self.status = AccountStatus.FROZEN
        self.freeze_history.append(record)
        revoked = AccountSessionsRevoked(self.id, RevokeReason.ACCOUNT_FROZEN, record.occurred_at)
        details = (
            {"self_freeze": "true"}
            if record.actor.kind is ActorKind.USER
            else {"reason": record.reason, "ticket_ref": record.ticket_ref}
        )
        event = self._record(
            SecurityEventType.ACCOUNT_FROZEN,
            origin,
            record.occurred_at,
            actor=record.actor,
            details=details,
        )
        return (revoked, *event)

    # -- TOTP and recovery codes ---------------------------------------------------------

    def start_totp_enrollment(
        self, *, factor_id: str, encrypted_secret: bytes, now: datetime
    ) -> TotpFactor:
        """A pending factor (replacing any earlier pending or disabled one)."""
        self.ensure_active()
        if self.totp_active:
            raise FailedPrecondition("TOTP is already enabled", reason=Reason.TOTP_ALREADY_ENABLED)
        self.totp = TotpFactor.start_enrollment(
            id=factor_id, account_id=self.id, encrypted_secret=encrypted_secret, now=now
        )
        return self.totp

    def confirm_totp_enrollment(
        self,
        raw_code: str,
        *,
        secret: str,
        recovery_codes: RecoveryCodeSet,
        ledger: CodeFailureLedger,
        origin: Origin,
        now: datetime,
        parameters: TotpParameters = DEFAULT_TOTP_PARAMETERS,
    ) -> CheckOutcome:
        """Activates TOTP with its first code and installs `recovery_codes` (generated by the
        caller, whose plaintext it returns to the user only if this is accepted)."""
        self.ensure_active()
        if self.totp is None:
            raise NotFound("no TOTP enrolment is pending", reason=Reason.ENROLLMENT_NOT_FOUND)
        self._require_own_codes(recovery_codes)
        outcome = self.totp.confirm(
            raw_code, secret=secret, ledger=ledger, now=now, parameters=parameters
        )
        if not outcome.accepted:
            return outcome
        self.recovery_codes = recovery_codes
        events = self._record(SecurityEventType.TOTP_ENABLED, origin, now)
        return dataclasses.replace(outcome, events=events)

    def check_totp(
        self,
        raw_code: str,
        *,
        secret: str,
        purpose: ChallengePurpose,
        ledger: CodeFailureLedger,
        now: datetime,
        parameters: TotpParameters = DEFAULT_TOTP_PARAMETERS,
    ) -> CheckOutcome:
        self.ensure_active()
        if self.totp is None:
            raise totp_not_enabled()
        return self.totp.check(
            raw_code, secret=secret, purpose=purpose, ledger=ledger, now=now, parameters=parameters
        )

    def redeem_recovery_code(
        self,
        raw_code: str,
        *,
        purpose: ChallengePurpose,
        hasher: KeyedHasher,
        ledger: CodeFailureLedger,
        origin: Origin,
        now: datetime,
    ) -> CheckOutcome:
        """Uses up one recovery code; every contact is told, with how many remain."""
        self.ensure_active()
        if not self.totp_active or self.recovery_codes is None:
            raise totp_not_enabled()
        outcome = self.recovery_codes.redeem(
            raw_code, purpose=purpose, hasher=hasher, ledger=ledger, now=now
        )
        if not outcome.accepted:
            return outcome
        details = {"remaining": str(self.recovery_codes.remaining), "purpose": purpose.value}
        events = self._record(SecurityEventType.RECOVERY_CODE_USED, origin, now, details=details)
        return dataclasses.replace(outcome, events=events)

    def disable_totp(
        self, *, grant: VerifiedGrant, origin: Origin, now: datetime
    ) -> tuple[DomainEvent, ...]:
        """Turns TOTP off and deletes the recovery codes; needs a DISABLE_TOTP grant."""
        self.ensure_active()
        require_grant(grant, account_id=self.id, purpose=StepUpPurpose.DISABLE_TOTP)
        if self.totp is None:
            raise totp_not_enabled()
        self.totp.disable(now)
        self.recovery_codes = None
        return self._record(SecurityEventType.TOTP_DISABLED, origin, now)

    def regenerate_recovery_codes(
        self,
        *,
        grant: VerifiedGrant,
        new_codes: RecoveryCodeSet,
        origin: Origin,
        now: datetime,
    ) -> tuple[DomainEvent, ...]:
        """Replaces the whole set (every earlier code stops working); needs a
        REGENERATE_RECOVERY_CODES grant."""
        self.ensure_active()
        require_grant(grant, account_id=self.id, purpose=StepUpPurpose.REGENERATE_RECOVERY_CODES)
        if not self.totp_active:
            raise totp_not_enabled()
        self._require_own_codes(new_codes)
        self.recovery_codes = new_codes
        return self._record(SecurityEventType.RECOVERY_CODES_REGENERATED, origin, now)

    # -- contacts ------------------------------------------------------------------------

    def add_contact(
        self, contact: VerifiedContact, *, proof: VerifiedFactor, origin: Origin, now: datetime
    ) -> tuple[DomainEvent, ...]:
        """Adds a contact of the kind the account lacks, verified with a CONTACT_VERIFICATION
        code sent to it. Uniqueness across accounts is the repository's check."""
        self.ensure_active()
        self._require_proof(proof, _SENT_CODE_METHODS, ChallengePurpose.CONTACT_VERIFICATION)
        if self.contact_of_kind(contact.kind) is not None:
            raise FailedPrecondition(
                f"the account already has a verified {contact.kind}",
                reason=Reason.CONTACT_KIND_ALREADY_VERIFIED,
            )
        self.contacts.append(contact)
        details = {"kind": contact.kind.value, "contact": contact.value.masked()}
        return self._record(SecurityEventType.CONTACT_ADDED, origin, now, details=details)

    def replace_contact(
        self, new: VerifiedContact, *, actor: Actor, origin: Origin, now: datetime
    ) -> tuple[DomainEvent, ...]:
        """Replaces the contact of `new`'s kind. The change workflow (a grant from the old
        contact and a code to the new one, or an officer with approved KYC) runs in binding;
        the old contact is notified too."""
        self.ensure_active()
        old = self.contact_of_kind(new.kind)
        if old is None:
            raise FailedPrecondition(
                f"the account has no verified {new.kind} to replace",
                reason=Reason.CONTACT_NOT_FOUND,
            )
        self.contacts[self.contacts.index(old)] = new
        details = {
            "kind": new.kind.value,
            "old_contact": old.value.masked(),
            "new_contact": new.value.masked(),
        }
        event = SecurityEvent(
            SecurityEventType.CONTACT_CHANGED, self.id, now, actor, origin, details
        )
        return recorded(event, self.contact_values, also_notify=[old.value])

    # -- step-up -------------------------------------------------------------------------

    def step_up_methods(self, purpose: StepUpPurpose) -> frozenset[FactorMethod]:
        return allowed_methods(
            purpose,
            contact_kinds=frozenset(contact.kind for contact in self.contacts),
            totp_active=self.totp_active,
        )

    def start_step_up(
        self,
        *,
        challenge_id: str,
        purpose: StepUpPurpose,
        object_id: str | None,
        method: FactorMethod,
        otp_challenge_id: str | None,
        now: datetime,
    ) -> StepUpChallenge:
        """`object_id` as `stepup.normalize_object_id` returned it. STEP_UP_METHOD_UNAVAILABLE
        when the account cannot use `method` for `purpose`."""
        self.ensure_active()
        if method not in self.step_up_methods(purpose):
            raise FailedPrecondition(
                f"{method} cannot authorise {purpose} for this account",
                reason=Reason.STEP_UP_METHOD_UNAVAILABLE,
            )
        return StepUpChallenge.start(
            id=challenge_id,
            account_id=self.id,
            purpose=purpose,
            object_id=object_id,
            method=method,
            otp_challenge_id=otp_challenge_id,
            now=now,
        )

    def complete_step_up(
        self,
        challenge: StepUpChallenge,
        *,
        proof: VerifiedFactor,
        origin: Origin,
        now: datetime,
        grant_lifetime: timedelta = MAX_GRANT_LIFETIME,
    ) -> tuple[StepUpGrant, tuple[DomainEvent, ...]]:
        """The grant to sign, once the challenge's method was passed. A frozen account
        passes no step-up, even one started before the freeze."""
        self.ensure_active()
        if challenge.account_id != self.id:
            raise ValueError("the step-up challenge belongs to another account")
        challenge.complete(proof, now)
        grant = StepUpGrant(
            account_id=self.id,
            purpose=challenge.purpose,
            object_id=challenge.object_id,
            method=challenge.method,
            issued_at=now,
            expires_at=now + grant_lifetime,
        )
        details = {"purpose": challenge.purpose.value, "method": challenge.method.value}
        return grant, self._record(SecurityEventType.STEP_UP_GRANTED, origin, now, details=details)

    # -- helpers -------------------------------------------------------------------------

    def _record(
        self,
        event_type: SecurityEventType,
        origin: Origin,
        now: datetime,
        *,
        actor: Actor | None = None,
        details: dict[str, str] | None = None,
        notify: bool | None = None,
    ) -> tuple[DomainEvent, ...]:
        event = SecurityEvent(
            type=event_type,
            account_id=self.id,
            occurred_at=now,
            actor=actor if actor is not None else Actor.user(self.id),
            origin=origin,
            details=details or {},
        )
        return recorded(event, self.contact_values, notify=notify)

    def _require_proof(
        self,
        proof: VerifiedFactor,
        methods: frozenset[FactorMethod],
        purpose: ChallengePurpose,
    ) -> None:
        """A proof of another account, method or purpose is a bug in the caller."""
        if (
            proof.account_id != self.id
            or proof.method not in methods
            or proof.purpose is not purpose
        ):
            raise ValueError(f"the proof does not prove {purpose} for this account")

    def _require_own(self, session: Session) -> None:
        if session.account_id != self.id:
            raise ValueError("the session belongs to another account")

    def _require_own_codes(self, codes: RecoveryCodeSet) -> None:
        if codes.account_id != self.id:
            raise ValueError("the recovery codes belong to another account")


def failed_sign_in_events(
    subject: str,
    *,
    locked: bool,
    origin: Origin,
    now: datetime,
    contacts: Sequence[Contact] = (),
) -> tuple[DomainEvent, ...]:
    """SIGN_IN_FAILED (and SIGN_IN_LOCKED, notified to `contacts`) for `subject`: an account
    id, or the keyed reference of an identifier that has no account, whose failures are
    recorded all the same (the security team sees them, and both cost the same work)."""
    event_types = [SecurityEventType.SIGN_IN_FAILED]
    if locked:
        event_types.append(SecurityEventType.SIGN_IN_LOCKED)
    events: tuple[DomainEvent, ...] = ()
    for event_type in event_types:
        event = SecurityEvent(
            type=event_type,
            account_id=subject,
            occurred_at=now,
            actor=Actor.user(subject),
            origin=origin,
        )
        events += recorded(event, contacts)
    return events


def _require_security_officer(actor: Actor) -> None:
    if actor.kind is not ActorKind.OPERATOR:
        raise PermissionDenied(
            "only a security officer may do this", reason=Reason.NOT_A_SECURITY_OFFICER
        )


def officer_note(reason: str, ticket_ref: str) -> tuple[str, str]:
    """The officer's reason and ticket, trimmed; InvalidArgument naming each bad one. Public
    so a bulk freeze can check them before (and without) loading any account."""
    reason, ticket_ref = reason.strip(), ticket_ref.strip()
    violations = []
    if not reason or len(reason) > MAX_FREEZE_REASON_LENGTH or not reason.isprintable():
        violations.append(
            FieldViolation("reason", f"is required: 1 to {MAX_FREEZE_REASON_LENGTH} characters")
        )
    if not ticket_ref or len(ticket_ref) > MAX_TICKET_REF_LENGTH or not ticket_ref.isprintable():
        violations.append(
            FieldViolation("ticket_ref", f"is required: 1 to {MAX_TICKET_REF_LENGTH} characters")
        )
    if violations:
        raise InvalidArgument(violations)
    return reason, ticket_ref
