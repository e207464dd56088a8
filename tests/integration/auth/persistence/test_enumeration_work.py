"""Signed-out RPCs do the same database work whether or not the account exists (SPEC 3: "the
same answer, in content and in time").

Timing is proved here deterministically, by its cause: every statement each path sends to the
database is recorded, reduced to its shape (verb and tables), and the sequences compared. A
path that loads the whole account, or writes an outbox row or a security event only when the
identifier matched, shows up as a different sequence, on SQLite and on PostgreSQL alike.
`make bench` measures the times themselves.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.auth.adapters import tables
from services.auth.adapters.transactions import SqlTransactions
from services.auth.domain.account import Account
from services.auth.domain.contacts import Contact, Email, Phone
from services.auth.domain.events import Actor, Origin
from services.auth.domain.otp import OtpChannel
from services.auth.domain.throttling import BackoffRule, SignInThrottle
from services.auth.service import registration, reset, self_freeze, signin
from services.auth.service.context import AuthContext, AuthRules
from services.auth.service.fakes import FakeClock, fake_context
from services.auth.service.ports import AuthUnitOfWork
from tests.integration.auth.persistence.builders import START, NewUnitOfWork, make_account, store
from walletcore.errors import Unauthenticated

Shape = tuple[str, ...]
_TABLES = re.compile(r'\b(?:FROM|JOIN|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)


def shape(statement: str) -> Shape:
    """The verb and the tables of a statement: what it costs, without its parameters."""
    verb = statement.split(None, 1)[0].upper()
    return (verb, *_TABLES.findall(statement))


class StatementLog:
    """Every statement the engine sends while `recording()` is open, as shapes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.shapes: list[Shape] = []
        self._recording = False
        event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self._recording:
            self.shapes.append(shape(statement))

    @contextmanager
    def recording(self) -> Iterator[list[Shape]]:
        self.shapes = []
        self._recording = True
        try:
            yield self.shapes
        finally:
            self._recording = False


@pytest.fixture
def statements(engine: AsyncEngine) -> StatementLog:
    return StatementLog(engine)


@pytest.fixture
def ctx(clock: FakeClock) -> AuthContext:
    return fake_context(clock)


Work = Callable[[AuthUnitOfWork], Awaitable[object]]


async def run_recorded(
    transactions: SqlTransactions, statements: StatementLog, work: Work
) -> list[Shape]:
    with statements.recording() as shapes:
        await transactions.run(work)
    return list(shapes)


async def pending_and_settled_outbox_rows(engine: AsyncEngine) -> tuple[int, int]:
    outbox = tables.outbox
    async with engine.connect() as connection:
        pending = await connection.scalar(
            sa.select(sa.func.count()).where(outbox.c.delivered_at.is_(None))
        )
        settled = await connection.scalar(
            sa.select(sa.func.count()).where(outbox.c.delivered_at.is_not(None))
        )
    return int(pending or 0), int(settled or 0)


def frozen(account: Account) -> Account:
    account.freeze_by_officer(
        officer=Actor.security_officer("officer-1"),
        reason="reported stolen",
        ticket_ref="SEC-1",
        origin=Origin(),
        now=START,
    )
    return account


ALICE_PHONE = Phone("+8613800138000")
ALICE_EMAIL = Email("Alice@example.com")
PHONE_ONLY = Phone("+8613700137000")
FROZEN_PHONE = Phone("+8613600136000")
UNKNOWN_PHONE = Phone("+8613900139000")
UNKNOWN_EMAIL = Email("nobody@example.com")


@pytest.fixture
async def accounts(new_uow: NewUnitOfWork) -> None:
    """Alice (phone and e-mail), an account with only a phone, a frozen one, and one for the
    warm-up call (a first call may pay for the connection's own set-up statements)."""
    await store(
        new_uow,
        make_account("acc-alice", phone=ALICE_PHONE.e164, email=ALICE_EMAIL.address),
        make_account("acc-phone-only", phone=PHONE_ONLY.e164, email=None),
        frozen(make_account("acc-frozen", phone=FROZEN_PHONE.e164, email="carol@example.com")),
        make_account("acc-warm-up", phone="+8613500135000", email=None),
    )


# -- starts of a code challenge ------------------------------------------------------------

StartUseCase = Callable[..., Awaitable[object]]
STARTS = {
    "reset": reset.start_credential_reset,
    "self-freeze": self_freeze.start_self_freeze,
}


def start_work(
    use_case: StartUseCase,
    ctx: AuthContext,
    origin: Origin,
    identifier: Contact,
    channel: OtpChannel,
) -> Work:
    async def work(uow: AuthUnitOfWork) -> object:
        return await use_case(uow, ctx, identifier=identifier, channel=channel, origin=origin)

    return work


