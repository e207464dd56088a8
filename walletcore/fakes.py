"""In-memory building blocks for a service's unit-of-work fakes (its `service/fakes.py`).

They keep the promises a database keeps, so a use case that passes on the fakes behaves the
same on SQL:

- `SnapshotStore`: a dataclass of dicts, lists and sets that a unit of work snapshots on entry
  and restores on rollback; repositories hand out and store deep copies, so a change a use
  case forgets to save is lost.
- `FakeUnitOfWork`: `async with` opens it, `commit()` keeps what was written, leaving without
  committing restores the snapshot; repositories call `require_open()`.
- `FakeRepository`: the base of a fake repository, over its unit of work's store.
- `FakeTransactions`: the `walletcore.transactions.Transactions` port over fresh units of
  work: commit on return, commit-then-raise on `CommittedRefusal`, roll back otherwise, and
  request_id replay from `store.idempotency_records` (rolled back with everything else).
- `AuditedStore`, `FakeAuditTrail`: the audit records a use case appended, as tests read them.
- `GrantStore`, `FakeGrantAcceptance`: step-up grants as auth would issue them, accepted once
  each, for their account, purpose and object, until they expire.
- `FakeClock`: a clock tests move by hand.
"""

from __future__ import annotations

import copy
import dataclasses
import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Generic, Self, TypeVar

from walletcore.audit import AuditRecord
from walletcore.clock import Clock
from walletcore.errors import FieldViolation, InvalidArgument, PermissionDenied
from walletcore.idempotency import KEY_REUSED_REASON, REQUEST_ID_FIELD, IdempotencyKey
from walletcore.tokens import VerifiedGrant
from walletcore.transactions import run_in

FAKE_START: Final = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

_T = TypeVar("_T")


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


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    body_digest: str
    response: bytes


@dataclass
class SnapshotStore:
    """Base of a fake store: subclasses add dict, list or set fields."""

    idempotency_records: dict[tuple[str, str, str], IdempotencyRecord] = field(default_factory=dict)

    def snapshot(self) -> Self:
        return copy.deepcopy(self)

    def restore(self, snapshot: Self) -> None:
        """Puts the contents of `snapshot` back, keeping this object (tests hold it)."""
        for store_field in dataclasses.fields(self):
            current = getattr(self, store_field.name)
            saved = getattr(snapshot, store_field.name)
            if isinstance(current, list):
                current[:] = saved
            else:
                current.clear()
                current.update(saved)


_Store = TypeVar("_Store", bound=SnapshotStore)


class FakeUnitOfWork(Generic[_Store]):
    def __init__(self, store: _Store) -> None:
        self.store = store
        self._snapshot: _Store | None = None

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


class FakeRepository(Generic[_Store]):
    """Reads and writes `uow.store`, only while the unit of work is open."""

    def __init__(self, uow: FakeUnitOfWork[_Store]) -> None:
        self._uow = uow

    @property
    def _store(self) -> _Store:
        self._uow.require_open()
        return self._uow.store


_Uow = TypeVar("_Uow", bound=FakeUnitOfWork[Any])


class FakeTransactions(Generic[_Uow]):
    """`runs` counts the units of work that ran `work` (a replayed request_id runs none)."""

    def __init__(self, new_unit_of_work: Callable[[], _Uow]) -> None:
        self._new_unit_of_work = new_unit_of_work
        self.runs = 0

    def unit_of_work(self) -> _Uow:
        return self._new_unit_of_work()

    async def run(self, work: Callable[[_Uow], Awaitable[_T]]) -> _T:
        async with self.unit_of_work() as uow:
            self.runs += 1
            return await run_in(uow, work)

    async def run_idempotent(
        self, key: IdempotencyKey, work: Callable[[_Uow], Awaitable[bytes]]
    ) -> bytes:
        record_key = (key.scope, key.owner, key.request_id)
        records: dict[tuple[str, str, str], IdempotencyRecord] = (
            self.unit_of_work().store.idempotency_records
        )
        stored = records.get(record_key)
        if stored is not None:
            if not hmac.compare_digest(stored.body_digest, key.body_digest):
                raise InvalidArgument(
                    [FieldViolation(REQUEST_ID_FIELD, "was already used for another request")],
                    "this request_id was already used for a different request",
                    reason=KEY_REUSED_REASON,
                )
            return stored.response

        async def recorded(uow: _Uow) -> bytes:
            response = await work(uow)
            uow.store.idempotency_records[record_key] = IdempotencyRecord(key.body_digest, response)
            return response

        return await self.run(recorded)


@dataclass
class AuditedStore(SnapshotStore):
    """A store whose units of work append audit records (`FakeAuditTrail`)."""

    audit_records: list[tuple[AuditRecord, datetime]] = field(default_factory=list)


@dataclass
class GrantStore(AuditedStore):
    """A store whose units of work accept step-up grants (`FakeGrantAcceptance`)."""

    issued_grants: dict[str, VerifiedGrant] = field(default_factory=dict)
    used_grants: dict[str, datetime] = field(default_factory=dict)

    def issue_grant(
        self, account_id: str, purpose: str, object_id: str, expires_at: datetime
    ) -> str:
        """A grant token as auth would sign it, for the fake grant acceptance."""
        jti = uuid.uuid4().hex
        token = f"grant-{jti}"
        self.issued_grants[token] = VerifiedGrant(jti, account_id, purpose, object_id, expires_at)
        return token


_Audited = TypeVar("_Audited", bound=AuditedStore)
_Granting = TypeVar("_Granting", bound=GrantStore)


class FakeAuditTrail(FakeRepository[_Audited]):
    """The `walletcore.audit.AuditTrail` port over `store.audit_records`."""

    async def append(self, record: AuditRecord, now: datetime) -> None:
        self._store.audit_records.append((copy.deepcopy(record), now))


class FakeGrantAcceptance(FakeRepository[_Granting]):
    """Accepts the grants `GrantStore.issue_grant` issued, once each."""

    def __init__(self, uow: FakeUnitOfWork[_Granting], clock: Clock) -> None:
        super().__init__(uow)
        self._clock = clock

    async def accept(
        self, token: str, *, account_id: str, purpose: str, object_id: str
    ) -> VerifiedGrant:
        store = self._store
        grant = store.issued_grants.get(token)
        if grant is None or (grant.account_id, grant.purpose, grant.object_id) != (
            account_id,
            purpose,
            object_id,
        ):
            raise PermissionDenied(
                "the step-up grant is not for this action", reason="GRANT_INVALID"
            )
        if self._clock() >= grant.expires_at:
            raise PermissionDenied("the step-up grant has expired", reason="GRANT_EXPIRED")
        if grant.jti in store.used_grants:
            raise PermissionDenied(
                "the step-up grant was already used", reason="GRANT_ALREADY_USED"
            )
        store.used_grants[grant.jti] = grant.expires_at
        return grant
