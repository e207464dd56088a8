"""The Alembic environment of kyc's database (run through `python -m walletcore.migrations`)."""

from services.kyc.adapters.tables import metadata
from walletcore.migrations import run_env

run_env(metadata)
