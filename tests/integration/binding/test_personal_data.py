"""No card number in binding's tables, and the vault holds numbers only encrypted, under its own
key ring: every row of every table read raw."""

from __future__ import annotations

import pytest
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.binding.adapters import tables
from services.binding.adapters.vault import card_vault_entries, vault_metadata
from tests.integration.binding.conftest import ACCOUNT, OTHER, Binding
from tests.integration.binding.test_cards import bind, unbind
from walletcore.crypto import DecryptionFailed

NUMBERS = {
    ACCOUNT: ["4242 4242 4242 4242", "5555-5555-5555-4444", "6212345678901265"],
    OTHER: ["378282246310005", "3530111333300000"],
}


async def raw_rows(engine: AsyncEngine, table: Table) -> list[tuple[object, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(select(table))]


def as_text(value: object) -> str:
    if isinstance(value, bytes):
        # Bytes as they are and in the spellings a dump shows them.
        return value.decode("latin-1") + value.hex()
    return str(value)


async def dump(engine: AsyncEngine, every_table: list[Table]) -> dict[str, str]:
    """Each table's rows as one text, by table name."""
    texts = {}
    for table in every_table:
        rows = await raw_rows(engine, table)
        texts[table.name] = " ".join(as_text(value) for row in rows for value in row)
    return texts


async def bind_everything(binding: Binding) -> list[str]:
    digits = []
    for account_id, numbers in NUMBERS.items():
        for number in numbers:
            card = await bind(binding, account_id, number)
            digits.append("".join(char for char in number if char.isdigit()))
    await unbind(binding, card)  # an unbound card keeps no more than an active one
    return digits


async def test_no_table_of_binding_holds_a_card_number_or_holder_name(
    binding: Binding, engine: AsyncEngine, vault_engine: AsyncEngine
) -> None:
    digits = await bind_everything(binding)

    dumped = {
        **await dump(engine, tables.metadata.sorted_tables),
        **await dump(vault_engine, vault_metadata.sorted_tables),
    }

    assert dumped["cards"]  # the cards are there, as tokens, brands and last 4 digits
    for number in digits:
        for name, text in dumped.items():
            assert number not in text, f"a card number in {name}"
    for holder in ("Test Holder", "Other Holder"):
        assert all(holder not in text for text in dumped.values())


async def test_the_vault_keeps_numbers_under_its_own_key_ring_only(
    binding: Binding, vault_engine: AsyncEngine
) -> None:
    card = await bind(binding)

    [(token, sealed, _)] = await raw_rows(vault_engine, card_vault_entries)

    assert token == card.token
    associated_data = f"binding.vault:{token}".encode()
    assert isinstance(sealed, bytes)
    number = binding.vault_encryption.decrypt(sealed, associated_data=associated_data)
    assert number == b"4242424242424242"
    with pytest.raises(DecryptionFailed):
        binding.encryption.decrypt(sealed, associated_data=associated_data)
