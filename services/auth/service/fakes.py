"""In-memory implementations of every port in `ports`, for unit tests of the use cases.

They keep the promises the SQLAlchemy adapters keep, so a use case that passes here behaves
the same on a database:

- Repositories hand out copies and store copies: a change a use case forgets to `save` is
  lost, as it would be on a database.
- A contact belongs to one account: `Accounts.add` / `save` raise AlreadyExists with reason
  CONTACT_IN_USE (phones compared in E.164, e-mail addresses case-insensitively).
- A unit of work commits or rolls back everything it wrote, outbox messages included: the
  store is snapshotted on entry and restored on a rollback.
- `FakeTransactions` runs one unit of work per call like the real `Transactions`: commit when
  the work returns, commit and then raise on `CommittedRefusal`, roll back on anything else,
  and answer a repeated request_id from its idempotency records.

`fake_context()` builds an `AuthContext` on development keys, an in-memory rate limiter and
a cheap password hasher, all driven by one controllable `FakeClock`.

    store = FakeStore()
    tx = FakeTransactions(store)
    result = await tx.run(lambda uow: some_use_case(uow, ctx, ...))
    code = store.notifier.last_code(to=phone)
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Generic, Self, TypeVar

from services.auth.domain.account import Account
from services.auth.domain.contacts import Contact, ContactKind, Email
from services.auth.domain.events import RevokeReason, SecurityEvent
from services.auth.domain.ledger import (
    DEFAULT_CODE_FAILURE_POLICY,
    CodeFailureLedger,
    CodeFailurePolicy,
)
from services.auth.domain.otp import OtpChallenge
from services.auth.domain.passwords import PasswordPolicy, normalize_password
from services.auth.domain.pending import PendingContact
from services.auth.domain.proofs import ChallengePurpose
from services.auth.domain.sessions import PendingSignIn, RefreshToken, Session
from services.auth.domain.stepup import StepUpChallenge
from services.auth.domain.throttling import CounterScope, FailureCounter
from services.auth.service.context import AuthContext, AuthRules
from services.auth.service.ports import (
    Accounts,
    AccountStanding,
    AccountSummary,
    AuthUnitOfWork,
    CodeDestination,
    CodeFailureLedgers,
    EventPage,
    FailureCounters,
    Notifier,
    OtpChallenges,
    PendingContacts,
    PendingSignIns,
    SecurityEvents,
    Sessions,
    SignInCredentials,
    StepUpChallenges,
    StoredSecurityEvent,
    UsedGrants,
)
from walletcore.audit import AuditRecord, AuditTrail
from walletcore.crypto import KeyRing, SecretHasher, random_numeric_code, random_token
from walletcore.errors import AlreadyExists, FieldViolation, InvalidArgument
from walletcore.idempotency import (
    KEY_REUSED_REASON,
    REQUEST_ID_FIELD,
    CommittedRefusal,
    IdempotencyKey,
)
from walletcore.ratelimit.memory import InMemoryRateLimiter
from walletcore.tokens import GrantVerifier, SigningKeyRing, StaticKeySet, TokenIssuer

CONTACT_IN_USE: Final = "CONTACT_IN_USE"
PAGE_TOKEN_INVALID: Final = "PAGE_TOKEN_INVALID"  # noqa: S105 (a reason, not a password)
FAKE_ISSUER: Final = "wallet-auth"
FAKE_SIGNING_KEYS_LABEL: Final = "auth-access-tokens"
"""`SigningKeyRing.development(FAKE_SIGNING_KEYS_LABEL)` signs fake_context's tokens."""
FAKE_START: Final = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

_T = TypeVar("_T")
_Row = TypeVar("_Row")


# -- the store ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentCode:
    to: Contact
    code: str
    purpose: ChallengePurpose
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SentNotice:
    to: Contact
    event: SecurityEvent


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    body_digest: str
    response: bytes


