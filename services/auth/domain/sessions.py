"""Sessions, their rotating refresh tokens, and pending sign-ins awaiting a second factor.

A session is one device's refresh-token family. Each refresh uses up the presented token and
issues the next one; presenting a token that was already used means two parties hold the
family (one of them a thief, and we cannot tell which), so the whole session is revoked.
Refresh tokens are stored as keyed hashes and live 30 days unused; a session ends 90 days after
it started however often it is refreshed. Access tokens live at most 15 minutes.

Persistence note: mark a token used with a conditional update (`WHERE used_at IS NULL`), so
that two concurrent refreshes with one token cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from walletcore.errors import DomainError, Unauthenticated

from .contacts import Contact
from .events import (
    Actor,
    DomainEvent,
    Origin,
    RevokeReason,
    SecurityEvent,
    SecurityEventType,
    recorded,
)
from .proofs import SECOND_FACTOR_METHODS, ChallengePurpose, KeyedHasher, VerifiedFactor
from .reasons import Reason

ACCESS_TOKEN_LIFETIME: Final = timedelta(minutes=15)
PENDING_SIGN_IN_LIFETIME: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class SessionLifetimes:
    refresh_token: timedelta = timedelta(days=30)
    """How long a refresh token stays valid unused."""
    session: timedelta = timedelta(days=90)
    """The absolute lifetime of the family, however often it is refreshed."""

    def __post_init__(self) -> None:
        if not timedelta(0) < self.refresh_token <= self.session:
            raise ValueError("a refresh token cannot outlive its session")


DEFAULT_SESSION_LIFETIMES: Final = SessionLifetimes()


def refresh_token_invalid() -> Unauthenticated:
    return Unauthenticated(
        "the refresh token is not valid: sign in again", reason=Reason.REFRESH_TOKEN_INVALID
    )


@dataclass(slots=True)
class RefreshToken:
    id: str
    session_id: str
    token_hash: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Rotation:
    """The next refresh token, or a refusal that revoked the session and must be saved
    (with `events`) before it is raised."""

    new_token: RefreshToken | None = None
    failure: DomainError | None = None
    events: tuple[DomainEvent, ...] = ()

    def new_token_or_raise(self) -> RefreshToken:
        if self.new_token is None:
            if self.failure is None:  # an invariant, checked also under python -O
                raise RuntimeError("an outcome without its result holds its failure")
            raise self.failure
        return self.new_token


@dataclass(frozen=True, slots=True)
class SessionTerm:
    """How long a session lasts: until it expires or is revoked, whichever comes first. The
    per-request checks read only this of a session."""

    expires_at: datetime
    revoked_at: datetime | None = None

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclass(slots=True)
class Session:
    id: str
    account_id: str
    origin: Origin
    """The device the session started on and the client address it was last used from."""
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoke_reason: RevokeReason | None = None

    @classmethod
    def start(
        cls,
        *,
        id: str,
        account_id: str,
        origin: Origin,
        first_token_id: str,
        first_token: str,
        hasher: KeyedHasher,
        now: datetime,
        lifetimes: SessionLifetimes = DEFAULT_SESSION_LIFETIMES,
    ) -> tuple[Session, RefreshToken]:
        """A new session and its first refresh token (`first_token` is random, from the
        service layer, and is stored only as its keyed hash)."""
        session = cls(
            id=id,
            account_id=account_id,
            origin=origin,
            created_at=now,
            last_used_at=now,
            expires_at=now + lifetimes.session,
        )
        return session, session._issue(first_token_id, first_token, hasher, now, lifetimes)

    @property
    def term(self) -> SessionTerm:
        return SessionTerm(expires_at=self.expires_at, revoked_at=self.revoked_at)

    def is_active(self, now: datetime) -> bool:
        return self.term.is_active(now)

    def ensure_active(self, now: datetime) -> None:
        """For access-token checks: a revoked or ended session's tokens stop working at once."""
        if not self.is_active(now):
            raise Unauthenticated("the session has ended", reason=Reason.SESSION_REVOKED)

    def revoke(self, reason: RevokeReason, now: datetime) -> bool:
        """Ends the session; False when it had already been revoked (nothing changes)."""
        if self.revoked_at is not None:
            return False
        self.revoked_at = now
        self.revoke_reason = reason
        return True

    def rotate(
        self,
        presented: RefreshToken,
        *,
        new_token_id: str,
        new_token: str,
        hasher: KeyedHasher,
        origin: Origin,
        now: datetime,
        notify: Sequence[Contact] = (),
        lifetimes: SessionLifetimes = DEFAULT_SESSION_LIFETIMES,
    ) -> Rotation:
        """Exchanges `presented` (found by the hash of what the client sent) for a new token.

        Raises REFRESH_TOKEN_INVALID, changing nothing, for a revoked or ended session and an
        expired token. An already used token revokes the session and returns a
        REFRESH_TOKEN_REUSED refusal with its security event, notified to `notify` (the
        account's contacts).
        """
        if presented.session_id != self.id:
            raise ValueError("the refresh token belongs to another session")
        if self.revoked_at is not None:
            raise refresh_token_invalid()
        if presented.used_at is not None:
            return self._revoke_for_reuse(origin, now, notify)
        if now >= presented.expires_at or now >= self.expires_at:
            raise refresh_token_invalid()
        presented.used_at = now
        self.last_used_at = now
        self.origin = Origin(origin.client_address, self.origin.device)
        return Rotation(new_token=self._issue(new_token_id, new_token, hasher, now, lifetimes))

    def _revoke_for_reuse(
        self, origin: Origin, now: datetime, notify: Sequence[Contact]
    ) -> Rotation:
        self.revoke(RevokeReason.REFRESH_TOKEN_REUSED, now)
        event = SecurityEvent(
            type=SecurityEventType.REFRESH_TOKEN_REUSED,
            account_id=self.account_id,
            occurred_at=now,
            actor=Actor.system(),
            origin=origin,
            details={"session_id": self.id},
        )
        failure = Unauthenticated(
            "the refresh token was already used: the session has been ended for safety",
            reason=Reason.REFRESH_TOKEN_REUSED,
        )
        return Rotation(failure=failure, events=recorded(event, notify))

    def _issue(
        self,
        token_id: str,
        token: str,
        hasher: KeyedHasher,
        now: datetime,
        lifetimes: SessionLifetimes,
    ) -> RefreshToken:
        return RefreshToken(
            id=token_id,
            session_id=self.id,
            token_hash=hasher.hash(token),
            issued_at=now,
            expires_at=min(now + lifetimes.refresh_token, self.expires_at),
        )


