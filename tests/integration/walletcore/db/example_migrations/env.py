"""The Alembic environment of the example schema the walletcore.db tests migrate.

A service's env.py is the last line alone, with its metadata imported from its adapters.
"""

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String, Table, UniqueConstraint

from walletcore.db import UTCDateTime, make_metadata
from walletcore.idempotency import define_idempotency_table
from walletcore.migrations import run_env

metadata = make_metadata()
Table(
    "accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)
Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("memo", String(200)),
    UniqueConstraint("account_id", "memo"),
)
define_idempotency_table(metadata)

run_env(metadata)