@dataclass
class FakeStore:
    """Everything the fakes persist. Tests read it to check what a use case committed."""

    accounts: dict[str, Account] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    pending_sign_ins: dict[str, PendingSignIn] = field(default_factory=dict)
    otp_challenges: dict[str, OtpChallenge] = field(default_factory=dict)
    step_up_challenges: dict[str, StepUpChallenge] = field(default_factory=dict)
    pending_contacts: dict[str, PendingContact] = field(default_factory=dict)
    code_failure_ledgers: dict[str, CodeFailureLedger] = field(default_factory=dict)
    failure_counters: dict[tuple[CounterScope, str], FailureCounter] = field(default_factory=dict)
    security_events: list[StoredSecurityEvent] = field(default_factory=list)
    used_grants: dict[str, datetime] = field(default_factory=dict)
    audit_records: list[tuple[AuditRecord, datetime]] = field(default_factory=list)
    sent_codes: list[SentCode] = field(default_factory=list)
    sent_notices: list[SentNotice] = field(default_factory=list)
    decoy_codes: list[tuple[ContactKind, ChallengePurpose]] = field(default_factory=list)
    """What `Notifier.decoy_code` wrote and never sent."""
    decoy_notices: list[tuple[ContactKind, SecurityEvent]] = field(default_factory=list)
    """What `Notifier.decoy_notice` wrote and never sent."""
    idempotency_records: dict[tuple[str, str, str], IdempotencyRecord] = field(default_factory=dict)

    @property
    def notifier(self) -> RecordingNotifier:
        """What was sent (committed) so far."""
        return RecordingNotifier(self)

    def snapshot(self) -> FakeStore:
        return copy.deepcopy(self)

    def restore(self, snapshot: FakeStore) -> None:
        """Puts the contents of `snapshot` back, keeping this object (tests hold it)."""
        for store_field in dataclasses.fields(self):
            current = getattr(self, store_field.name)
            saved = getattr(snapshot, store_field.name)
            if isinstance(current, dict):
                current.clear()
                current.update(saved)
            else:
                current[:] = saved

    def events_of(self, account_id: str) -> list[SecurityEvent]:
        """The account's recorded security events, oldest first."""
        return [
            stored.event for stored in self.security_events if stored.event.account_id == account_id
        ]


def _contact_key(contact: Contact) -> tuple[str, str]:
    if isinstance(contact, Email):
        return contact.kind.value, contact.lookup_key
    return contact.kind.value, contact.e164


def _contact_in_use() -> AlreadyExists:
    return AlreadyExists("this contact already belongs to an account", reason=CONTACT_IN_USE)


# -- the unit of work and its repositories -----------------------------------------------------


class FakeUnitOfWork:
    """An `AuthUnitOfWork` over a `FakeStore`; repositories refuse use outside `async with`.
    New code failure ledgers get `code_failure_policy`, as the SQL unit of work's do."""

    def __init__(
        self,
        store: FakeStore,
        code_failure_policy: CodeFailurePolicy = DEFAULT_CODE_FAILURE_POLICY,
    ) -> None:
        self.store = store
        self._snapshot: FakeStore | None = None
        # Typed as the ports: the protocol's attributes are invariant.
        self.accounts: Accounts = FakeAccounts(self)
        self.sessions: Sessions = FakeSessions(self)
        self.pending_sign_ins: PendingSignIns = _Keyed(self, store.pending_sign_ins)
        self.otp_challenges: OtpChallenges = _Keyed(self, store.otp_challenges)
        self.step_up_challenges: StepUpChallenges = _Keyed(self, store.step_up_challenges)
        self.pending_contacts: PendingContacts = _Keyed(self, store.pending_contacts)
        self.code_failure_ledgers: CodeFailureLedgers = FakeCodeFailureLedgers(
            self, code_failure_policy
        )
        self.failure_counters: FailureCounters = FakeFailureCounters(self)
        self.security_events: SecurityEvents = FakeSecurityEvents(self)
        self.used_grants: UsedGrants = FakeUsedGrants(self)
        self.audit: AuditTrail = FakeAuditTrail(self)
        self.notifier: Notifier = RecordingNotifier(store, self)

    @property
    def is_open(self) -> bool:
        return self._snapshot is not None

    def require_open(self) -> None:
        if self._snapshot is None:
            raise RuntimeError("the unit of work is not open: use `async with uow:`")

    async def __aenter__(self) -> Self:
        if self._snapshot is not None:
            raise RuntimeError("the unit of work is already open")
        self._snapshot = self.store.snapshot()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        snapshot, self._snapshot = self._snapshot, None
        if snapshot is not None:
            self.store.restore(snapshot)

    async def commit(self) -> None:
        self.require_open()
        # What follows the commit is a new transaction, rolled back unless committed too.
        self._snapshot = self.store.snapshot()