@pytest.mark.parametrize("purpose", sorted(STARTS))
@pytest.mark.parametrize(
    ("identifier", "channel", "sends"),
    [
        pytest.param(ALICE_EMAIL, OtpChannel.SMS, True, id="known-by-another-contact"),
        pytest.param(UNKNOWN_PHONE, OtpChannel.SMS, False, id="unknown-phone"),
        pytest.param(UNKNOWN_EMAIL, OtpChannel.SMS, False, id="unknown-email"),
        pytest.param(PHONE_ONLY, OtpChannel.EMAIL, False, id="no-contact-of-the-channel"),
        pytest.param(FROZEN_PHONE, OtpChannel.SMS, None, id="frozen"),
    ],
)
@pytest.mark.usefixtures("accounts")
async def test_a_start_does_the_same_database_work_as_one_that_sends_a_code(
    transactions: SqlTransactions,
    statements: StatementLog,
    engine: AsyncEngine,
    ctx: AuthContext,
    origin: Origin,
    purpose: str,
    identifier: Contact,
    channel: OtpChannel,
    sends: bool | None,
) -> None:
    use_case = STARTS[purpose]
    # A frozen account is sent its self-freeze code, never a reset code (SPEC 3).
    sends = sends if sends is not None else purpose == "self-freeze"
    warm_up = start_work(use_case, ctx, origin, Phone("+8613500135000"), OtpChannel.SMS)
    await transactions.run(warm_up)
    sending = start_work(use_case, ctx, origin, ALICE_PHONE, OtpChannel.SMS)

    reference = await run_recorded(transactions, statements, sending)
    before = await pending_and_settled_outbox_rows(engine)
    observed = await run_recorded(
        transactions, statements, start_work(use_case, ctx, origin, identifier, channel)
    )
    after = await pending_and_settled_outbox_rows(engine)

    assert observed == reference
    assert ("INSERT", "outbox") in reference
    # Sent means a pending row the dispatcher delivers; otherwise a settled one it never will.
    assert after == ((before[0] + 1, before[1]) if sends else (before[0], before[1] + 1))


@pytest.mark.usefixtures("accounts")
async def test_a_registration_of_a_contact_in_use_does_the_work_of_a_fresh_one(
    transactions: SqlTransactions,
    statements: StatementLog,
    engine: AsyncEngine,
    ctx: AuthContext,
    origin: Origin,
) -> None:
    def registering(contact: Contact) -> Work:
        async def work(uow: AuthUnitOfWork) -> object:
            return await registration.start_registration(
                uow, ctx, password="correct horse battery staple", contact=contact, origin=origin
            )

        return work

    await transactions.run(registering(Email("warm-up@example.com")))
    fresh = await run_recorded(transactions, statements, registering(UNKNOWN_EMAIL))
    before = await pending_and_settled_outbox_rows(engine)
    in_use = await run_recorded(transactions, statements, registering(ALICE_EMAIL))
    after = await pending_and_settled_outbox_rows(engine)

    assert in_use == fresh
    assert after == (before[0], before[1] + 1)


# -- sign-in with a wrong password ---------------------------------------------------------

RIGHT_PASSWORD = "correct horse battery staple"
LOCK_AT_FIRST_FAILURE = SignInThrottle(
    pair_rule=BackoffRule(
        delays_from=1,
        max_delay=timedelta(minutes=1),
        lock_after=1,
        lock_duration=timedelta(hours=1),
    )
)


async def store_with_password(new_uow: NewUnitOfWork, ctx: AuthContext, *accounts: Account) -> None:
    for account in accounts:
        account.password_hash = await ctx.passwords.hash(RIGHT_PASSWORD)
    await store(new_uow, *accounts)


def signing_in(ctx: AuthContext, identifier: Contact, address: str) -> Work:
    async def work(uow: AuthUnitOfWork) -> object:
        return await signin.sign_in(
            uow, ctx, identifier=identifier, password="a wrong password", origin=Origin(address)
        )

    return work


async def refused_recorded(
    transactions: SqlTransactions, statements: StatementLog, work: Work
) -> list[Shape]:
    with statements.recording() as shapes, pytest.raises(Unauthenticated):
        await transactions.run(work)
    return list(shapes)


@pytest.mark.parametrize("locks", [False, True], ids=["counted", "locking"])
@pytest.mark.parametrize("identifier", [ALICE_EMAIL, PHONE_ONLY], ids=["two-contacts", "one"])
async def test_a_wrong_password_does_the_work_of_an_unknown_identifier(
    transactions: SqlTransactions,
    statements: StatementLog,
    engine: AsyncEngine,
    new_uow: NewUnitOfWork,
    clock: FakeClock,
    identifier: Contact,
    locks: bool,
) -> None:
    ctx = fake_context(clock)
    if locks:
        ctx = dataclasses.replace(ctx, rules=AuthRules(throttle=LOCK_AT_FIRST_FAILURE))
    await store_with_password(
        new_uow,
        ctx,
        make_account("acc-alice", phone=ALICE_PHONE.e164, email=ALICE_EMAIL.address),
        make_account("acc-phone-only", phone=PHONE_ONLY.e164, email=None),
    )
    with pytest.raises(Unauthenticated):
        await transactions.run(signing_in(ctx, Email("warm-up@example.com"), "203.0.113.1"))

    unknown = await refused_recorded(
        transactions, statements, signing_in(ctx, UNKNOWN_EMAIL, "203.0.113.2")
    )
    pending_before, _ = await pending_and_settled_outbox_rows(engine)
    known = await refused_recorded(
        transactions, statements, signing_in(ctx, identifier, "203.0.113.3")
    )
    pending_after, _ = await pending_and_settled_outbox_rows(engine)

    assert known == unknown
    assert ("INSERT", "security_events") in unknown
    # The lock notice reached each of the account's real contacts, and only those.
    contacts = 2 if identifier == ALICE_EMAIL else 1
    assert pending_after - pending_before == (contacts if locks else 0)
