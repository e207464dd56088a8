"""Binding's settings: an empty environment runs in development, production names what it
lacks, and the card vault never shares binding's database."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import ValidationError

from services.binding.settings import BindingSettings
from walletcore.keys import format_key_spec, generate_key
from walletcore.tokens import SigningKeyRing

SECRET_SPEC = format_key_spec([generate_key("k1")])
SAFE_PRODUCTION = {
    "BINDING_PROFILE": "production",
    "BINDING_DATABASE_URL": "postgresql+asyncpg://binding:s3cret@db:5432/binding",
    "BINDING_VAULT_DATABASE_URL": "postgresql+asyncpg://vault:s3cret@vault-db:5432/vault",
    "BINDING_REDIS_URL": "redis://redis:6379/0",
    "BINDING_ENCRYPTION_KEYS": SECRET_SPEC,
    "BINDING_FINGERPRINT_KEYS": SECRET_SPEC,
    "BINDING_VAULT_KEYS": SECRET_SPEC,
    "BINDING_IDEMPOTENCY_KEYS": SECRET_SPEC,
    "BINDING_SERVICE_IDENTITY_KEYS": SECRET_SPEC,
    "BINDING_IDENTITY_KEYS_JWKS": json.dumps(
        [{**SigningKeyRing.development("unit-test-idp").public_jwks()[0], "kid": "idp-1"}]
    ),
    "BINDING_IDENTITY_ISSUER": "https://identity.wallet.example",
    "BINDING_AUTH_INTERNAL__CA_FILE": "/etc/wallet/ca.pem",
    "BINDING_KYC_INTERNAL__CA_FILE": "/etc/wallet/ca.pem",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BINDING_"):
            monkeypatch.delenv(name)


def with_environment(monkeypatch: pytest.MonkeyPatch, **overrides: str | None) -> None:
    for name, value in {**SAFE_PRODUCTION, **overrides}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_development_runs_on_an_empty_environment() -> None:
    settings = BindingSettings()

    assert settings.database_url == "sqlite+aiosqlite:///var/binding.db"
    assert settings.vault_database_url == "sqlite+aiosqlite:///var/binding-vault.db"
    assert settings.migrate_on_start is True
    assert (settings.auth_internal_address, settings.kyc_internal_address) == (
        "127.0.0.1:50053",
        "127.0.0.1:50063",
    )


def test_production_starts_with_everything_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with_environment(monkeypatch)

    settings = BindingSettings()

    assert settings.migrate_on_start is False
    assert settings.kyc_internal.ca_file is not None


@pytest.mark.parametrize(
    "missing",
    [
        "BINDING_ENCRYPTION_KEYS",
        "BINDING_FINGERPRINT_KEYS",
        "BINDING_VAULT_KEYS",
        "BINDING_IDEMPOTENCY_KEYS",
        "BINDING_SERVICE_IDENTITY_KEYS",
        "BINDING_IDENTITY_KEYS_JWKS",
        "BINDING_KYC_INTERNAL__CA_FILE",
    ],
)
def test_production_names_what_it_lacks(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    with_environment(monkeypatch, **{missing: None})

    with pytest.raises(ValidationError) as caught:
        BindingSettings()

    assert missing in str(caught.value)


def test_production_refuses_a_sqlite_vault(monkeypatch: pytest.MonkeyPatch) -> None:
    with_environment(monkeypatch, BINDING_VAULT_DATABASE_URL="sqlite+aiosqlite:///vault.db")

    with pytest.raises(ValidationError, match="BINDING_VAULT_DATABASE_URL must not be SQLite"):
        BindingSettings()


def test_the_vault_file_sits_next_to_bindings_own_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BINDING_DATABASE_URL", "sqlite+aiosqlite:///tmp/stack/binding.db")

    assert BindingSettings().vault_database_url == "sqlite+aiosqlite:///tmp/stack/binding-vault.db"


def test_the_vault_never_shares_bindings_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINDING_DATABASE_URL", "sqlite+aiosqlite:///var/shared.db")
    monkeypatch.setenv("BINDING_VAULT_DATABASE_URL", "sqlite+aiosqlite:///var/shared.db")

    with pytest.raises(ValidationError, match="card numbers stay out"):
        BindingSettings()


def test_a_malformed_key_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINDING_VAULT_KEYS", "not-a-key-spec-s3cret")

    with pytest.raises(ValidationError) as caught:
        BindingSettings()

    assert "s3cret" not in str(caught.value)


def test_the_purge_interval_is_read_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINDING_IDEMPOTENCY_PURGE_INTERVAL_SECONDS", "120")
    assert BindingSettings().idempotency_purge_interval_seconds == 120.0

    monkeypatch.setenv("BINDING_IDEMPOTENCY_PURGE_INTERVAL_SECONDS", "0")
    with pytest.raises(ValidationError, match="idempotency_purge_interval_seconds"):
        BindingSettings()
