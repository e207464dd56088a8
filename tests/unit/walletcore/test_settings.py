from __future__ import annotations

import os

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from walletcore.settings import NotifierSettings, Profile, ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_")

    service_name: str = "demo"
    notifier: NotifierSettings = NotifierSettings()


SAFE_PRODUCTION = {
    "DEMO_PROFILE": "production",
    "DEMO_DATABASE_URL": "postgresql+asyncpg://wallet:s3cret-db-pass@db:5432/demo",
    "DEMO_REDIS_URL": "redis://:s3cret-redis-pass@redis:6379/0",
    "DEMO_ENCRYPTION_KEYS": "k1:c2VjcmV0LWVuY3J5cHRpb24ta2V5",
    "DEMO_SIGNING_KEYS": "s1:c2VjcmV0LXNpZ25pbmcta2V5",
    "DEMO_NOTIFIER__EMAIL_ADAPTER": "smtp",
    "DEMO_NOTIFIER__SMTP_HOST": "mail.example.com",
    "DEMO_NOTIFIER__SMTP_PASSWORD": "s3cret-smtp-pass",
    "DEMO_NOTIFIER__SMS_ADAPTER": "webhook",
    "DEMO_NOTIFIER__SMS_WEBHOOK_URL": "https://sms.example.com/send",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DEMO_"):
            monkeypatch.delenv(name)


def production_error(monkeypatch: pytest.MonkeyPatch, **overrides: str | None) -> str:
    for name, value in {**SAFE_PRODUCTION, **overrides}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        DemoSettings()
    return str(refused.value)


def test_development_runs_on_an_empty_environment() -> None:
    settings = DemoSettings()

    assert settings.profile is Profile.DEVELOPMENT
    assert settings.database_url == "sqlite+aiosqlite:///var/demo.db"
    assert settings.rate_limiter == "memory"
    assert settings.reflection is True
    assert (settings.public_port, settings.admin_port, settings.internal_port) == (0, 0, 0)
    assert settings.notifier.email_adapter == "console"
    assert settings.notifier.sms_adapter == "console"


def test_prefixed_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PUBLIC_PORT", "7001")
    monkeypatch.setenv("DEMO_LOG_LEVEL", "debug")
    monkeypatch.setenv("DEMO_NOTIFIER__SMTP_PORT", "2525")
    monkeypatch.setenv("PUBLIC_PORT", "9999")  # unprefixed: another program's setting

    settings = DemoSettings()

    assert settings.public_port == 7001
    assert settings.log_level == "DEBUG"
    assert settings.notifier.smtp_port == 2525


def test_a_redis_url_selects_the_redis_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_REDIS_URL", "redis://localhost:6379/0")

    assert DemoSettings().rate_limiter == "redis"


def test_the_redis_limiter_without_a_redis_url_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_RATE_LIMITER", "redis")

    with pytest.raises(ValidationError, match="DEMO_REDIS_URL"):
        DemoSettings()


def test_safe_production_settings_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SAFE_PRODUCTION.items():
        monkeypatch.setenv(name, value)

    settings = DemoSettings()

    assert settings.reflection is False
    assert settings.rate_limiter == "redis"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"DEMO_RATE_LIMITER": "memory"}, "DEMO_RATE_LIMITER"),
        ({"DEMO_REFLECTION": "true"}, "DEMO_REFLECTION"),
        ({"DEMO_DATABASE_URL": "sqlite+aiosqlite:///var/demo.db"}, "DEMO_DATABASE_URL"),
        ({"DEMO_DATABASE_URL": None}, "DEMO_DATABASE_URL"),
        ({"DEMO_ENCRYPTION_KEYS": None}, "DEMO_ENCRYPTION_KEYS"),
        ({"DEMO_SIGNING_KEYS": None}, "DEMO_SIGNING_KEYS"),
        ({"DEMO_NOTIFIER__EMAIL_ADAPTER": "console"}, "DEMO_NOTIFIER__EMAIL_ADAPTER"),
        ({"DEMO_NOTIFIER__SMS_ADAPTER": "console"}, "DEMO_NOTIFIER__SMS_ADAPTER"),
        ({"DEMO_NOTIFIER__SMTP_STARTTLS": "false"}, "DEMO_NOTIFIER__SMTP_STARTTLS"),
        (
            {"DEMO_NOTIFIER__SMS_WEBHOOK_URL": "http://sms.example.com/send"},
            "DEMO_NOTIFIER__SMS_WEBHOOK_URL must be https",
        ),
    ],
)
def test_production_refuses_each_unsafe_choice_by_name(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str | None], named: str
) -> None:
    message = production_error(monkeypatch, **overrides)

    assert named in message


def test_production_names_every_problem_at_once_and_no_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = production_error(
        monkeypatch,
        DEMO_DATABASE_URL="sqlite+aiosqlite:///tmp/s3cret-path.db",
        DEMO_REDIS_URL=None,
        DEMO_RATE_LIMITER="memory",
        DEMO_REFLECTION="on",
        DEMO_SIGNING_KEYS=None,
        DEMO_NOTIFIER__SMS_ADAPTER="console",
    )

    for named in (
        "DEMO_DATABASE_URL",
        "DEMO_RATE_LIMITER",
        "DEMO_REFLECTION",
        "DEMO_SIGNING_KEYS",
        "DEMO_NOTIFIER__SMS_ADAPTER",
    ):
        assert named in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"DEMO_NOTIFIER__EMAIL_ADAPTER": "smtp"}, "smtp_host"),
        ({"DEMO_NOTIFIER__SMS_ADAPTER": "webhook"}, "sms_webhook_url"),
        (
            {"DEMO_NOTIFIER__SMTP_STARTTLS": "true", "DEMO_NOTIFIER__SMTP_IMPLICIT_TLS": "true"},
            "smtp_implicit_tls",
        ),
    ],
)
def test_an_incomplete_notifier_is_refused_in_any_profile(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=named):
        DemoSettings()


def test_secrets_stay_out_of_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SAFE_PRODUCTION.items():
        monkeypatch.setenv(name, value)

    assert "s3cret" not in repr(DemoSettings())


def test_production_accepts_smtp_over_implicit_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SAFE_PRODUCTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEMO_NOTIFIER__SMTP_STARTTLS", "false")
    monkeypatch.setenv("DEMO_NOTIFIER__SMTP_IMPLICIT_TLS", "true")
    monkeypatch.setenv("DEMO_NOTIFIER__SMTP_PORT", "465")

    assert DemoSettings().notifier.smtp_implicit_tls is True


def test_development_may_send_mail_in_clear_to_a_local_catcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_NOTIFIER__EMAIL_ADAPTER", "smtp")
    monkeypatch.setenv("DEMO_NOTIFIER__SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DEMO_NOTIFIER__SMTP_STARTTLS", "false")
    monkeypatch.setenv("DEMO_NOTIFIER__SMS_ADAPTER", "webhook")
    monkeypatch.setenv("DEMO_NOTIFIER__SMS_WEBHOOK_URL", "http://127.0.0.1:8025/sms")

    assert DemoSettings().notifier.smtp_starttls is False
