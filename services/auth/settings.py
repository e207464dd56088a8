"""Auth's settings: `AUTH_*` environment variables on top of walletcore's ServiceSettings.

Keys arrive as `kid:base64url` specs (walletcore.keys), the first entry active:

    AUTH_ENCRYPTION_KEYS        TOTP secrets, sealed outbox messages, stored idempotent answers
    AUTH_SIGNING_KEYS           auth's Ed25519 keys for access tokens and step-up grants
    AUTH_HASH_KEYS              keyed hashes of codes, refresh tokens, tickets, recovery codes
    AUTH_CONTACT_INDEX_KEYS     the blind index that finds accounts by phone or email
    AUTH_RATE_LIMIT_SUBJECT_KEY keys the hashes of rate-limit subjects in Redis (phone numbers)
    AUTH_IDENTITY_KEYS_JWKS     JSON list of the identity provider's public JWKs, which sign
                                operator and service tokens (issuer AUTH_IDENTITY_ISSUER)

The development profile derives each missing key from the public development seed (see
`services.auth.bootstrap.AuthKeys`); production refuses to start without every one of them.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from walletcore.settings import (
    Jwks,
    NotifierSettings,
    Profile,
    ServiceSettings,
    checked_key_spec,
    checked_public_jwks,
)
from walletcore.tokens import DEVELOPMENT_IDENTITY_ISSUER


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_")

    _REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = (
        *ServiceSettings._REQUIRED_SECRETS,
        "hash_keys",
        "contact_index_keys",
        "rate_limit_subject_key",
        "identity_keys_jwks",
    )

    service_name: str = "auth"
    notifier: NotifierSettings = NotifierSettings()

    hash_keys: SecretStr | None = None
    contact_index_keys: SecretStr | None = None
    rate_limit_subject_key: SecretStr | None = None
    """A key spec; its active key keys the hashes of rate-limit subjects."""
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

    _key_specs = field_validator(
        "encryption_keys",
        "signing_keys",
        "hash_keys",
        "contact_index_keys",
        "rate_limit_subject_key",
    )(checked_key_spec)
    _identity_jwks = field_validator("identity_keys_jwks")(checked_public_jwks)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.identity_issuer == DEVELOPMENT_IDENTITY_ISSUER:
            problems.append(
                f"{self.env_name('identity_issuer')} must name the real identity provider"
            )
        return problems
