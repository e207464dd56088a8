"""Auth's settings: `AUTH_*` environment variables on top of walletcore's ServiceSettings.

Keys arrive as `kid:base64url` specs (walletcore.keys), the first entry active:

    AUTH_ENCRYPTION_KEYS        TOTP secrets, sealed outbox messages, stored idempotent answers
    AUTH_SIGNING_KEYS           auth's Ed25519 keys for access tokens and step-up grants
    AUTH_HASH_KEYS              keyed hashes of codes, refresh tokens, tickets, recovery codes;
                                signs sign-in device tokens (a key derived for that use)
    AUTH_CONTACT_INDEX_KEYS     the blind index that finds accounts by phone or email
    AUTH_RATE_LIMIT_SUBJECT_KEY keys the hashes of rate-limit subjects in Redis (phone numbers)
    AUTH_IDEMPOTENCY_KEYS       keys the stored fingerprints of requests (their bodies may hold
                                passwords), kept as long as the idempotency records (30 days)
    AUTH_IDENTITY_KEYS_JWKS     JSON list of the identity provider's public JWKs, which sign
                                operator and service tokens (issuer AUTH_IDENTITY_ISSUER)

The development profile derives each missing key from the public development seed (see
`services.auth.bootstrap.AuthKeys`); production refuses to start without every one of them.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from walletcore.idempotency import PURGE_INTERVAL_SECONDS
from walletcore.keys import parse_key_spec
from walletcore.settings import NotifierSettings, Profile, ServiceSettings
from walletcore.tokens import DEVELOPMENT_IDENTITY_ISSUER, parse_jwks

Jwks = list[dict[str, str]]


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_")

    _REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = (
        *ServiceSettings._REQUIRED_SECRETS,
        "hash_keys",
        "contact_index_keys",
        "rate_limit_subject_key",
        "idempotency_keys",
        "identity_keys_jwks",
    )

    service_name: str = "auth"
    notifier: NotifierSettings = NotifierSettings()

    hash_keys: SecretStr | None = None
    contact_index_keys: SecretStr | None = None
    rate_limit_subject_key: SecretStr | None = None
    """A key spec; its active key keys the hashes of rate-limit subjects."""
    idempotency_keys: SecretStr | None = None
    """A key spec; keys the fingerprints of requests in the idempotency records."""
    rate_limit_namespace: str = Field(default="auth", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """The Redis hash tag of auth's limiter keys (one Redis Cluster slot)."""
    code_resend_interval_seconds: int = Field(default=60, ge=1, le=3600)
    """How long one phone number or address waits between two codes (SMS or e-mail)."""

    identity_keys_jwks: Jwks | None = None
    identity_issuer: str = DEVELOPMENT_IDENTITY_ISSUER
    issuer: str = Field(default="wallet-auth", min_length=1)
    """Auth's own issuer name in the tokens it signs."""

    password_hash_concurrency: int = Field(default=2, ge=1, le=64)
    """Argon2id hashes running at once (about 19 MiB each): one per core."""
    migrate_on_start: bool = Field(
        default_factory=lambda data: data.get("profile", Profile.DEVELOPMENT) == Profile.DEVELOPMENT
    )
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often the outbox dispatcher looks for messages when it found none."""
    idempotency_purge_interval_seconds: float = Field(
        default=PURGE_INTERVAL_SECONDS, gt=0, le=86400
    )
    """How often idempotency records past their retention (30 days) are deleted."""

    @field_validator(
        "encryption_keys",
        "signing_keys",
        "hash_keys",
        "contact_index_keys",
        "rate_limit_subject_key",
        "idempotency_keys",
    )
    @classmethod
    def _is_key_spec(cls, value: SecretStr | None) -> SecretStr | None:
        # parse_key_spec's errors name an entry's position, never its content.
        if value is not None:
            parse_key_spec(value.get_secret_value())
        return value

    @field_validator("identity_keys_jwks")
    @classmethod
    def _is_public_jwks(cls, value: Jwks | None) -> Jwks | None:
        if value is not None:
            if not value:
                raise ValueError("the identity provider's JWKS holds no key")
            parse_jwks(value)
        return value

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.identity_issuer == DEVELOPMENT_IDENTITY_ISSUER:
            problems.append(
                f"{self.env_name('identity_issuer')} must name the real identity provider"
            )
        return problems
