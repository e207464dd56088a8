"""In-memory implementations of every port in `ports`, for unit tests of the use cases.

They keep the promises the real adapters keep (on top of `walletcore.fakes`: copies in and
out, snapshot and rollback, commit-on-`CommittedRefusal`, request_id replay):

- One active card per fingerprint: `Cards.add` raises AlreadyExists / CARD_ALREADY_BOUND, as
  the partial unique index does.
- A grant is accepted once, for its account, purpose and object, until it expires.
- `FakeContactVerification` behaves as auth's internal RPCs do (a contact belongs to one
  account, five wrong codes end a verification, replies are idempotent per request_id) and,
  like the remote service it stands for, is not rolled back with binding's transaction.
- The peers (`FakeKyc`, `FakeContactVerification`, `FakeCardVault`) can be made unreachable
  (`available = False`): they then raise Unavailable, as the gRPC clients do.

    fakes = BindingFakes.create()
    card = await fakes.tx.run(lambda uow: bind_card(uow, fakes.ctx, ...))
    token = fakes.store.issue_grant("acc-1", "UNBIND_CARD", card.id, expires_at)
"""

from __future__ import annotations

import copy
import hmac
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from services.binding.domain.cards import Card, CardNumber, CardStatus
from services.binding.domain.contact_changes import ContactChange, ContactKind
from services.binding.domain.holds import RefundHold, WithdrawalHold
from services.binding.domain.reasons import Reason, card_already_bound, kyc_not_approved
from services.binding.service.context import FINGERPRINT_CONTEXT, BindingContext
from services.binding.service.ports import (
    Cards,
    ContactChanges,
    GrantAcceptance,
    NewContact,
    OperatorAssistance,
    RefundHolds,
    VerificationStarted,
    WithdrawalHolds,
)
from walletcore.audit import AuditTrail
from walletcore.clock import Clock
from walletcore.crypto import BlindIndex
from walletcore.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from walletcore.fakes import (
    FakeAuditTrail,
    FakeClock,
    FakeGrantAcceptance,
    FakeRepository,
    FakeTransactions,
    FakeUnitOfWork,
    GrantStore,
)

CODE_LIFETIME: Final = timedelta(minutes=5)
MAX_CODE_ATTEMPTS: Final = 5


@dataclass
class BindingStore(GrantStore):
    """Everything binding's fakes persist. Tests read it to check what a use case committed."""

    cards: dict[str, Card] = field(default_factory=dict)
    refund_holds: dict[str, RefundHold] = field(default_factory=dict)
    contact_changes: dict[str, ContactChange] = field(default_factory=dict)
    withdrawal_holds: dict[str, WithdrawalHold] = field(default_factory=dict)


class FakeBindingUnitOfWork(FakeUnitOfWork[BindingStore]):
    def __init__(self, store: BindingStore, clock: Clock) -> None:
        super().__init__(store)
        # Typed as the ports: a protocol's attributes are invariant.
        self.cards: Cards = FakeCards(self)
        self.refund_holds: RefundHolds = FakeRefundHolds(self)
        self.contact_changes: ContactChanges = FakeContactChanges(self)
        self.withdrawal_holds: WithdrawalHolds = FakeWithdrawalHolds(self)
        self.grants: GrantAcceptance = FakeGrantAcceptance(self, clock)
        self.audit: AuditTrail = FakeAuditTrail(self)


_Repository = FakeRepository[BindingStore]


class FakeCards(_Repository):
    async def get(self, card_id: str, *, for_update: bool = False) -> Card | None:
        return copy.deepcopy(self._store.cards.get(card_id))

    async def list_for_account(self, account_id: str, *, include_unbound: bool) -> list[Card]:
        own = [
            card
            for card in self._store.cards.values()
            if card.account_id == account_id and (include_unbound or card.is_active)
        ]
        return copy.deepcopy(sorted(own, key=lambda card: card.bound_at, reverse=True))

    async def find_active_by_fingerprint(self, fingerprints: list[str]) -> Card | None:
        for card in self._store.cards.values():
            if card.is_active and card.fingerprint in fingerprints:
                return copy.deepcopy(card)
        return None

    async def add(self, card: Card) -> None:
        if card.id in self._store.cards:
            raise ValueError("a card with this id is already stored")
        self._check_fingerprint_free(card)
        self._store.cards[card.id] = copy.deepcopy(card)

    async def save(self, card: Card) -> None:
        if card.id not in self._store.cards:
            raise ValueError("save of a card that was never added")
        self._check_fingerprint_free(card)
        self._store.cards[card.id] = copy.deepcopy(card)

    def _check_fingerprint_free(self, card: Card) -> None:
        if card.status is not CardStatus.ACTIVE:
            return
        for other in self._store.cards.values():
            if other.id != card.id and other.is_active and other.fingerprint == card.fingerprint:
                raise card_already_bound()


