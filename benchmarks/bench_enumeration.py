"""Whether a signed-out RPC answers a known identifier as fast as an unknown one (SPEC 3).

The use cases run on auth's real SQL adapters and outbox, on a SQLite file, with samples of
the two paths interleaved so drift of the machine hits both alike; each line prints the
median of either and their ratio. Rate limits are left out (a limiter that admits every
call: they cost the same on both paths, and would refuse the repeated identifiers), and so is
argon2 (a fake hasher: the real one costs the same for the dummy hash and would hide the
database work in its noise). `tests/integration/auth/persistence/test_enumeration_work.py`
proves the cause, identical statements per path, without timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path

from services.auth.adapters import tables
from services.auth.adapters.repositories import CONTACT_INDEX_CONTEXT, Protection
from services.auth.adapters.transactions import SqlTransactions
from services.auth.adapters.uow import SqlAuthUnitOfWork
from services.auth.domain.account import Account
from services.auth.domain.contacts import Contact, Email, Phone, VerifiedContact
from services.auth.domain.events import Origin
from services.auth.domain.otp import OtpChannel
from services.auth.service import reset, signin
from services.auth.service.context import AuthContext
from services.auth.service.fakes import FakeClock, fake_context
from services.auth.service.ports import AuthUnitOfWork
from walletcore.clock import utc_now
from walletcore.crypto import BlindIndex, KeyRing
from walletcore.db import create_engine, session_factory
from walletcore.errors import DomainError
from walletcore.idempotency import IdempotencyRecords
from walletcore.notify import NotificationOutbox
from walletcore.ratelimit.base import Decision, Hit
from walletcore.service_kit import request_fingerprints

WRONG_PASSWORD = "not the password"  # noqa: S105 (a wrong password, on purpose)
SAMPLES = 200
WARM_UP = 20
KNOWN_PHONE = Phone("+8613800138000")
KNOWN_EMAIL = Email("alice@example.com")
UNKNOWN_PHONE = Phone("+8613900139000")
ORIGIN = Origin("203.0.113.7")

Work = Callable[[AuthUnitOfWork], Awaitable[object]]


class _AdmitAll:
    async def check(self, hits: Sequence[Hit]) -> Decision:
        return Decision(allowed=True)

    async def close(self) -> None:
        return None


async def _sample(transactions: SqlTransactions, clock: FakeClock, work: Work) -> float:
    # A day later every time: the sign-in throttle has forgotten the earlier failures, so
    # each sample checks the password instead of being refused before it.
    clock.advance(timedelta(days=1, hours=1))
    started = time.perf_counter()
    with contextlib.suppress(DomainError):  # a refused sign-in is the answer measured
        await transactions.run(work)
    return time.perf_counter() - started


async def _compare(
    transactions: SqlTransactions, clock: FakeClock, known: Work, unknown: Work
) -> tuple[float, float]:
    for _ in range(WARM_UP):
        await _sample(transactions, clock, known)
        await _sample(transactions, clock, unknown)
    known_times, unknown_times = [], []
    for _ in range(SAMPLES):
        known_times.append(await _sample(transactions, clock, known))
        unknown_times.append(await _sample(transactions, clock, unknown))
    return statistics.median(known_times), statistics.median(unknown_times)


def _line(name: str, known: float, unknown: float) -> str:
    return (
        f"{name}: known {known * 1e3:.3f} ms, unknown {unknown * 1e3:.3f} ms, "
        f"known/unknown {known / unknown:.2f}x"
    )


def _reset(ctx: AuthContext, identifier: Contact) -> Work:
    async def work(uow: AuthUnitOfWork) -> object:
        return await reset.start_credential_reset(
            uow, ctx, identifier=identifier, channel=OtpChannel.SMS, origin=ORIGIN
        )

    return work


def _wrong_password(ctx: AuthContext, identifier: Contact) -> Work:
    async def work(uow: AuthUnitOfWork) -> object:
        return await signin.sign_in(
            uow, ctx, identifier=identifier, password=WRONG_PASSWORD, origin=ORIGIN
        )

    return work


async def _run(directory: Path) -> list[str]:
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'auth.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(tables.metadata.create_all)
    clock = FakeClock(utc_now())
    ctx = fake_context(clock, limiter=_AdmitAll())
    key_ring = KeyRing.development("bench-enumeration")
    protection = Protection(
        encryption=key_ring, contact_index=BlindIndex.development(context=CONTACT_INDEX_CONTEXT)
    )
    outbox = NotificationOutbox(tables.outbox, key_ring, clock=clock)
    sessions = session_factory(engine)
    transactions = SqlTransactions(
        lambda: SqlAuthUnitOfWork(sessions, protection=protection, outbox=outbox, clock=clock),
        IdempotencyRecords(
            tables.idempotency_records,
            fingerprints=request_fingerprints(None),
            clock=clock,
            key_ring=key_ring,
        ),
    )
    account = Account(
        id=ctx.new_id(),
        password_hash=await ctx.passwords.hash("correct horse battery staple"),
        contacts=[
            VerifiedContact(ctx.new_id(), KNOWN_PHONE, clock()),
            VerifiedContact(ctx.new_id(), KNOWN_EMAIL, clock()),
        ],
        created_at=clock(),
    )

    async def add(uow: AuthUnitOfWork) -> None:
        await uow.accounts.add(account)

    await transactions.run(add)
    try:
        reset_times = await _compare(
            transactions, clock, _reset(ctx, KNOWN_PHONE), _reset(ctx, UNKNOWN_PHONE)
        )
        sign_in_times = await _compare(
            transactions,
            clock,
            _wrong_password(ctx, KNOWN_PHONE),
            _wrong_password(ctx, UNKNOWN_PHONE),
        )
    finally:
        await engine.dispose()
    return [
        _line("StartCredentialReset by SMS", *reset_times),
        _line("SignIn, wrong password     ", *sign_in_times),
        f"(SQLite, {SAMPLES} interleaved samples per path after {WARM_UP} warm-up, medians)",
    ]


def run() -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        return asyncio.run(_run(Path(directory)))
