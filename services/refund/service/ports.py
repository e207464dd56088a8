"""What refund's use cases need from the outside world, as small interfaces.

The SQLAlchemy adapters implement the repositories and the unit of work on SQLite and
PostgreSQL; `services.refund.service.fakes` implements every port in memory. Every port raises
walletcore.errors only: a peer that cannot be reached is `Unavailable`, a peer's refusal keeps
the peer's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, Self

from services.refund.domain.money import Money
from services.refund.domain.payments import CapturedPayment
from services.refund.domain.refunds import Refund, RefundState
from walletcore.audit import AuditTrail
from walletcore.tokens import VerifiedGrant


@dataclass(frozen=True, slots=True)
class Page:
    """Keyset paging: `after` is the position the previous page ended at (opaque to clients
    once the api encodes it), `size` how many to return."""

    size: int
    after: tuple[datetime, str] | None = None


class Payments(Protocol):
    async def get(self, payment_id: str, *, for_update: bool = False) -> CapturedPayment | None:
        """`for_update` takes the payment's row lock (PostgreSQL): every change of what counts
        against a payment locks it first, so concurrent refunds queue on it."""
        ...

    async def add_if_absent(self, payment: CapturedPayment) -> CapturedPayment:
        """Stores `payment` unless its id is taken, and returns what is stored under the id
        (a concurrent report of the same id waits and then reads the first)."""
        ...

    async def save_reserved(self, payment: CapturedPayment) -> None:
        """Writes the reserved total; the database refuses one above the captured amount."""
        ...

    async def list_for_account(self, account_id: str, page: Page) -> list[CapturedPayment]:
        """Newest capture first."""
        ...


class Refunds(Protocol):
    async def get(self, refund_id: str, *, for_update: bool = False) -> Refund | None: ...

    async def find_by_attempt(self, attempt_id: str) -> Refund | None: ...

    async def add(self, refund: Refund) -> None: ...

    async def save(self, refund: Refund) -> None: ...

    async def list_for_account(
        self, account_id: str, payment_id: str | None, page: Page
    ) -> list[Refund]:
        """Newest request first."""
        ...

    async def queue(self, states: Sequence[RefundState], page: Page) -> list[Refund]:
        """Refunds in `states`, longest waiting first (`waiting_since`, then id)."""
        ...

    async def ready_for_payout(self, limit: int) -> list[str]:
        """Ids of refunds the payout worker starts: APPROVED, or PROCESSING without an
        attempt in the current round."""
        ...

    async def with_pending_attempts(self, started_before: datetime, limit: int) -> list[str]:
        """Ids of refunds with a PENDING attempt recorded before `started_before`."""
        ...

    async def holding(self, limit: int) -> list[str]:
        """Ids of ended (or failed) refunds whose instrument binding still holds."""
        ...

    async def count_overdue(self, now: datetime) -> int: ...


class GatewayCursors(Protocol):
    async def get(self, name: str) -> str: ...

    async def set(self, name: str, value: str) -> None: ...


class GrantAcceptance(Protocol):
    """Step-up grants from auth, accepted once, in the unit of work's transaction."""

    async def accept(
        self, token: str, *, account_id: str, purpose: str, object_id: str
    ) -> VerifiedGrant: ...


class RefundReads(Protocol):
    async def list_for_account(
        self, account_id: str, payment_id: str | None, page: Page
    ) -> list[Refund]:
        """Newest request first."""
        ...


class Reads(Protocol):
    """The reads an RPC makes without changing anything, outside any unit of work (one
    statement each on PostgreSQL: `walletcore.db.SingleStatementReads`). A
    `RefundUnitOfWork` is one too, so a use case that only reads runs on either."""

    @property
    def refunds(self) -> RefundReads: ...


class RefundUnitOfWork(Protocol):
    payments: Payments
    refunds: Refunds
    cursors: GatewayCursors
    grants: GrantAcceptance
    audit: AuditTrail

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...


class InstrumentHolds(Protocol):
    """Binding's `BindingQueryService`, the instruments refunds are paid to."""

    async def is_usable(self, *, account_id: str, instrument_id: str) -> bool:
        """Whether the account's instrument can take a refund; NOT_FOUND /
        INSTRUMENT_NOT_FOUND for an unknown instrument or another account's."""
        ...

    async def place(
        self, *, request_id: str, account_id: str, instrument_id: str, refund_id: str
    ) -> None:
        """NOT_FOUND / INSTRUMENT_NOT_FOUND, FAILED_PRECONDITION / INSTRUMENT_UNAVAILABLE."""
        ...

    async def release(self, *, request_id: str, refund_id: str) -> None: ...


class GatewayStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"
    INSTRUMENT_UNAVAILABLE = "INSTRUMENT_UNAVAILABLE"
    ERROR = "ERROR"
    """The gateway failed to process it; nothing was paid, another attempt may succeed."""
    PENDING = "PENDING"
    """Received and still being processed."""
    UNKNOWN = "UNKNOWN"
    """The gateway never received a payout under this key."""


@dataclass(frozen=True, slots=True)
class GatewayOutcome:
    status: GatewayStatus
    reference: str = ""
    code: str = ""


@dataclass(frozen=True, slots=True)
class Reversal:
    """A payout the gateway confirmed and later reports reversed."""

    idempotency_key: str
    code: str


class PayoutGateway(Protocol):
    """Where the money is sent. A call that times out raises `DeadlineExceeded` and one that
    cannot connect `Unavailable`: in both cases the outcome is unknown and the attempt stays
    PENDING for the sweep."""

    async def pay(
        self, *, idempotency_key: str, instrument_id: str, amount: Money
    ) -> GatewayOutcome:
        """Pays once per key: a repeated key answers the first payout's outcome."""
        ...

    async def lookup(self, idempotency_key: str) -> GatewayOutcome: ...

    async def reversals(self, after: str) -> tuple[list[Reversal], str]:
        """Reversals reported after the cursor `after` ("" for the start), and the cursor to
        pass next time."""
        ...
