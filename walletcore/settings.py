"""Typed service configuration read from prefixed environment variables.

Each service subclasses `ServiceSettings` with its own prefix (`AUTH_`, `KYC_`, ...). The
development profile runs on an empty environment (SQLite file, in-process limiter, console
notifiers, reflection on); the production profile refuses to start with any of those and names
every offending variable in one error, never its value.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, HttpUrl, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from walletcore.idempotency import PURGE_INTERVAL_SECONDS
from walletcore.keys import parse_key_spec
from walletcore.tokens import DEVELOPMENT_IDENTITY_ISSUER, parse_jwks

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

_PORT = Field(default=0, ge=0, le=65535, description="0 binds an ephemeral port")


class Profile(enum.StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class NotifierSettings(BaseModel):
    """How a service delivers e-mail and SMS. Read as `<PREFIX>NOTIFIER__<FIELD>`."""

    email_adapter: Literal["console", "smtp"] = "console"
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_implicit_tls: bool = False
    email_from: str = "Wallet Security <no-reply@wallet.invalid>"

    sms_adapter: Literal["console", "webhook"] = "console"
    sms_webhook_url: HttpUrl | None = None
    sms_timeout_seconds: float = Field(default=5.0, gt=0)

    inbox_path: Path | None = None
    """Development: also append every message, code included, to this JSON-lines file
    (`walletcore.notify.inbox`); `make run` sets `var/inbox.jsonl`."""

    @field_validator("inbox_path", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `AUTH_NOTIFIER__INBOX_PATH=` means no inbox, not the current directory.
        return None if value == "" else value

    @model_validator(mode="after")
    def _adapters_are_complete(self) -> NotifierSettings:
        if self.email_adapter == "smtp" and not self.smtp_host:
            raise ValueError("the smtp e-mail adapter needs smtp_host")
        if self.smtp_starttls and self.smtp_implicit_tls:
            raise ValueError("choose one of smtp_starttls and smtp_implicit_tls, not both")
        if self.sms_adapter == "webhook" and self.sms_webhook_url is None:
            raise ValueError("the webhook sms adapter needs sms_webhook_url")
        return self

    def production_problems(self, env_name: str) -> list[str]:
        """What production refuses here; `env_name` is this model's variable name."""
        problems = []
        if self.email_adapter == "console":
            problems.append(f"{env_name}__EMAIL_ADAPTER must be smtp (console prints codes)")
        if self.sms_adapter == "console":
            problems.append(f"{env_name}__SMS_ADAPTER must be webhook (console prints codes)")
        if self.inbox_path is not None:
            problems.append(f"{env_name}__INBOX_PATH must be unset (the inbox holds codes)")
        # Codes must not cross the network in clear.
        if self.email_adapter == "smtp" and not (self.smtp_starttls or self.smtp_implicit_tls):
            problems.append(
                f"{env_name}__SMTP_STARTTLS or {env_name}__SMTP_IMPLICIT_TLS must be on"
            )
        if self.sms_webhook_url is not None and self.sms_webhook_url.scheme != "https":
            problems.append(f"{env_name}__SMS_WEBHOOK_URL must be https")
        return problems


