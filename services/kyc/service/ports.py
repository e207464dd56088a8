"""What kyc's use cases need from the outside world, as small interfaces.

The SQLAlchemy adapters (`services.kyc.adapters`) implement them for SQLite and PostgreSQL,
encrypting identity data and images with the key ring (the case id as associated data);
`services.kyc.service.fakes` implements them in memory. Every port raises walletcore.errors
only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol, Self

from services.kyc.domain.cases import VerificationCase
from services.kyc.domain.images import DocumentImage, ImageSide
from walletcore.audit import AuditTrail


@dataclass(frozen=True, slots=True)
class QueuePage:
    cases: list[VerificationCase]
    duplicates: set[str]
    """The ids of the page's cases whose identity another account also submitted."""
    next_token: str
    """Empty on the last page."""


class Cases(Protocol):
    async def get(self, case_id: str, *, for_update: bool = False) -> VerificationCase | None:
        """`for_update` takes the row lock on PostgreSQL: two decisions on one case queue."""
        ...

    async def latest_for_account(
        self, account_id: str, *, for_update: bool = False
    ) -> VerificationCase | None:
        """The account's most recent case."""
        ...

    async def add(self, case: VerificationCase, identity_digests: list[str]) -> None:
        """Stores a new case with its identity's blind-index digests (one per index key, so a
        duplicate is found across a key rotation). Raises Aborted when another case of the
        same account was added meanwhile (a concurrent second submission)."""
        ...

    async def save_decision(self, case: VerificationCase) -> None:
        """Stores the case's state and review."""
        ...

    async def accounts_sharing_identity(self, case: VerificationCase) -> list[str]:
        """Other accounts with a case whose identity shares a digest with `case`'s, sorted.
        Read from committed rows at the time of asking, so two accounts that submitted the
        same number at once both see each other once both are stored."""
        ...

    async def review_queue(self, *, limit: int, page_token: str) -> QueuePage:
        """Pending cases by review deadline (then id), earliest first. InvalidArgument
        PAGE_TOKEN_INVALID for a token this repository did not issue."""
        ...


class CaseReads(Protocol):
    async def latest_for_account(self, account_id: str) -> VerificationCase | None:
        """The account's most recent case."""
        ...


class KycReads(Protocol):
    """The reads an RPC makes without changing anything, outside any unit of work (one
    statement each on PostgreSQL: `walletcore.db.SingleStatementReads`). A `KycUnitOfWork`
    is one too, so a use case that only reads runs on either."""

    @property
    def cases(self) -> CaseReads: ...


class DocumentStore(Protocol):
    """Where images live: the database now (encrypted, the case id as associated data); an
    object store can take its place behind this port."""

    async def put(self, case_id: str, side: ImageSide, image: DocumentImage) -> None: ...

    async def get(self, case_id: str, side: ImageSide) -> DocumentImage | None: ...


class KycUnitOfWork(Protocol):
    """One transaction per RPC: `async with uow:`, then `await uow.commit()`; leaving the
    block without committing rolls everything back."""

    cases: Cases
    documents: DocumentStore
    audit: AuditTrail

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...


IDENTITY_INDEX_CONTEXT: Final = "kyc.identity"
"""The blind index's derivation context: its digests match nothing another index computes."""


class IdentityIndex(Protocol):
    """The keyed blind index of document numbers (`walletcore.crypto.BlindIndex` under kyc's
    own index key)."""

    def compute(self, value: str) -> str: ...

    def candidates(self, value: str) -> list[str]: ...
