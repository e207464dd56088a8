"""The Alembic environment of the local card vault's own database
(`python -m walletcore.migrations upgrade services/binding/adapters/vault_migrations`)."""

from services.binding.adapters.vault import vault_metadata
from walletcore.migrations import run_env

run_env(vault_metadata)
