"""Auth's settings: an empty environment runs in development, production names what it lacks."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import ValidationError

from services.auth.bootstrap import AuthKeys, rules_from_settings
from services.auth.settings import AuthSettings
from walletcore.keys import format_key_spec, generate_key
from walletcore.ratelimit import CODES_SENT_PER_DESTINATION_MINUTE
from walletcore.tokens import SigningKeyRing

SECRET_SPEC = format_key_spec([generate_key("k1")])
SAFE_PRODUCTION = {
    "AUTH_PROFILE": "production",
    "AUTH_DATABASE_URL": "postgresql+asyncpg://auth:s3cret@db:5432/auth",
    "AUTH_REDIS_URL": "redis://redis:6379/0",
    "AUTH_ENCRYPTION_KEYS": SECRET_SPEC,
    "AUTH_SIGNING_KEYS": SECRET_SPEC,
    "AUTH_HASH_KEYS": SECRET_SPEC,
    "AUTH_CONTACT_INDEX_KEYS": SECRET_SPEC,
    "AUTH_RATE_LIMIT_SUBJECT_KEY": SECRET_SPEC,
    "AUTH_IDEMPOTENCY_KEYS": SECRET_SPEC,
    "AUTH_IDENTITY_KEYS_JWKS": json.dumps(
        [{**SigningKeyRing.development("unit-test-idp").public_jwks()[0], "kid": "idp-1"}]
    ),
    "AUTH_IDENTITY_ISSUER": "https://identity.wallet.example",
    "AUTH_NOTIFIER__EMAIL_ADAPTER": "smtp",
    "AUTH_NOTIFIER__SMTP_HOST": "mail.example.com",
    "AUTH_NOTIFIER__SMS_ADAPTER": "webhook",
    "AUTH_NOTIFIER__SMS_WEBHOOK_URL": "https://sms.example.com/send",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUTH_"):
            monkeypatch.delenv(name)


def with_environment(monkeypatch: pytest.MonkeyPatch, **overrides: str | None) -> None:
    for name, value in {**SAFE_PRODUCTION, **overrides}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_development_runs_on_an_empty_environment_with_derived_keys() -> None:
    settings = AuthSettings()
    keys = AuthKeys.from_settings(settings)

    assert settings.database_url == "sqlite+aiosqlite:///var/auth.db"
    assert settings.migrate_on_start is True
    assert keys.secrets.verify("123456", keys.secrets.hash("123456"))
    assert AuthKeys.from_settings(AuthSettings()).contact_index.compute("+8613800138000") == (
        keys.contact_index.compute("+8613800138000")
    )


def test_a_complete_production_environment_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    with_environment(monkeypatch)

    settings = AuthSettings()

    assert settings.migrate_on_start is False
    assert [jwk["kid"] for jwk in AuthKeys.from_settings(settings).identity_jwks] == ["idp-1"]


@pytest.mark.parametrize(
    "variable",
    [
        "AUTH_HASH_KEYS",
        "AUTH_CONTACT_INDEX_KEYS",
        "AUTH_RATE_LIMIT_SUBJECT_KEY",
        "AUTH_IDEMPOTENCY_KEYS",
        "AUTH_IDENTITY_KEYS_JWKS",
    ],
)
def test_production_refuses_to_derive_a_key(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    with_environment(monkeypatch, **{variable: None})

    with pytest.raises(ValidationError) as refused:
        AuthSettings()

    assert f"{variable} must be set" in str(refused.value)


def test_production_refuses_the_development_identity_issuer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_environment(monkeypatch, AUTH_IDENTITY_ISSUER=None)

    with pytest.raises(ValidationError) as refused:
        AuthSettings()

    assert "AUTH_IDENTITY_ISSUER must name the real identity provider" in str(refused.value)


def test_a_malformed_key_is_refused_without_repeating_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with_environment(monkeypatch, AUTH_HASH_KEYS="k1:tooshort-secret-material")

    with pytest.raises(ValidationError) as refused:
        AuthSettings()

    message = str(refused.value)
    assert "hash_keys" in message
    assert "tooshort-secret-material" not in message


def test_an_identity_key_with_a_private_part_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with_environment(
        monkeypatch,
        AUTH_IDENTITY_KEYS_JWKS='[{"kty": "OKP", "crv": "Ed25519", "kid": "k", "d": "AA"}]',
    )

    with pytest.raises(ValidationError) as refused:
        AuthSettings()

    assert "only public signature keys are accepted" in str(refused.value)


def test_the_code_resend_interval_is_a_setting_that_tunes_the_per_destination_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert rules_from_settings(AuthSettings()).code_resend == CODES_SENT_PER_DESTINATION_MINUTE
    monkeypatch.setenv("AUTH_CODE_RESEND_INTERVAL_SECONDS", "120")

    resend = rules_from_settings(AuthSettings()).code_resend

    assert (resend.name, resend.limit, resend.period_seconds) == (
        "codes_sent_per_destination_minute",
        1,
        120,
    )


@pytest.mark.parametrize("seconds", ["0", "3601", "soon"])
def test_a_resend_interval_outside_a_second_to_an_hour_is_refused(
    monkeypatch: pytest.MonkeyPatch, seconds: str
) -> None:
    monkeypatch.setenv("AUTH_CODE_RESEND_INTERVAL_SECONDS", seconds)

    with pytest.raises(ValidationError, match="code_resend_interval_seconds"):
        AuthSettings()