class FakeRefundHolds(_Repository):
    async def get(self, refund_id: str, *, for_update: bool = False) -> RefundHold | None:
        return copy.deepcopy(self._store.refund_holds.get(refund_id))

    async def count_for_card(self, card_id: str) -> int:
        return sum(hold.card_id == card_id for hold in self._store.refund_holds.values())

    async def add(self, hold: RefundHold) -> None:
        if hold.refund_id in self._store.refund_holds:
            raise Aborted("another hold for this refund was stored meanwhile")
        self._store.refund_holds[hold.refund_id] = copy.deepcopy(hold)

    async def save(self, hold: RefundHold) -> None:
        if hold.refund_id not in self._store.refund_holds:
            raise ValueError("save of a hold that was never added")
        self._store.refund_holds[hold.refund_id] = copy.deepcopy(hold)

    async def remove(self, refund_id: str) -> bool:
        return self._store.refund_holds.pop(refund_id, None) is not None


class FakeContactChanges(_Repository):
    async def get(self, change_id: str, *, for_update: bool = False) -> ContactChange | None:
        return copy.deepcopy(self._store.contact_changes.get(change_id))

    async def add(self, change: ContactChange) -> None:
        if change.id in self._store.contact_changes:
            raise ValueError("a change with this id is already stored")
        self._store.contact_changes[change.id] = copy.deepcopy(change)

    async def save(self, change: ContactChange) -> None:
        if change.id not in self._store.contact_changes:
            raise ValueError("save of a change that was never added")
        self._store.contact_changes[change.id] = copy.deepcopy(change)


class FakeWithdrawalHolds(_Repository):
    async def get(self, account_id: str) -> WithdrawalHold | None:
        return copy.deepcopy(self._store.withdrawal_holds.get(account_id))

    async def restart(self, account_id: str, changed_at: datetime) -> WithdrawalHold:
        hold = self._store.withdrawal_holds.setdefault(
            account_id, WithdrawalHold(account_id, changed_at)
        )
        hold.restart(changed_at)
        return copy.deepcopy(hold)


# -- the peers ---------------------------------------------------------------------------------


class _Peer:
    available = True

    def _require_available(self) -> None:
        if not self.available:
            raise Unavailable(f"{type(self).__name__} cannot be reached")


class FakeKyc(_Peer):
    """Kyc's answers: `approve(account_id, name)` gives an account an approved legal name,
    compared case- and space-insensitively (kyc also NFKC-normalises)."""

    def __init__(self) -> None:
        self.approved_names: dict[str, str] = {}
        self.calls = 0

    def approve(self, account_id: str, name: str) -> None:
        self.approved_names[account_id] = name

    async def match_verified_name(self, account_id: str, name: str) -> bool:
        self.calls += 1
        self._require_available()
        approved = self.approved_names.get(account_id)
        if approved is None:
            raise kyc_not_approved()
        return _name_key(approved) == _name_key(name)

    async def is_approved(self, account_id: str) -> bool:
        self.calls += 1
        self._require_available()
        return account_id in self.approved_names


def _name_key(name: str) -> str:
    return " ".join(name.casefold().split())


@dataclass
class _Verification:
    account_id: str
    contact: NewContact
    code: str
    expires_at: datetime
    wrong_codes: int = 0
    done: bool = False


