"""Builders the persistence tests share."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.auth.adapters.uow import SqlAuthUnitOfWork
from services.auth.domain.account import Account
from services.auth.domain.contacts import Email, Phone, VerifiedContact
from services.auth.domain.events import NO_CLIENT, Origin
from services.auth.domain.sessions import RefreshToken, Session
from walletcore.crypto import SecretHasher

SHANGHAI = timezone(timedelta(hours=8))
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

NewUnitOfWork = Callable[[], SqlAuthUnitOfWork]


postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
"""For races: SQLite runs one transaction at a time, so there is nothing to race there."""


def make_account(
    account_id: str = "acc-1",
    *,
    phone: str | None = "+8613800138000",
    email: str | None = "Alice@Example.com",
    at: datetime = START,
) -> Account:
    """An active account with the given contacts (the phone verified first)."""
    contacts = []
    if phone is not None:
        contacts.append(VerifiedContact(f"{account_id}-phone", Phone.parse(phone), at))
    if email is not None:
        contacts.append(
            VerifiedContact(f"{account_id}-email", Email.parse(email), at + timedelta(minutes=1))
        )
    return Account(
        id=account_id,
        password_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        contacts=contacts,
        created_at=at,
    )


async def store(new_uow: NewUnitOfWork, *accounts: Account) -> None:
    async with new_uow() as uow:
        for account in accounts:
            await uow.accounts.add(account)
        await uow.commit()


def start_session(
    hasher: SecretHasher,
    session_id: str,
    *,
    account_id: str = "acc-1",
    origin: Origin = NO_CLIENT,
    at: datetime = START,
) -> tuple[Session, RefreshToken]:
    return Session.start(
        id=session_id,
        account_id=account_id,
        origin=origin,
        first_token_id=f"{session_id}-token-1",
        first_token="first-secret",
        hasher=hasher,
        now=at,
    )


async def add_sessions(new_uow: NewUnitOfWork, *started: tuple[Session, RefreshToken]) -> None:
    async with new_uow() as uow:
        for session, first_token in started:
            await uow.sessions.add(session, first_token)
        await uow.commit()
