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

from walletcore.settings import NotifierSettings, WalletServiceSettings, checked_key_spec


class AuthSettings(WalletServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_")

    _REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = (
        *WalletServiceSettings._REQUIRED_SECRETS,
        "hash_keys",
        "contact_index_keys",
    )

    service_name: str = "auth"
    notifier: NotifierSettings = NotifierSettings()

    hash_keys: SecretStr | None = None
    contact_index_keys: SecretStr | None = None
    code_resend_interval_seconds: int = Field(default=60, ge=1, le=3600)
    """How long one phone number or address waits between two codes (SMS or e-mail)."""

    issuer: str = Field(default="wallet-auth", min_length=1)
    """Auth's own issuer name in the tokens it signs."""

    password_hash_concurrency: int = Field(default=1, ge=1, le=64)
    """Argon2id hashes running at once (about 19 MiB each): the cores the process may use,
    less one for the event loop, which serves every other RPC (with two hashes on two cores,
    `make bench`'s reads waited 6 to 7 times their idle p99 while sign-ins ran)."""
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often the outbox dispatcher looks for messages when it found none."""

    @field_validator("encryption_keys", "signing_keys", "hash_keys", "contact_index_keys")
    @classmethod
    def _is_key_spec(cls, value: SecretStr | None) -> SecretStr | None:
        return checked_key_spec(value)
