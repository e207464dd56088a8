"""Kyc's settings: `KYC_*` environment variables on top of walletcore's ServiceSettings.

Keys arrive as `kid:base64url` specs (walletcore.keys), the first entry active:

    KYC_ENCRYPTION_KEYS          identity data, reviewer notes and document images at rest
    KYC_IDENTITY_INDEX_KEYS      the blind index that finds a document number submitted twice
    KYC_RATE_LIMIT_SUBJECT_KEY   keys the hashes of rate-limit subjects in Redis
    KYC_IDEMPOTENCY_KEYS         keys the stored fingerprints of requests (30 days)
    KYC_SERVICE_IDENTITY_KEYS    kyc's own identity key: signs its service tokens to auth
    KYC_IDENTITY_KEYS_JWKS       JSON list of the identity provider's public JWKs, which sign
                                 operator and service tokens (issuer KYC_IDENTITY_ISSUER)

Auth is reached at KYC_AUTH_INTERNAL_ADDRESS (the stack launcher sets it) with the options
KYC_AUTH_INTERNAL__* (TLS files, deadline). The development profile derives each missing key
from the public development seed; production refuses to start without them.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from walletcore.grpc.clients import InternalTargetOptions
from walletcore.settings import WalletServiceSettings, checked_key_spec

MAX_SUBMISSION_BYTES = 16 * 1024 * 1024
"""Three 5 MiB images and the rest of the request: the receive limit kyc_service.proto sets."""


class KycSettings(WalletServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KYC_")

    # Kyc signs nothing of its own (its service tokens are signed with its identity key).
    _REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = (
        "encryption_keys",
        "identity_index_keys",
        "rate_limit_subject_key",
        "idempotency_keys",
        "service_identity_keys",
        "identity_keys_jwks",
    )

    service_name: str = "kyc"
    max_receive_message_bytes: int = Field(default=MAX_SUBMISSION_BYTES, ge=1024)

    identity_index_keys: SecretStr | None = None
    service_identity_keys: SecretStr | None = None

    auth_issuer: str = Field(default="wallet-auth", min_length=1)
    """The issuer name in auth's access tokens (AUTH_ISSUER)."""
    auth_internal_address: str = Field(default="127.0.0.1:50053", min_length=1)
    auth_internal: InternalTargetOptions = InternalTargetOptions()

    @field_validator(
        "encryption_keys", "signing_keys", "identity_index_keys", "service_identity_keys"
    )
    @classmethod
    def _is_key_spec(cls, value: SecretStr | None) -> SecretStr | None:
        return checked_key_spec(value)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        problems.extend(self.auth_internal.production_problems(self.env_name("auth_internal")))
        return problems