class _Repository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _store(self) -> FakeStore:
        self._uow.require_open()
        return self._uow.store


class _Keyed(_Repository, Generic[_Row]):
    """get / add / save by `id`, for the repositories that need nothing more."""

    def __init__(self, uow: FakeUnitOfWork, rows: dict[str, _Row]) -> None:
        super().__init__(uow)
        self._rows = rows

    async def get(self, row_id: str, *, for_update: bool = False) -> _Row | None:
        self._uow.require_open()
        return copy.deepcopy(self._rows.get(row_id))

    async def add(self, row: _Row) -> None:
        self._uow.require_open()
        row_id: str = getattr(row, "id")  # noqa: B009 (every stored domain object has an id)
        if row_id in self._rows:
            raise ValueError(f"a {type(row).__name__} with this id is already stored")
        self._rows[row_id] = copy.deepcopy(row)

    async def save(self, row: _Row) -> None:
        self._uow.require_open()
        row_id: str = getattr(row, "id")  # noqa: B009
        if row_id not in self._rows:
            raise ValueError(f"save of a {type(row).__name__} that was never added")
        self._rows[row_id] = copy.deepcopy(row)


class FakeAccounts(_Repository):
    async def get(self, account_id: str, *, for_update: bool = False) -> Account | None:
        return copy.deepcopy(self._store.accounts.get(account_id))

    async def get_many(
        self, account_ids: Sequence[str], *, for_update: bool = False
    ) -> list[Account]:
        stored = self._store.accounts
        return [copy.deepcopy(stored[i]) for i in sorted(set(account_ids)) if i in stored]

    async def find_by_contact(
        self, contact: Contact, *, for_update: bool = False
    ) -> Account | None:
        owner = self._owner_of(contact)
        return None if owner is None else copy.deepcopy(self._store.accounts[owner])

    async def find_code_destination(
        self, identifier: Contact, kind: ContactKind
    ) -> CodeDestination | None:
        owner = self._owner_of(identifier)
        if owner is None:
            return None
        account = self._store.accounts[owner]
        return CodeDestination(account.id, account.status, account.contact_of_kind(kind))

    async def find_sign_in_credentials(self, identifier: Contact) -> SignInCredentials | None:
        owner = self._owner_of(identifier)
        if owner is None:
            return None
        account = self._store.accounts[owner]
        return SignInCredentials(owner, account.password_hash, account.contact_values)

    async def contact_in_use(self, contact: Contact) -> bool:
        return self._owner_of(contact) is not None

    async def add(self, account: Account) -> None:
        if account.id in self._store.accounts:
            raise ValueError("an account with this id is already stored")
        self._check_contacts_free(account)
        self._store.accounts[account.id] = copy.deepcopy(account)

    async def save(self, account: Account) -> None:
        if account.id not in self._store.accounts:
            raise ValueError("save of an account that was never added")
        self._check_contacts_free(account)
        self._store.accounts[account.id] = copy.deepcopy(account)

    def _owner_of(self, contact: Contact) -> str | None:
        wanted = _contact_key(contact)
        for account in self._store.accounts.values():
            if any(_contact_key(own) == wanted for own in account.contact_values):
                return account.id
        return None

    def _check_contacts_free(self, account: Account) -> None:
        for contact in account.contact_values:
            owner = self._owner_of(contact)
            if owner is not None and owner != account.id:
                raise _contact_in_use()


