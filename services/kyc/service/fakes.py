"""In-memory implementations of every port in `ports`, for unit tests of the use cases.

They keep the promises the SQL adapters keep (on top of `walletcore.fakes`: copies in and out,
snapshot and rollback, request_id replay): identity digests are stored per case and a
duplicate is any other account's case sharing one; the review queue is ordered by deadline
then id, with opaque page tokens.

    fakes = KycFakes.create()
    case = await fakes.tx.run(lambda uow: submit_verification(uow, fakes.ctx, ...))
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field

from services.kyc.domain.cases import CaseState, VerificationCase
from services.kyc.domain.images import DocumentImage, ImageSide
from services.kyc.domain.reasons import page_token_invalid
from services.kyc.service.context import KycContext
from services.kyc.service.ports import IDENTITY_INDEX_CONTEXT, Cases, DocumentStore, QueuePage
from walletcore.audit import AuditTrail
from walletcore.crypto import BlindIndex
from walletcore.errors import Aborted
from walletcore.fakes import (
    AuditedStore,
    FakeAuditTrail,
    FakeClock,
    FakeRepository,
    FakeTransactions,
    FakeUnitOfWork,
)


@dataclass
class KycStore(AuditedStore):
    """Everything kyc's fakes persist. Tests read it to check what a use case committed."""

    cases: dict[str, VerificationCase] = field(default_factory=dict)
    digests: dict[str, set[str]] = field(default_factory=dict)
    images: dict[tuple[str, ImageSide], DocumentImage] = field(default_factory=dict)


class FakeKycUnitOfWork(FakeUnitOfWork[KycStore]):
    def __init__(self, store: KycStore) -> None:
        super().__init__(store)
        # Typed as the ports: a protocol's attributes are invariant.
        self.cases: Cases = FakeCases(self)
        self.documents: DocumentStore = FakeDocumentStore(self)
        self.audit: AuditTrail = FakeAuditTrail(self)


_Repository = FakeRepository[KycStore]


class FakeCases(_Repository):
    async def get(self, case_id: str, *, for_update: bool = False) -> VerificationCase | None:
        return copy.deepcopy(self._store.cases.get(case_id))

    async def latest_for_account(
        self, account_id: str, *, for_update: bool = False
    ) -> VerificationCase | None:
        own = [case for case in self._store.cases.values() if case.account_id == account_id]
        latest = max(own, key=lambda case: (case.submitted_at, case.id), default=None)
        return copy.deepcopy(latest)

    async def add(self, case: VerificationCase, identity_digests: list[str]) -> None:
        if case.id in self._store.cases:
            raise ValueError("a case with this id is already stored")
        if any(
            other.account_id == case.account_id and other.attempt == case.attempt
            for other in self._store.cases.values()
        ):
            raise Aborted("another submission of this account was stored meanwhile")
        self._store.cases[case.id] = copy.deepcopy(case)
        self._store.digests[case.id] = set(identity_digests)

    async def save_decision(self, case: VerificationCase) -> None:
        if case.id not in self._store.cases:
            raise ValueError("save of a case that was never added")
        self._store.cases[case.id] = copy.deepcopy(case)

    async def accounts_sharing_identity(self, case: VerificationCase) -> list[str]:
        own = self._store.digests.get(case.id, set())
        return sorted(
            {
                other.account_id
                for other in self._store.cases.values()
                if other.account_id != case.account_id
                and own & self._store.digests.get(other.id, set())
            }
        )

    async def review_queue(self, *, limit: int, page_token: str) -> QueuePage:
        pending = sorted(
            (c for c in self._store.cases.values() if c.state is CaseState.PENDING),
            key=lambda c: (c.review_deadline, c.id),
        )
        start = 0
        if page_token:
            ids = [c.id for c in pending]
            if page_token not in ids:
                raise page_token_invalid()
            start = ids.index(page_token) + 1
        page = pending[start : start + limit]
        more = start + limit < len(pending)
        duplicates = {c.id for c in page if await self.accounts_sharing_identity(c)}
        return QueuePage(copy.deepcopy(page), duplicates, page[-1].id if more and page else "")


class FakeDocumentStore(_Repository):
    async def put(self, case_id: str, side: ImageSide, image: DocumentImage) -> None:
        self._store.images[(case_id, side)] = image

    async def get(self, case_id: str, side: ImageSide) -> DocumentImage | None:
        return self._store.images.get((case_id, side))


@dataclass
class KycFakes:
    store: KycStore
    tx: FakeTransactions[FakeKycUnitOfWork]
    ctx: KycContext
    clock: FakeClock

    @classmethod
    def create(cls, clock: FakeClock | None = None) -> KycFakes:
        clock = clock or FakeClock()
        store = KycStore()
        ids = itertools.count(1)
        ctx = KycContext(
            clock=clock,
            new_id=lambda: f"case-{next(ids):04d}",
            identity_index=BlindIndex.development(context=IDENTITY_INDEX_CONTEXT),
        )
        return cls(store, FakeTransactions(lambda: FakeKycUnitOfWork(store)), ctx, clock)
