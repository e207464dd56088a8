"""What auth's use cases need from the outside world, as small interfaces.

The SQLAlchemy adapters (`services.auth.adapters.repositories`, `.uow`) implement them for
SQLite and PostgreSQL; `services.auth.service.fakes` implements them in memory for unit tests.
Repositories hand out domain objects and persist them on `add`/`save`; nothing is written
until the unit of work commits. Lookups of contacts go through a keyed blind index inside the
adapter: a phone number or address is never a plaintext column or a log line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Self, TypeVar

from services.auth.domain.account import Account, AccountStatus
from services.auth.domain.contacts import Contact, ContactKind, VerifiedContact
from services.auth.domain.events import RevokeReason, SecurityEvent
from services.auth.domain.ledger import CodeFailureLedger
from services.auth.domain.otp import OtpChallenge
from services.auth.domain.pending import PendingContact
from services.auth.domain.proofs import ChallengePurpose
from services.auth.domain.sessions import PendingSignIn, RefreshToken, Session, SessionTerm
from services.auth.domain.stepup import StepUpChallenge
from services.auth.domain.throttling import CounterScope, FailureCounter
from walletcore.audit import AuditTrail
from walletcore.idempotency import IdempotencyKey


@dataclass(frozen=True, slots=True)
class CodeDestination:
    """What a signed-out start needs of the account that owns an identifier: whether it is
    frozen, and its verified contact of the channel's kind (None when it has none)."""

    account_id: str
    status: AccountStatus
    contact: VerifiedContact | None


@dataclass(frozen=True, slots=True)
class SignInCredentials:
    """What a sign-in checks before it knows the caller: the account, its password hash and
    its contacts (a lock is notified to them)."""

    account_id: str
    password_hash: str
    contacts: tuple[Contact, ...]


class Accounts(Protocol):
    async def get(self, account_id: str, *, for_update: bool = False) -> Account | None:
        """The whole aggregate (contacts, TOTP factor, recovery codes, freeze history), for
        use cases that change it (reads that only answer use `AccountReads`). `for_update`
        takes the row lock on PostgreSQL so concurrent changes queue."""
        ...

    async def get_many(
        self, account_ids: Sequence[str], *, for_update: bool = False
    ) -> list[Account]:
        """`get` for many at once, with a few statements in all rather than a few per account:
        the aggregates of those of `account_ids` that exist, in id order (the order
        `for_update` locks them in, so callers over overlapping ids never deadlock)."""
        ...

    async def find_by_contact(
        self, contact: Contact, *, for_update: bool = False
    ) -> Account | None:
        """The account that has verified `contact`, if any."""
        ...

    async def find_code_destination(
        self, identifier: Contact, kind: ContactKind
    ) -> CodeDestination | None:
        """The owner of `identifier` and its contact of `kind`, in ONE statement whether or not
        anything matches: a signed-out start must do the same database work either way."""
        ...

    async def find_sign_in_credentials(self, identifier: Contact) -> SignInCredentials | None:
        """The owner of `identifier` and its password hash, in ONE statement whether or not
        anything matches (see `find_code_destination`)."""
        ...

    async def contact_in_use(self, contact: Contact) -> bool:
        """Whether any account has verified `contact` (a contact belongs to one account)."""
        ...

    async def add(self, account: Account) -> None:
        """Raises AlreadyExists (reason CONTACT_IN_USE) if another account has a contact of
        it, at the latest on commit: the database's unique constraint is the last word."""
        ...

    async def save(self, account: Account) -> None:
        """Persists every change of the aggregate made since it was loaded; a contact taken
        meanwhile raises AlreadyExists (CONTACT_IN_USE) like `add`."""
        ...


@dataclass(frozen=True, slots=True)
class AccountStanding:
    """What the per-request checks need of an account and one of its sessions."""

    status: AccountStatus
    frozen_at: datetime | None
    """When it was frozen (its latest freeze record); None unless frozen."""
    totp_enabled: bool
    session: SessionTerm | None
    """The session asked about; None when none was asked about, or it does not exist or is
    another account's."""


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """What an account's own read shows of it (no freeze history, secrets or code hashes)."""

    id: str
    status: AccountStatus
    contacts: list[VerifiedContact]
    totp_enabled: bool
    unused_recovery_codes: int
    created_at: datetime
    frozen_at: datetime | None
    """As in `AccountStanding`."""


class AccountReads(Protocol):
    """Reads outside any unit of work, one database round trip each, for what every request
    asks: they see what was committed before they started (a freeze or a revocation that has
    returned), and write nothing."""

    async def standing(self, account_id: str, session_id: str | None) -> AccountStanding | None:
        """None when the account does not exist."""
        ...

    async def summary(self, account_id: str) -> AccountSummary | None:
        """None when the account does not exist."""
        ...


class Sessions(Protocol):
    async def get(self, session_id: str, *, for_update: bool = False) -> Session | None: ...

    async def list_for_account(self, account_id: str) -> list[Session]:
        """Every session of the account, newest first (callers filter active ones)."""
        ...

    async def add(self, session: Session, first_token: RefreshToken) -> None: ...

    async def save(self, session: Session) -> None: ...

    async def get_refresh_token(
        self, token_id: str, *, for_update: bool = False
    ) -> RefreshToken | None: ...

    async def add_refresh_token(self, token: RefreshToken) -> None: ...

    async def save_refresh_token(self, token: RefreshToken) -> None: ...

    async def revoke_all(self, account_id: str, reason: RevokeReason, now: datetime) -> int:
        """Ends every active session of the account (and so its refresh tokens) in one
        statement; returns how many were active."""
        ...