class FakeSessions(_Repository):
    async def get(self, session_id: str, *, for_update: bool = False) -> Session | None:
        return copy.deepcopy(self._store.sessions.get(session_id))

    async def list_for_account(self, account_id: str) -> list[Session]:
        own = [s for s in self._store.sessions.values() if s.account_id == account_id]
        return copy.deepcopy(sorted(own, key=lambda session: session.created_at, reverse=True))

    async def add(self, session: Session, first_token: RefreshToken) -> None:
        if session.id in self._store.sessions:
            raise ValueError("a session with this id is already stored")
        if first_token.session_id != session.id:
            raise ValueError("the first refresh token belongs to another session")
        self._store.sessions[session.id] = copy.deepcopy(session)
        await self.add_refresh_token(first_token)

    async def save(self, session: Session) -> None:
        if session.id not in self._store.sessions:
            raise ValueError("save of a session that was never added")
        self._store.sessions[session.id] = copy.deepcopy(session)

    async def get_refresh_token(
        self, token_id: str, *, for_update: bool = False
    ) -> RefreshToken | None:
        return copy.deepcopy(self._store.refresh_tokens.get(token_id))

    async def add_refresh_token(self, token: RefreshToken) -> None:
        if token.id in self._store.refresh_tokens:
            raise ValueError("a refresh token with this id is already stored")
        if token.session_id not in self._store.sessions:
            raise ValueError("a refresh token needs its session stored first")
        self._store.refresh_tokens[token.id] = copy.deepcopy(token)

    async def save_refresh_token(self, token: RefreshToken) -> None:
        if token.id not in self._store.refresh_tokens:
            raise ValueError("save of a refresh token that was never added")
        self._store.refresh_tokens[token.id] = copy.deepcopy(token)

    async def revoke_all(self, account_id: str, reason: RevokeReason, now: datetime) -> int:
        revoked = 0
        for session in self._store.sessions.values():
            if session.account_id == account_id and session.is_active(now):
                session.revoke(reason, now)
                revoked += 1
        return revoked


class FakeCodeFailureLedgers(_Repository):
    def __init__(self, uow: FakeUnitOfWork, policy: CodeFailurePolicy) -> None:
        super().__init__(uow)
        self._policy = policy

    async def get_or_new(self, subject: str) -> CodeFailureLedger:
        stored = self._store.code_failure_ledgers.get(subject)
        if stored is None:
            return CodeFailureLedger(subject, policy=self._policy)
        return copy.deepcopy(stored)

    async def save(self, ledger: CodeFailureLedger) -> None:
        self._store.code_failure_ledgers[ledger.subject] = copy.deepcopy(ledger)


class FakeFailureCounters(_Repository):
    async def get_or_new(self, scope: CounterScope, key: str) -> FailureCounter:
        stored = self._store.failure_counters.get((scope, key))
        return copy.deepcopy(stored) if stored is not None else FailureCounter(scope, key)

    async def save(self, counter: FailureCounter) -> None:
        self._store.failure_counters[(counter.scope, counter.key)] = copy.deepcopy(counter)


class FakeSecurityEvents(_Repository):
    """Pages are newest first; a page token is the id of the last event of the page before."""

    async def add(self, event: SecurityEvent) -> str:
        event_id = uuid.uuid4().hex
        self._store.security_events.append(StoredSecurityEvent(id=event_id, event=event))
        return event_id

    async def list_for_account(
        self, account_id: str, *, page_size: int, page_token: str
    ) -> EventPage:
        if page_size < 1:
            raise ValueError("a page holds at least one event")
        # Newest first; among events of the same instant, the later recorded first.
        timeline = [
            stored
            for stored in reversed(self._store.security_events)
            if stored.event.account_id == account_id
        ]
        timeline.sort(key=lambda stored: stored.event.occurred_at, reverse=True)
        start = 0
        if page_token:
            ids = [stored.id for stored in timeline]
            if page_token not in ids:
                raise InvalidArgument(
                    [FieldViolation("page.page_token", "is not a token of this list")],
                    "the page token does not fit this list",
                    reason=PAGE_TOKEN_INVALID,
                )
            start = ids.index(page_token) + 1
        page = timeline[start : start + page_size]
        more = start + page_size < len(timeline)
        return EventPage(events=page, next_page_token=page[-1].id if more else "")


class FakeUsedGrants(_Repository):
    async def consume(self, jti: str, expires_at: datetime) -> bool:
        if jti in self._store.used_grants:
            return False
        self._store.used_grants[jti] = expires_at
        return True


class FakeAuditTrail(_Repository):
    async def append(self, record: AuditRecord, now: datetime) -> None:
        self._store.audit_records.append((copy.deepcopy(record), now))


