"""Refund's settings: the development defaults need nothing, a safe production configuration
starts, and production refuses a missing key, plaintext peers or the simulated gateway; the
per-currency rules accept only ISO 4217 codes and non-negative amounts."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import ValidationError

from services.refund.bootstrap import policy_from
from services.refund.domain.money import Money
from services.refund.settings import RefundSettings
from walletcore.keys import format_key_spec, generate_key
from walletcore.tokens import SigningKeyRing

PRODUCTION = {
    "REFUND_PROFILE": "production",
    "REFUND_DATABASE_URL": "postgresql+asyncpg://refund:s3cret-db-pass@db:5432/refund",
    "REFUND_REDIS_URL": "redis://:s3cret-redis-pass@redis:6379/0",
    "REFUND_ENCRYPTION_KEYS": format_key_spec([generate_key("e1")]),
    "REFUND_RATE_LIMIT_SUBJECT_KEY": format_key_spec([generate_key("r1")]),
    "REFUND_IDEMPOTENCY_KEYS": format_key_spec([generate_key("f1")]),
    "REFUND_SERVICE_IDENTITY_KEYS": format_key_spec([generate_key("refund-1")]),
    "REFUND_IDENTITY_KEYS_JWKS": json.dumps(SigningKeyRing.development("idp").public_jwks()),
    "REFUND_IDENTITY_ISSUER": "https://identity.example.com",
    "REFUND_AUTH_INTERNAL__ALLOW_INSECURE": "true",
    "REFUND_BINDING_INTERNAL__ALLOW_INSECURE": "true",
    "REFUND_GATEWAY_URL": "https://payouts.example.com",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("REFUND_"):
            monkeypatch.delenv(name)


def test_the_development_defaults_need_no_environment() -> None:
    settings = RefundSettings()
    assert settings.service_name == "refund"
    assert settings.rate_limit_namespace == "refund"
    assert settings.gateway_url == ""
    assert settings.review_working_days == 1


def test_a_safe_production_configuration_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    assert RefundSettings().rate_limiter == "redis"


@pytest.mark.parametrize(
    "missing",
    [
        "REFUND_ENCRYPTION_KEYS",
        "REFUND_IDEMPOTENCY_KEYS",
        "REFUND_SERVICE_IDENTITY_KEYS",
        "REFUND_GATEWAY_URL",
        "REFUND_BINDING_INTERNAL__ALLOW_INSECURE",
    ],
)
def test_production_refuses_what_is_missing_naming_it(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    for name, value in PRODUCTION.items():
        if name != missing:
            monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        RefundSettings()
    text = str(refused.value)
    assert missing.split("__")[0] in text
    secrets = [value for name, value in PRODUCTION.items() if name.endswith(("_KEYS", "_KEY"))]
    assert all(secret not in text for secret in secrets)
    assert "s3cret" not in text


@pytest.mark.parametrize("limits", ['{"XXX": 100}', '{"cny": 100}', '{"CNY": -1}'])
def test_per_currency_rules_are_iso_codes_and_amounts(
    monkeypatch: pytest.MonkeyPatch, limits: str
) -> None:
    monkeypatch.setenv("REFUND_AUTO_APPROVE_LIMITS", limits)
    with pytest.raises(ValidationError):
        RefundSettings()


def test_the_configured_rules_become_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFUND_AUTO_APPROVE_LIMITS", '{"JPY": 3000}')
    monkeypatch.setenv("REFUND_GRANT_THRESHOLDS", '{"JPY": 10000}')
    policy = policy_from(RefundSettings())
    assert policy.approves_automatically(Money(3_000, "JPY"))
    assert not policy.approves_automatically(Money(1, "CNY"))
    assert policy.needs_grant(Money(10_001, "JPY"))
    assert not policy.needs_grant(Money(10_000, "JPY"))
