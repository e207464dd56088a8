"""What binding's use cases need from the outside world, as small interfaces.

The SQLAlchemy adapters (`services.binding.adapters`) implement the repositories and the unit
of work for SQLite and PostgreSQL, and the local card vault; `services.binding.service.fakes`
implements every port in memory. The gRPC clients of auth and kyc (`ContactVerification`,
`KycStatus`) and the grant acceptance come with the shared client and grant mechanics in
walletcore. Every port raises walletcore.errors only: a peer that cannot be reached is
`Unavailable`, a peer's refusal keeps the peer's reason.

A full card number crosses exactly one port, `CardVault.tokenize`; no repository, table, log
line or error ever holds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Self

from services.binding.domain.cards import Card, CardNumber
from services.binding.domain.contact_changes import ContactChange, ContactKind
from services.binding.domain.holds import RefundHold, WithdrawalHold
from walletcore.audit import AuditTrail
from walletcore.tokens import VerifiedGrant


class Cards(Protocol):
    async def get(self, card_id: str, *, for_update: bool = False) -> Card | None:
        """`for_update` takes the row lock on PostgreSQL: unbinding and placing a refund hold
        both lock the card first, so they queue instead of racing."""
        ...

    async def list_for_account(self, account_id: str, *, include_unbound: bool) -> list[Card]:
        """Most recently bound first."""
        ...

    async def find_active_by_fingerprint(self, fingerprints: list[str]) -> Card | None:
        """The active card, of any account, whose fingerprint is one of `fingerprints` (the
        number's fingerprint under every key of the ring)."""
        ...

    async def add(self, card: Card) -> None:
        """Raises AlreadyExists / CARD_ALREADY_BOUND when an active card has the same
        fingerprint, at the latest on commit: the unique index is the last word."""
        ...

    async def save(self, card: Card) -> None: ...


class RefundHolds(Protocol):
    async def get(self, refund_id: str, *, for_update: bool = False) -> RefundHold | None: ...

    async def count_for_card(self, card_id: str) -> int: ...

    async def add(self, hold: RefundHold) -> None:
        """Raises Aborted when another transaction stored a hold for the same refund first
        (the refund may retry the call)."""
        ...

    async def save(self, hold: RefundHold) -> None: ...

    async def remove(self, refund_id: str) -> bool:
        """False when the refund held nothing."""
        ...


class ContactChanges(Protocol):
    async def get(self, change_id: str, *, for_update: bool = False) -> ContactChange | None: ...

    async def add(self, change: ContactChange) -> None: ...

    async def save(self, change: ContactChange) -> None: ...


class WithdrawalHolds(Protocol):
    async def get(self, account_id: str) -> WithdrawalHold | None: ...

    async def restart(self, account_id: str, changed_at: datetime) -> WithdrawalHold:
        """Starts or restarts the account's window from `changed_at` in one atomic statement
        (two changes completing at once both count; an older one never shortens it) and
        returns the hold as stored."""
        ...


class GrantAcceptance(Protocol):
    """Step-up grants from auth, accepted once, in the unit of work's transaction."""

    async def accept(
        self, token: str, *, account_id: str, purpose: str, object_id: str
    ) -> VerifiedGrant:
        """The grant, if it allows exactly this action, recorded as used in this transaction
        (a rolled-back action leaves it usable). PERMISSION_DENIED with GRANT_INVALID (bad
        signature, other account, purpose or object), GRANT_EXPIRED or GRANT_ALREADY_USED."""
        ...


class CardReads(Protocol):
    async def list_for_account(self, account_id: str, *, include_unbound: bool) -> list[Card]:
        """Most recently bound first."""
        ...


class BindingReads(Protocol):
    """The reads an RPC makes without changing anything, outside any unit of work (one
    statement each on PostgreSQL: `walletcore.db.SingleStatementReads`). A
    `BindingUnitOfWork` is one too, so a use case that only reads runs on either."""

    @property
    def cards(self) -> CardReads: ...


class BindingUnitOfWork(Protocol):
    """One transaction per RPC: `async with uow:`, then `await uow.commit()`; leaving the
    block without committing rolls everything back."""

    cards: Cards
    refund_holds: RefundHolds
    contact_changes: ContactChanges
    withdrawal_holds: WithdrawalHolds
    grants: GrantAcceptance
    audit: AuditTrail

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...


class CardVault(Protocol):
    """Where card numbers live: a tokenisation provider in production, the local encrypted
    vault otherwise. Binding stores only the token it returns."""

    async def tokenize(self, number: CardNumber) -> str:
        """A token for the number (opaque, at most 128 characters). The vault commits on its
        own: a token whose card is then not bound stays unused, as with a real provider."""
        ...


class Fingerprints(Protocol):
    """Keyed fingerprints of card numbers (`walletcore.crypto.BlindIndex` under binding's
    own fingerprint key)."""

    def compute(self, value: str) -> str: ...

    def candidates(self, value: str) -> list[str]: ...


class KycStatus(Protocol):
    """Kyc's internal `KycStatusService`."""

    async def match_verified_name(self, account_id: str, name: str) -> bool:
        """FAILED_PRECONDITION / KYC_NOT_APPROVED when there is no approved name to compare."""
        ...

    async def is_approved(self, account_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class NewContact:
    """The new phone (E.164) or email, already normalised as auth normalises it, which is
    also how auth wrote it into the grant's object."""

    kind: ContactKind
    value: str

    def __repr__(self) -> str:
        # A contact is personal data: never in a log line through a repr.
        return f"NewContact(kind={self.kind.value})"


@dataclass(frozen=True, slots=True)
class OperatorAssistance:
    operator_id: str
    reason: str
    ticket_ref: str


@dataclass(frozen=True, slots=True)
class VerificationStarted:
    verification_id: str
    masked_destination: str
    expires_at: datetime


class ContactVerification(Protocol):
    """Auth's internal `StartContactVerification` / `CompleteContactChange`. Auth's refusals
    pass through with auth's reasons (CONTACT_IN_USE, CONTACT_UNCHANGED, ACCOUNT_FROZEN,
    ACCOUNT_NOT_FOUND, CODE_INVALID, CODE_EXPIRED, TOO_MANY_ATTEMPTS, VERIFICATION_NOT_FOUND,
    the GRANT_* errors)."""

    async def start(
        self,
        *,
        request_id: str,
        account_id: str,
        new_contact: NewContact,
        grant: str | None = None,
        assistance: OperatorAssistance | None = None,
    ) -> VerificationStarted:
        """Exactly one of `grant` and `assistance`."""
        ...

    async def complete(self, *, request_id: str, verification_id: str, code: str) -> datetime:
        """When the change took effect."""
        ...
