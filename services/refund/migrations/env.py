"""The Alembic environment of refund's database (run through `python -m walletcore.migrations`)."""

from services.refund.adapters.tables import metadata
from walletcore.migrations import run_env

run_env(metadata)
