"""Builders shared by the unit tests of reset, TOTP, step-up and self-freeze: accounts with a
known password, sessions, and TOTP enabled through the use cases themselves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pyotp

from services.auth.domain.account import Account
from services.auth.domain.contacts import Email, Phone, VerifiedContact
from services.auth.domain.events import Actor, Origin
from services.auth.domain.sessions import Session
from services.auth.service import totp
from services.auth.service.context import AuthContext, publish
from services.auth.service.fakes import FakeClock, FakeTransactions
from services.auth.service.ports import AuthUnitOfWork
from walletcore.errors import DomainError

PHONE = Phone("+8613800138000")
EMAIL = Email("alice@example.com")
PASSWORD = "correct horse battery staple"
ORIGIN = Origin(client_address="203.0.113.9")
TOTP_STEP = timedelta(seconds=30)


async def refusal(
    tx: FakeTransactions, work: Callable[[AuthUnitOfWork], Awaitable[object]]
) -> DomainError:
    """The DomainError the use case refused with; fails the test when it succeeded."""
    try:
        await tx.run(work)
    except DomainError as error:
        return error
    raise AssertionError("the use case succeeded")


async def add_account(
    tx: FakeTransactions,
    ctx: AuthContext,
    *contacts: Phone | Email,
    account_id: str = "acc-1",
) -> Account:
    """An account with PASSWORD and `contacts` (phone and email when none are given)."""
    now = ctx.clock()
    verified = [
        VerifiedContact(f"{account_id}-contact-{index}", contact, now)
        for index, contact in enumerate(contacts or (PHONE, EMAIL))
    ]
    account = Account(
        id=account_id,
        password_hash=await ctx.passwords.hash(PASSWORD),
        contacts=verified,
        created_at=now,
    )

    async def work(uow: AuthUnitOfWork) -> None:
        await uow.accounts.add(account)

    await tx.run(work)
    return account


async def add_session(
    tx: FakeTransactions, ctx: AuthContext, account_id: str, session_id: str = "session-1"
) -> None:
    session, token = Session.start(
        id=session_id,
        account_id=account_id,
        origin=ORIGIN,
        first_token_id=f"{session_id}-token",
        first_token="refresh-secret",
        hasher=ctx.secrets,
        now=ctx.clock(),
    )

    async def work(uow: AuthUnitOfWork) -> None:
        await uow.sessions.add(session, token)

    await tx.run(work)


@dataclass(frozen=True, slots=True)
class EnabledTotp:
    secret: str
    recovery_codes: list[str]

    def code_now(self, clock: FakeClock) -> str:
        """The authenticator app's code, computed by pyotp alone from the secret."""
        return str(pyotp.TOTP(self.secret).at(clock()))


async def enable_totp(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, account_id: str = "acc-1"
) -> EnabledTotp:
    """Enrols and confirms TOTP through the use cases, then moves the clock one step on so the
    test's next code is a fresh one (a step is accepted once)."""
    started = await tx.run(lambda uow: totp.start_totp_enrollment(uow, ctx, account_id=account_id))
    recovery_codes = await tx.run(
        lambda uow: totp.confirm_totp_enrollment(
            uow,
            ctx,
            account_id=account_id,
            enrollment_id=started.enrollment_id,
            code=pyotp.TOTP(started.secret).at(clock()),
            origin=ORIGIN,
        )
    )
    clock.advance(TOTP_STEP)
    return EnabledTotp(started.secret, recovery_codes)


async def freeze_by_officer(
    tx: FakeTransactions, ctx: AuthContext, account_id: str = "acc-1"
) -> None:
    async def work(uow: AuthUnitOfWork) -> None:
        account = await uow.accounts.get(account_id)
        assert account is not None
        events = account.freeze_by_officer(
            officer=Actor.security_officer("officer-1"),
            reason="reported stolen",
            ticket_ref="INC-1",
            origin=ORIGIN,
            now=ctx.clock(),
        )
        await uow.accounts.save(account)
        await publish(uow, events)

    await tx.run(work)