class RecordingNotifier:
    """The `Notifier` port writing to the store (so a rollback unsends), and the test's view of
    what was sent: `last_code(to=...)`, `codes_to(...)`, `notices_to(...)`."""

    def __init__(self, store: FakeStore, uow: FakeUnitOfWork | None = None) -> None:
        self._store = store
        self._uow = uow

    async def send_code(
        self, destination: Contact, *, code: str, purpose: ChallengePurpose, expires_at: datetime
    ) -> None:
        self._require_transaction()
        self._store.sent_codes.append(SentCode(destination, code, purpose, expires_at))

    async def security_notice(self, recipients: Sequence[Contact], event: SecurityEvent) -> None:
        self._require_transaction()
        self._store.sent_notices.extend(SentNotice(recipient, event) for recipient in recipients)

    async def decoy_code(
        self, kind: ContactKind, *, purpose: ChallengePurpose, expires_at: datetime
    ) -> None:
        self._require_transaction()
        self._store.decoy_codes.append((kind, purpose))

    async def decoy_notice(self, kind: ContactKind, event: SecurityEvent) -> None:
        self._require_transaction()
        self._store.decoy_notices.append((kind, event))

    def codes_to(self, to: Contact | str) -> list[SentCode]:
        wanted = _destination_key(to)
        return [sent for sent in self._store.sent_codes if _destination_key(sent.to) == wanted]

    def last_code(self, to: Contact | str) -> str:
        """The newest code sent to `to`; fails the test when none was."""
        sent = self.codes_to(to)
        if not sent:
            raise AssertionError("no code was sent to this destination")
        return sent[-1].code

    def notices_to(self, to: Contact | str) -> list[SentNotice]:
        wanted = _destination_key(to)
        return [sent for sent in self._store.sent_notices if _destination_key(sent.to) == wanted]

    @property
    def codes(self) -> list[SentCode]:
        return list(self._store.sent_codes)

    @property
    def notices(self) -> list[SentNotice]:
        return list(self._store.sent_notices)

    def _require_transaction(self) -> None:
        if self._uow is None:
            raise RuntimeError("messages are sent through a unit of work's notifier")
        self._uow.require_open()


def _destination_key(to: Contact | str) -> str:
    if isinstance(to, str):
        return to.casefold()
    return _contact_key(to)[1].casefold()


# -- reads outside a unit of work --------------------------------------------------------------


class FakeAccountReads:
    """The `AccountReads` port over a `FakeStore`: what is stored now, as the SQL reads see
    what was committed."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def standing(self, account_id: str, session_id: str | None) -> AccountStanding | None:
        account = self.store.accounts.get(account_id)
        if account is None:
            return None
        session = None if session_id is None else self.store.sessions.get(session_id)
        return AccountStanding(
            status=account.status,
            frozen_at=account.frozen_at,
            totp_enabled=account.totp_active,
            session=session.term
            if session is not None and session.account_id == account_id
            else None,
        )

    async def summary(self, account_id: str) -> AccountSummary | None:
        account = self.store.accounts.get(account_id)
        if account is None:
            return None
        codes = account.recovery_codes
        return AccountSummary(
            id=account.id,
            status=account.status,
            contacts=copy.deepcopy(account.contacts),
            totp_enabled=account.totp_active,
            unused_recovery_codes=codes.remaining if codes is not None else 0,
            created_at=account.created_at,
            frozen_at=account.frozen_at,
        )


# -- transactions ------------------------------------------------------------------------------


class FakeTransactions:
    """The `Transactions` port over a `FakeStore`, one unit of work per call.

    `runs` counts the units of work that ran `work` (a replayed request_id runs none).
    """

    def __init__(
        self,
        store: FakeStore | None = None,
        code_failure_policy: CodeFailurePolicy = DEFAULT_CODE_FAILURE_POLICY,
    ) -> None:
        self.store = store if store is not None else FakeStore()
        self.runs = 0
        self._code_failure_policy = code_failure_policy

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store, self._code_failure_policy)

    async def run(self, work: Callable[[AuthUnitOfWork], Awaitable[_T]]) -> _T:
        async with self.unit_of_work() as uow:
            self.runs += 1
            try:
                result = await work(uow)
            except CommittedRefusal as refusal:
                await uow.commit()
                raise refusal.error from None
            await uow.commit()
            return result

    async def run_idempotent(
        self, key: IdempotencyKey, work: Callable[[AuthUnitOfWork], Awaitable[bytes]]
    ) -> bytes:
        record_key = (key.scope, key.owner, key.request_id)
        stored = self.store.idempotency_records.get(record_key)
        if stored is not None:
            if not hmac.compare_digest(stored.body_digest, key.body_digest):
                raise InvalidArgument(
                    [FieldViolation(REQUEST_ID_FIELD, "was already used for a different request")],
                    "this request_id was already used for a different request",
                    reason=KEY_REUSED_REASON,
                )
            return stored.response

        async def recorded(uow: AuthUnitOfWork) -> bytes:
            response = await work(uow)
            self.store.idempotency_records[record_key] = IdempotencyRecord(
                key.body_digest, response
            )
            return response

        return await self.run(recorded)


# -- the context -------------------------------------------------------------------------------


class FakeClock:
    """A clock tests move by hand; starts at FAKE_START."""

    def __init__(self, start: datetime = FAKE_START) -> None:
        if start.utcoffset() is None:
            raise ValueError("the clock needs a timezone-aware start")
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise ValueError("time does not run backwards")
        self.now += by
        return self.now

    def microseconds(self) -> int:
        """Microseconds since the epoch, for the rate limiter's clock."""
        return int(self.now.timestamp() * 1_000_000)


