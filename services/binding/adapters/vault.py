"""The local card vault: card numbers kept as a tokenisation provider keeps them.

Binding never stores a card number; the `CardVault` port takes it and returns an opaque token.
In production a tokenisation provider (PCI DSS scope) sits behind the port. This adapter is its
stand-in for the embedded mode, development and tests, and keeps the provider's properties:

- a database of its own (`BINDING_VAULT_DATABASE_URL`), with its own schema and migrations
  (`vault_migrations/`), so binding's tables never see a number;
- numbers encrypted with AES-256-GCM under the vault's own key ring (`BINDING_VAULT_KEYS`),
  not binding's, the token as associated data;
- its own transactions: `tokenize` commits before it returns, so a token whose card is then
  not bound (the bind was refused or rolled back) stays unused, as with a provider.

Each call returns a new random token, so a token says nothing about the number, and two
tokens of one number are not linkable without the vault.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Final

from sqlalchemy import Column, LargeBinary, String, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.binding.domain.cards import CardNumber
from walletcore.clock import Clock, utc_now
from walletcore.crypto import KeyRing
from walletcore.db import UTCDateTime, make_metadata

VAULT_MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "vault_migrations"
REFERENCE_PREFIX: Final = "vt_"
TOKEN_LENGTH: Final = 128

vault_metadata = make_metadata()

card_vault_entries = Table(
    "card_vault_entries",
    vault_metadata,
    Column("token", String(TOKEN_LENGTH), primary_key=True),
    # AES-256-GCM under the vault's key ring, associated data "binding.vault:<token>".
    Column("number", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


def _number_data(token: str) -> bytes:
    return f"binding.vault:{token}".encode()


class LocalCardVault:
    """`CardVault` on its own database (`sessions` of the vault's engine)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        encryption: KeyRing,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._encryption = encryption
        self._clock = clock

    async def tokenize(self, number: CardNumber) -> str:
        token = REFERENCE_PREFIX + secrets.token_urlsafe(24)
        sealed = self._encryption.encrypt(
            number.digits.encode(), associated_data=_number_data(token)
        )
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(card_vault_entries).values(
                    token=token, number=sealed, created_at=self._clock()
                )
            )
        return token
