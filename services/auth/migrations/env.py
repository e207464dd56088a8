"""The Alembic environment of auth's database (run through `python -m walletcore.migrations`)."""

from services.auth.adapters.tables import metadata
from walletcore.migrations import run_env

run_env(metadata)