class FakePasswordHasher:
    """`PasswordHashing` without argon2's cost: salted SHA-256 tagged with `version`.

    A stored hash of another version verifies and comes back upgraded, as argon2 hashes do
    when the parameters change. `verifications` counts password checks, dummy ones included, so
    a test can tell that an unknown account cost the same work as a known one.
    """

    def __init__(self, version: str = "v1") -> None:
        self.version = version
        self.verifications = 0

    async def hash(self, password: str) -> str:
        return self._hash(normalize_password(password), secrets.token_hex(8), self.version)

    async def verify_and_update(self, password: str, stored_hash: str) -> tuple[bool, str | None]:
        self.verifications += 1
        parts = stored_hash.split("$")
        if len(parts) != 4 or parts[0] != "fake":
            raise ValueError("the stored value is not a password hash")
        _, version, salt, _ = parts
        expected = self._hash(normalize_password(password), salt, version)
        if not hmac.compare_digest(expected, stored_hash):
            return False, None
        return True, (None if version == self.version else await self.hash(password))

    async def dummy_verify(self) -> None:
        self.verifications += 1

    @staticmethod
    def _hash(normalized: str, salt: str, version: str) -> str:
        digest = hashlib.sha256(f"{version}${salt}${normalized}".encode()).hexdigest()
        return f"fake${version}${salt}${digest}"


def fake_context(clock: FakeClock | None = None, **overrides: Any) -> AuthContext:
    """An AuthContext for unit tests: development keys, FakePasswordHasher, an in-memory rate
    limiter on `clock`'s time. Any field can be replaced by keyword (`rules=`, `limiter=`)."""
    clock = clock if clock is not None else FakeClock()
    signing_ring = SigningKeyRing.development(FAKE_SIGNING_KEYS_LABEL)
    fields: dict[str, Any] = {
        "clock": clock,
        "new_id": lambda: uuid.uuid4().hex,
        "new_code": random_numeric_code,
        "new_secret": random_token,
        "secrets": SecretHasher.development(context="auth.secrets"),
        "encryption": KeyRing.development("auth"),
        "passwords": FakePasswordHasher(),
        "password_policy": PasswordPolicy.default(),
        "tokens": TokenIssuer(FAKE_ISSUER, signing_ring, clock),
        "grants": GrantVerifier(StaticKeySet(signing_ring.public_jwks()), FAKE_ISSUER, clock=clock),
        "limiter": InMemoryRateLimiter(clock=clock.microseconds),
        "device_tokens": SecretHasher.development(context="auth.device_tokens"),
        "rules": AuthRules(),
    }
    unknown = set(overrides) - set(fields)
    if unknown:
        raise TypeError(f"AuthContext has no field(s) {sorted(unknown)}")
    fields.update(overrides)
    return AuthContext(**fields)