class PendingSignIns(Protocol):
    async def get(self, pending_id: str, *, for_update: bool = False) -> PendingSignIn | None: ...

    async def add(self, pending: PendingSignIn) -> None: ...

    async def save(self, pending: PendingSignIn) -> None: ...


class OtpChallenges(Protocol):
    async def get(self, challenge_id: str, *, for_update: bool = False) -> OtpChallenge | None: ...

    async def add(self, challenge: OtpChallenge) -> None: ...

    async def save(self, challenge: OtpChallenge) -> None: ...


class StepUpChallenges(Protocol):
    async def get(
        self, challenge_id: str, *, for_update: bool = False
    ) -> StepUpChallenge | None: ...

    async def add(self, challenge: StepUpChallenge) -> None: ...

    async def save(self, challenge: StepUpChallenge) -> None: ...


class PendingContacts(Protocol):
    async def get(self, pending_id: str, *, for_update: bool = False) -> PendingContact | None: ...

    async def add(self, pending: PendingContact) -> None: ...

    async def save(self, pending: PendingContact) -> None: ...


class CodeFailureLedgers(Protocol):
    async def get_or_new(self, subject: str) -> CodeFailureLedger:
        """The subject's ledger (row-locked on PostgreSQL), or a fresh one not yet stored."""
        ...

    async def save(self, ledger: CodeFailureLedger) -> None:
        """Inserts or updates."""
        ...


class FailureCounters(Protocol):
    async def get_or_new(self, scope: CounterScope, key: str) -> FailureCounter:
        """Row-locked on PostgreSQL; a fresh counter when none is stored."""
        ...

    async def save(self, counter: FailureCounter) -> None:
        """Inserts or updates."""
        ...


@dataclass(frozen=True, slots=True)
class StoredSecurityEvent:
    """A recorded event with the id and position the timeline pages by."""

    id: str
    event: SecurityEvent


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[StoredSecurityEvent]
    next_page_token: str
    """Empty when there is no further page."""


class SecurityEvents(Protocol):
    async def add(self, event: SecurityEvent) -> str:
        """Records the event; returns its id."""
        ...

    async def list_for_account(
        self, account_id: str, *, page_size: int, page_token: str
    ) -> EventPage:
        """Newest first. An unknown or malformed page token raises InvalidArgument on field
        `page.page_token`."""
        ...


class UsedGrants(Protocol):
    async def consume(self, jti: str, expires_at: datetime) -> bool:
        """Records a step-up grant as used; False if it was used before (a grant is accepted
        once). Rows may be purged after `expires_at`."""
        ...


class Notifier(Protocol):
    """Messages to the user, written to the outbox in the unit of work's transaction (so
    they are sent if and only if it commits). Implementations render the texts."""

    async def send_code(
        self, destination: Contact, *, code: str, purpose: ChallengePurpose, expires_at: datetime
    ) -> None: ...

    async def security_notice(
        self, recipients: Sequence[Contact], event: SecurityEvent
    ) -> None: ...

    async def decoy_code(
        self, kind: ContactKind, *, purpose: ChallengePurpose, expires_at: datetime
    ) -> None:
        """Does the work of `send_code` to a contact of `kind` and sends nothing: what an
        enumeration-safe start does where there is no one to send to, so that its answer costs
        the same database work as one that sent a code."""
        ...

    async def decoy_notice(self, kind: ContactKind, event: SecurityEvent) -> None:
        """Does the work of `security_notice` to one contact of `kind` and sends nothing."""
        ...


class AuthUnitOfWork(Protocol):
    """One transaction per RPC: `async with uow:`, then `await uow.commit()`; leaving the
    block without committing rolls everything back, outbox messages included."""

    accounts: Accounts
    sessions: Sessions
    pending_sign_ins: PendingSignIns
    otp_challenges: OtpChallenges
    step_up_challenges: StepUpChallenges
    pending_contacts: PendingContacts
    code_failure_ledgers: CodeFailureLedgers
    failure_counters: FailureCounters
    security_events: SecurityEvents
    used_grants: UsedGrants
    audit: AuditTrail
    notifier: Notifier

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...


class PasswordHashing(Protocol):
    """`services.auth.adapters.passwords.PasswordHasher`: argon2id off the event loop."""

    async def hash(self, password: str) -> str: ...

    async def verify_and_update(self, password: str, stored_hash: str) -> tuple[bool, str | None]:
        """(matches, new hash when the parameters changed and it matched)."""
        ...

    async def dummy_verify(self) -> None:
        """Costs what a verification costs, for accounts that do not exist."""
        ...


_T = TypeVar("_T")


class Transactions(Protocol):
    """Runs one RPC's work in one unit of work: the transaction boundary of every use case.

    Use cases are `async def use_case(uow, ...)` and never commit themselves: `run` commits
    when the work returns. A use case whose refusal changed state that must last (a wrong code
    counts against its limit) raises `walletcore.idempotency.CommittedRefusal(error)`: the
    changes are committed and `error` is raised. Any other exception rolls everything back.
    """

    async def run(self, work: Callable[[AuthUnitOfWork], Awaitable[_T]]) -> _T: ...

    async def run_idempotent(
        self, key: IdempotencyKey, work: Callable[[AuthUnitOfWork], Awaitable[bytes]]
    ) -> bytes:
        """`run`, once per request_id: a retry with the same key and body returns the first
        response bytes (the API layer's serialized reply) without running `work` again; the
        same request_id with another body raises InvalidArgument (IDEMPOTENCY_KEY_REUSED)."""
        ...