class ServiceSettings(BaseSettings):
    """Settings every service shares; subclasses set `env_prefix` and `service_name`."""

    # hide_input_in_errors: a rejected value (a database URL with a password, a key) must not
    # end up in the startup error a deployment logs.
    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        extra="ignore",
        hide_input_in_errors=True,
    )

    # The fields a production deployment must set (no defaults there), by field name.
    _REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("encryption_keys", "signing_keys")

    profile: Profile = Profile.DEVELOPMENT
    service_name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    host: str = "127.0.0.1"
    public_port: int = _PORT
    admin_port: int = _PORT
    internal_port: int = _PORT
    metrics_port: int = _PORT
    reuse_port: bool = False
    """Scaling out on one host: several processes of this service bind the same public,
    admin and internal ports (SO_REUSEPORT; each process must set it) and the kernel spreads
    new connections across them. Off, a second process on a taken port fails to start
    instead of silently sharing it. The metrics port is never shared (give each its own)."""

    # repr=False: URLs may carry credentials.
    database_url: str = Field(
        default_factory=lambda data: f"sqlite+aiosqlite:///var/{data['service_name']}.db",
        repr=False,
    )
    redis_url: str | None = Field(default=None, repr=False)
    rate_limiter: Literal["memory", "redis"] = Field(
        default_factory=lambda data: "redis" if data.get("redis_url") else "memory"
    )
    redis_cluster: bool = False
    """`redis_url` names a node of a Redis Cluster: the limiter uses a cluster client, which
    follows the slot map. Off, it is a standalone Redis (or a proxy in front of a cluster)."""
    redis_timeout_seconds: float = Field(default=0.25, gt=0, le=10)
    """How long a rate-limit check may wait for Redis (connect, and the check itself) before
    the limited RPC answers UNAVAILABLE: short, so a slow Redis fails closed instead of
    stalling every caller."""
    reflection: bool = Field(
        default_factory=lambda data: data.get("profile") == Profile.DEVELOPMENT
    )

    encryption_keys: SecretStr | None = None
    """Comma-separated `kid:base64` entries, the first one active (parsed by walletcore.keys)."""
    signing_keys: SecretStr | None = None
    """Comma-separated `kid:base64` entries, the first one active (parsed by walletcore.keys)."""

    trusted_proxy_header: str | None = None
    """Only behind a proxy that overwrites it (e.g. `x-forwarded-for`): the client address is
    then its last entry. Unset, the address is the TCP peer, which a client cannot forge."""

    log_level: LogLevel = "INFO"
    shutdown_grace_seconds: float = Field(default=10.0, gt=0)
    max_receive_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("trusted_proxy_header")
    @classmethod
    def _lower_case_header(cls, value: str | None) -> str | None:
        # gRPC metadata keys arrive lower-cased.
        return value.lower() if value else None

    @model_validator(mode="after")
    def _redis_limiter_needs_redis(self) -> ServiceSettings:
        if self.rate_limiter == "redis" and not self.redis_url:
            raise ValueError(
                f"{self.env_name('rate_limiter')}=redis needs {self.env_name('redis_url')}"
            )
        return self

    @model_validator(mode="after")
    def _production_is_safe(self) -> ServiceSettings:
        if self.profile is Profile.PRODUCTION:
            problems = self.production_problems()
            if problems:
                raise ValueError("production refuses: " + "; ".join(problems))
        return self

    def env_name(self, field_name: str) -> str:
        """The environment variable that sets `field_name`, for messages an operator acts on."""
        return f"{self.model_config.get('env_prefix', '')}{field_name}".upper()

    def production_problems(self) -> list[str]:
        problems = []
        if self.rate_limiter == "memory":
            problems.append(
                f"{self.env_name('rate_limiter')} must be redis (memory counts per process)"
            )
        if self.reflection:
            problems.append(f"{self.env_name('reflection')} must be off")
        if _is_sqlite(self.database_url):
            problems.append(f"{self.env_name('database_url')} must not be SQLite")
        for field_name in self._REQUIRED_SECRETS:
            if getattr(self, field_name) is None:
                problems.append(f"{self.env_name(field_name)} must be set")
        for field_name in type(self).model_fields:
            value = getattr(self, field_name)
            if isinstance(value, NotifierSettings):
                problems.extend(value.production_problems(self.env_name(field_name)))
        return problems


class WalletServiceSettings(ServiceSettings):
    """What every wallet service's settings add: the identity provider whose keys sign operator
    and service tokens (`identity_keys_jwks`, a JSON list of public JWKs, issuer
    `identity_issuer`), the key of rate-limit subjects and the limiter's Redis hash tag, the
    key of idempotency fingerprints and how often expired records are purged, and migrating on
    start (the development default)."""

    _REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = (
        *ServiceSettings._REQUIRED_SECRETS,
        "rate_limit_subject_key",
        "idempotency_keys",
        "identity_keys_jwks",
    )

    rate_limit_subject_key: SecretStr | None = None
    """A key spec; its active key keys the hashes of rate-limit subjects."""
    idempotency_keys: SecretStr | None = None
    """A key spec; keys the fingerprints of requests in the idempotency records."""
    idempotency_purge_interval_seconds: float = Field(
        default=PURGE_INTERVAL_SECONDS, gt=0, le=86400
    )
    """How often the retention purges run: idempotency records past their retention (30 days),
    and consumed-grant rows whose grants can no longer be accepted (walletcore.grants)."""
    rate_limit_namespace: str = Field(default="", pattern=r"^[A-Za-z0-9_.:-]{0,64}$")
    """The Redis hash tag of the service's limiter keys (one Redis Cluster slot); empty means
    the service's name."""
    identity_keys_jwks: list[dict[str, str]] | None = None
    identity_issuer: str = DEVELOPMENT_IDENTITY_ISSUER
    migrate_on_start: bool = Field(
        default_factory=lambda data: data.get("profile", Profile.DEVELOPMENT) == Profile.DEVELOPMENT
    )

    @model_validator(mode="after")
    def _namespace_defaults_to_the_service(self) -> WalletServiceSettings:
        if not self.rate_limit_namespace:
            self.rate_limit_namespace = self.service_name
        return self

    @field_validator("rate_limit_subject_key", "idempotency_keys")
    @classmethod
    def _wallet_key_specs(cls, value: SecretStr | None) -> SecretStr | None:
        return checked_key_spec(value)

    @field_validator("identity_keys_jwks")
    @classmethod
    def _is_public_jwks(cls, value: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
        return checked_public_jwks(value)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.identity_issuer == DEVELOPMENT_IDENTITY_ISSUER:
            problems.append(
                f"{self.env_name('identity_issuer')} must name the real identity provider"
            )
        return problems


def checked_key_spec(value: SecretStr | None) -> SecretStr | None:
    """A key-spec setting's validator body: parse_key_spec's errors name an entry's position,
    never its content."""
    if value is not None:
        parse_key_spec(value.get_secret_value())
    return value


def checked_public_jwks(value: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
    """The identity provider's JWKS setting's validator body."""
    if value is not None:
        if not value:
            raise ValueError("the identity provider's JWKS holds no key")
        parse_jwks(value)
    return value


def _is_sqlite(database_url: str) -> bool:
    return urlsplit(database_url).scheme.split("+")[0] == "sqlite"
