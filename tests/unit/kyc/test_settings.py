"""Kyc's settings: a safe production configuration starts, an unsafe one is refused with every
offending variable named and no value repeated."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import ValidationError

from services.kyc.settings import MAX_SUBMISSION_BYTES, KycSettings
from walletcore.keys import format_key_spec, generate_key
from walletcore.tokens import SigningKeyRing

SECRET = format_key_spec([generate_key("k1")])
PRODUCTION = {
    "KYC_PROFILE": "production",
    "KYC_DATABASE_URL": "postgresql+asyncpg://kyc:s3cret-db-pass@db:5432/kyc",
    "KYC_REDIS_URL": "redis://:s3cret-redis-pass@redis:6379/0",
    "KYC_ENCRYPTION_KEYS": SECRET,
    "KYC_IDENTITY_INDEX_KEYS": format_key_spec([generate_key("i1")]),
    "KYC_RATE_LIMIT_SUBJECT_KEY": format_key_spec([generate_key("r1")]),
    "KYC_IDEMPOTENCY_KEYS": format_key_spec([generate_key("f1")]),
    "KYC_SERVICE_IDENTITY_KEYS": format_key_spec([generate_key("kyc-1")]),
    "KYC_IDENTITY_KEYS_JWKS": json.dumps(SigningKeyRing.development("idp").public_jwks()),
    "KYC_IDENTITY_ISSUER": "https://identity.example.com",
    "KYC_AUTH_INTERNAL_ADDRESS": "auth.internal:50053",
    "KYC_AUTH_INTERNAL__ALLOW_INSECURE": "true",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KYC_"):
            monkeypatch.delenv(name)


def test_the_development_defaults_need_no_environment() -> None:
    settings = KycSettings()
    assert settings.service_name == "kyc"
    assert settings.rate_limit_namespace == "kyc"
    assert settings.migrate_on_start
    assert settings.max_receive_message_bytes == MAX_SUBMISSION_BYTES == 16 * 1024 * 1024


def test_a_safe_production_configuration_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    settings = KycSettings()
    assert settings.rate_limiter == "redis"
    assert not settings.migrate_on_start


@pytest.mark.parametrize(
    "missing",
    [
        "KYC_ENCRYPTION_KEYS",
        "KYC_IDENTITY_INDEX_KEYS",
        "KYC_SERVICE_IDENTITY_KEYS",
        "KYC_IDENTITY_KEYS_JWKS",
        "KYC_RATE_LIMIT_SUBJECT_KEY",
        "KYC_IDEMPOTENCY_KEYS",
    ],
)
def test_production_refuses_a_missing_key(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    for name, value in PRODUCTION.items():
        if name != missing:
            monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        KycSettings()
    assert f"{missing} must be set" in str(refused.value)


def test_production_refuses_plaintext_to_auth_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in PRODUCTION.items():
        if name != "KYC_AUTH_INTERNAL__ALLOW_INSECURE":
            monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        KycSettings()
    assert "KYC_AUTH_INTERNAL__CA_FILE must be set" in str(refused.value)


def test_a_bad_key_is_refused_without_repeating_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KYC_IDENTITY_INDEX_KEYS", "i1:not-32-bytes-of-secret")
    with pytest.raises(ValidationError) as refused:
        KycSettings()
    assert "identity_index_keys" in str(refused.value)
    assert "not-32-bytes-of-secret" not in str(refused.value)
