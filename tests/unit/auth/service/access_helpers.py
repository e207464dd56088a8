"""Builders shared by the unit tests of codes, registration, sign-in, sessions and contacts:
accounts registered through the use cases, and TOTP switched on directly in the domain (so
these tests do not depend on the TOTP use cases)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pyotp

from services.auth.domain.contacts import Contact, Email, Phone
from services.auth.domain.events import Actor, Device, Origin
from services.auth.domain.ledger import CodeFailureLedger, purpose_ledger_subject
from services.auth.domain.proofs import ChallengePurpose
from services.auth.domain.recovery import RecoveryCodeSet
from services.auth.domain.totp import generate_totp_secret
from services.auth.service import registration
from services.auth.service.codes import encrypt_totp_secret
from services.auth.service.context import AuthContext, publish
from services.auth.service.fakes import FakeClock, FakeStore, FakeTransactions
from services.auth.service.ports import AuthUnitOfWork
from services.auth.service.sessions import TokenPair
from walletcore.errors import DomainError

PHONE = Phone("+8613800138000")
OTHER_PHONE = Phone("+8613900139000")
EMAIL = Email("alice@example.com")
PASSWORD = "correct horse battery staple"
ORIGIN = Origin(client_address="203.0.113.9", device=Device("phone-1", "Alice's phone"))
ATTACKER = Origin(client_address="198.51.100.66")
TOTP_STEP = timedelta(seconds=30)
CODE_RESEND_WAIT = timedelta(seconds=61)


async def refusal(
    tx: FakeTransactions, work: Callable[[AuthUnitOfWork], Awaitable[object]]
) -> DomainError:
    """The DomainError the use case refused with; fails the test when it succeeded."""
    try:
        await tx.run(work)
    except DomainError as error:
        return error
    raise AssertionError("the use case succeeded")


@dataclass(frozen=True, slots=True)
class Registered:
    account_id: str
    tokens: TokenPair


async def register(
    tx: FakeTransactions,
    ctx: AuthContext,
    contact: Contact = PHONE,
    *,
    origin: Origin = ORIGIN,
) -> Registered:
    """An account with PASSWORD and `contact`, registered through the use cases (with the code
    the notifier captured), signed in on its first session."""
    started = await tx.run(
        lambda uow: registration.start_registration(
            uow, ctx, password=PASSWORD, contact=contact, origin=origin
        )
    )
    code = tx.store.notifier.last_code(to=contact)
    done = await tx.run(
        lambda uow: registration.complete_registration(
            uow, ctx, registration_id=started.registration_id, code=code, origin=origin
        )
    )
    return Registered(done.account_id, done.tokens)


@dataclass(frozen=True, slots=True)
class Authenticator:
    secret: str
    recovery_codes: list[str]

    def code_now(self, clock: FakeClock) -> str:
        """The app's current code, computed by pyotp alone from the secret."""
        return str(pyotp.TOTP(self.secret).at(clock()))


async def enable_totp(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, account_id: str
) -> Authenticator:
    """Enrols and confirms TOTP in the domain, then moves the clock one step on so the test's
    next code is a fresh one (a step is accepted once)."""
    secret = generate_totp_secret()
    now = clock()

    async def work(uow: AuthUnitOfWork) -> list[str]:
        account = await uow.accounts.get(account_id)
        assert account is not None
        account.start_totp_enrollment(
            factor_id=f"{account_id}-totp",
            encrypted_secret=encrypt_totp_secret(ctx, account_id, secret),
            now=now,
        )
        codes, shown = RecoveryCodeSet.generate(
            id=f"{account_id}-recovery", account_id=account_id, hasher=ctx.secrets, now=now
        )
        account.confirm_totp_enrollment(
            pyotp.TOTP(secret).at(now),
            secret=secret,
            recovery_codes=codes,
            ledger=CodeFailureLedger(
                purpose_ledger_subject(ChallengePurpose.TOTP_ENROLLMENT, account_id)
            ),
            origin=ORIGIN,
            now=now,
        ).proof_or_raise()
        await uow.accounts.save(account)
        return shown

    recovery_codes = await tx.run(work)
    clock.advance(TOTP_STEP)
    return Authenticator(secret, recovery_codes)


async def freeze(tx: FakeTransactions, ctx: AuthContext, account_id: str) -> None:
    """A security officer's freeze, straight through the domain."""

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


def event_types(store: FakeStore, account_id: str) -> list[str]:
    return [event.type.value for event in store.events_of(account_id)]
