"""The Alembic environment of binding's database (run through `python -m walletcore.migrations`)."""

from services.binding.adapters.tables import metadata
from walletcore.migrations import run_env

run_env(metadata)