class FakeContactVerification(_Peer):
    """Auth's StartContactVerification / CompleteContactChange over its own contact book
    (`contacts[(account_id, kind)] = value`). Codes are sequential six-digit numbers, read
    with `last_code(value)`; `frozen` accounts are refused."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.contacts: dict[tuple[str, ContactKind], str] = {}
        self.frozen: set[str] = set()
        self.sent_codes: list[tuple[str, str]] = []
        self.requests: list[tuple[str, str | None, OperatorAssistance | None]] = []
        """(request_id, grant, assistance) of every start, replays included."""
        self._verifications: dict[str, _Verification] = {}
        self._started: dict[str, VerificationStarted] = {}
        self._completed: dict[str, datetime] = {}
        self._codes = itertools.count(314159)

    def last_code(self, to: str) -> str:
        codes = [code for value, code in self.sent_codes if value == to]
        if not codes:
            raise AssertionError("no code was sent to this destination")
        return codes[-1]

    async def start(
        self,
        *,
        request_id: str,
        account_id: str,
        new_contact: NewContact,
        grant: str | None = None,
        assistance: OperatorAssistance | None = None,
    ) -> VerificationStarted:
        self._require_available()
        if (grant is None) == (assistance is None):
            raise ValueError("exactly one of grant and assistance authorises a change")
        self.requests.append((request_id, grant, assistance))
        if request_id in self._started:
            return self._started[request_id]
        self._require_active(account_id)
        if self.contacts.get((account_id, new_contact.kind)) == new_contact.value:
            raise FailedPrecondition(
                "the account already has this contact", reason=Reason.CONTACT_UNCHANGED
            )
        self._require_free(new_contact, account_id)
        code = f"{next(self._codes) % 1_000_000:06d}"
        verification_id = uuid.uuid4().hex
        expires_at = self._clock() + CODE_LIFETIME
        self._verifications[verification_id] = _Verification(
            account_id, new_contact, code, expires_at
        )
        self.sent_codes.append((new_contact.value, code))
        started = VerificationStarted(verification_id, _masked(new_contact), expires_at)
        self._started[request_id] = started
        return started

    async def complete(self, *, request_id: str, verification_id: str, code: str) -> datetime:
        self._require_available()
        if request_id in self._completed:
            return self._completed[request_id]
        verification = self._verifications.get(verification_id)
        if verification is None or verification.done:
            raise NotFound("no verification has this id", reason="VERIFICATION_NOT_FOUND")
        self._require_active(verification.account_id)
        if self._clock() >= verification.expires_at:
            raise FailedPrecondition("the code is no longer valid", reason=Reason.CODE_EXPIRED)
        if verification.wrong_codes >= MAX_CODE_ATTEMPTS:
            raise FailedPrecondition("too many wrong codes", reason=Reason.TOO_MANY_ATTEMPTS)
        if not hmac.compare_digest(code.encode(), verification.code.encode()):
            verification.wrong_codes += 1
            if verification.wrong_codes >= MAX_CODE_ATTEMPTS:
                raise FailedPrecondition("too many wrong codes", reason=Reason.TOO_MANY_ATTEMPTS)
            raise InvalidArgument(
                [FieldViolation("code", "the code is not correct")],
                "the code is not correct",
                reason=Reason.CODE_INVALID,
            )
        self._require_free(verification.contact, verification.account_id)
        verification.done = True
        key = (verification.account_id, verification.contact.kind)
        self.contacts[key] = verification.contact.value
        changed_at = self._clock()
        self._completed[request_id] = changed_at
        return changed_at

    def _require_active(self, account_id: str) -> None:
        if account_id in self.frozen:
            raise FailedPrecondition("the account is frozen", reason="ACCOUNT_FROZEN")

    def _require_free(self, contact: NewContact, account_id: str) -> None:
        for (owner, kind), value in self.contacts.items():
            if owner != account_id and kind is contact.kind and value == contact.value:
                raise AlreadyExists(
                    "this contact already belongs to an account", reason=Reason.CONTACT_IN_USE
                )


def _masked(contact: NewContact) -> str:
    return f"{contact.value[:2]}***{contact.value[-2:]}"


class FakeCardVault(_Peer):
    """Keeps numbers in memory by token (`numbers`), so a test can check what reached it."""

    def __init__(self) -> None:
        self.numbers: dict[str, str] = {}

    async def tokenize(self, number: CardNumber) -> str:
        self._require_available()
        token = f"tok_{uuid.uuid4().hex}"
        self.numbers[token] = number.digits
        return token


# -- everything together -----------------------------------------------------------------------


@dataclass
class BindingFakes:
    """A store, its transactions, the fake peers and a context on one FakeClock."""

    clock: FakeClock
    store: BindingStore
    tx: FakeTransactions[FakeBindingUnitOfWork]
    kyc: FakeKyc
    contacts: FakeContactVerification
    vault: FakeCardVault
    ctx: BindingContext

    @classmethod
    def create(cls, clock: FakeClock | None = None) -> BindingFakes:
        clock = clock if clock is not None else FakeClock()
        store = BindingStore()
        kyc, contacts, vault = FakeKyc(), FakeContactVerification(clock), FakeCardVault()
        ctx = BindingContext(
            clock=clock,
            new_id=lambda: uuid.uuid4().hex,
            fingerprints=BlindIndex.development(context=FINGERPRINT_CONTEXT),
            vault=vault,
            kyc=kyc,
            contacts=contacts,
        )
        tx = FakeTransactions(lambda: FakeBindingUnitOfWork(store, clock))
        return cls(clock, store, tx, kyc, contacts, vault, ctx)
