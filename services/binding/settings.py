"""Binding's settings: `BINDING_*` environment variables on top of walletcore's
WalletServiceSettings (identity provider, idempotency keys and purge interval, rate-limit
subject key and namespace, migrate on start).

Keys arrive as `kid:base64url` specs (walletcore.keys), the first entry active:

    BINDING_ENCRYPTION_KEYS        holder names on cards, stored idempotent answers
    BINDING_FINGERPRINT_KEYS       the keyed fingerprint (HMAC) that finds a card bound twice
    BINDING_VAULT_KEYS             the local card vault's own ring for card numbers (not needed
                                   once a tokenisation provider replaces the local vault)
    BINDING_IDEMPOTENCY_KEYS       keys the stored fingerprints of idempotent requests
    BINDING_SERVICE_IDENTITY_KEYS  binding's identity key, signing its service tokens to auth
                                   and kyc (the identity provider's JWKS carries its public half)
    BINDING_IDENTITY_KEYS_JWKS     JSON list of the identity provider's public JWKs, which sign
                                   operator and service tokens (issuer BINDING_IDENTITY_ISSUER)

Peers: `BINDING_AUTH_INTERNAL_ADDRESS` / `BINDING_KYC_INTERNAL_ADDRESS` (the stack launcher
sets both) and their options `BINDING_AUTH_INTERNAL__*` / `BINDING_KYC_INTERNAL__*` (TLS
material, deadline). User tokens and step-up grants are checked with auth's published keys,
fetched from auth, so binding needs no copy of them.

The card vault keeps its own database (`BINDING_VAULT_DATABASE_URL`), never binding's: the
numbers stay out of binding's tables and backups, as with a provider. The development profile
derives each missing key from the public development seed; production refuses to start
without every one of them.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from walletcore.grpc.clients import InternalTargetOptions
from walletcore.settings import WalletServiceSettings, checked_key_spec


def _is_sqlite(database_url: str) -> bool:
    return urlsplit(database_url).scheme.split("+")[0] == "sqlite"


def _beside(data: dict[str, Any]) -> str:
    database_url = str(data.get("database_url", ""))
    if _is_sqlite(database_url) and database_url.endswith(".db"):
        return database_url.removesuffix(".db") + "-vault.db"
    return f"sqlite+aiosqlite:///var/{data['service_name']}-vault.db"


class BindingSettings(WalletServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BINDING_")

    # Binding signs no tokens of its own (its service tokens use its identity key), so the
    # base class's signing keys are not among what production requires. Nor is the rate-limit
    # subject key: binding's subjects are account ids, not personal data like auth's phone
    # numbers, so the development key serves (the hash only shapes the Redis keys).
    _REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = (
        "encryption_keys",
        "fingerprint_keys",
        "vault_keys",
        "idempotency_keys",
        "service_identity_keys",
        "identity_keys_jwks",
    )

    service_name: str = "binding"

    fingerprint_keys: SecretStr | None = None
    vault_keys: SecretStr | None = None
    service_identity_keys: SecretStr | None = None
    vault_database_url: str = Field(default_factory=lambda data: _beside(data), repr=False)
    """Defaults to a SQLite file next to binding's own (`binding.db` -> `binding-vault.db`)."""

    auth_issuer: str = Field(default="wallet-auth", min_length=1)
    """The issuer auth writes into access tokens and step-up grants."""

    auth_internal_address: str = "127.0.0.1:50053"
    auth_internal: InternalTargetOptions = InternalTargetOptions()
    kyc_internal_address: str = "127.0.0.1:50063"
    kyc_internal: InternalTargetOptions = InternalTargetOptions()

    _key_specs = field_validator(
        "encryption_keys",
        "fingerprint_keys",
        "vault_keys",
        "service_identity_keys",
    )(checked_key_spec)

    @model_validator(mode="after")
    def _vault_has_its_own_database(self) -> BindingSettings:
        if self.vault_database_url == self.database_url:
            raise ValueError(
                f"{self.env_name('vault_database_url')} must name another database than "
                f"{self.env_name('database_url')}: card numbers stay out of binding's database"
            )
        return self

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if _is_sqlite(self.vault_database_url):
            problems.append(f"{self.env_name('vault_database_url')} must not be SQLite")
        for name in ("auth_internal", "kyc_internal"):
            options: InternalTargetOptions = getattr(self, name)
            problems.extend(options.production_problems(self.env_name(name)))
        return problems