def ticket_invalid() -> Unauthenticated:
    return Unauthenticated(
        "the sign-in ticket is not valid: sign in again", reason=Reason.TICKET_INVALID
    )


@dataclass(slots=True)
class PendingSignIn:
    """A sign-in whose password was right, waiting 5 minutes for a TOTP or recovery code.
    The ticket the client holds is stored only as its keyed hash."""

    id: str
    account_id: str
    ticket_hash: str
    origin: Origin
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None = None

    @classmethod
    def start(
        cls,
        *,
        id: str,
        account_id: str,
        ticket: str,
        hasher: KeyedHasher,
        origin: Origin,
        now: datetime,
    ) -> PendingSignIn:
        return cls(
            id=id,
            account_id=account_id,
            ticket_hash=hasher.hash(ticket),
            origin=origin,
            created_at=now,
            expires_at=now + PENDING_SIGN_IN_LIFETIME,
        )

    def ensure_open(self, now: datetime) -> None:
        """TICKET_INVALID for a used or expired ticket; check before the second factor."""
        if self.completed_at is not None or now >= self.expires_at:
            raise ticket_invalid()

    def complete(self, proof: VerifiedFactor, now: datetime) -> None:
        """Uses up the ticket with a second factor the account holder just passed."""
        self.ensure_open(now)
        if (
            proof.account_id != self.account_id
            or proof.method not in SECOND_FACTOR_METHODS
            or proof.purpose is not ChallengePurpose.SIGN_IN
        ):
            raise ValueError("a sign-in is completed by this account's sign-in second factor")
        self.completed_at = now
