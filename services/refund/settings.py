"""Refund's settings: `REFUND_*` environment variables on top of walletcore's
WalletServiceSettings.

Keys arrive as `kid:base64url` specs (walletcore.keys), the first entry active:

    REFUND_ENCRYPTION_KEYS          stored idempotent answers, audit export page tokens
    REFUND_RATE_LIMIT_SUBJECT_KEY   keys the hashes of rate-limit subjects in Redis
    REFUND_IDEMPOTENCY_KEYS         keys the stored fingerprints of requests (30 days)
    REFUND_SERVICE_IDENTITY_KEYS    refund's identity key: signs its service tokens to auth
                                    and binding
    REFUND_IDENTITY_KEYS_JWKS       JSON list of the identity provider's public JWKs, which sign
                                    operator and service tokens (issuer REFUND_IDENTITY_ISSUER)

Peers: auth at REFUND_AUTH_INTERNAL_ADDRESS and binding at REFUND_BINDING_INTERNAL_ADDRESS (the
stack launcher sets both), options REFUND_AUTH_INTERNAL__* / REFUND_BINDING_INTERNAL__*. The
payout gateway at REFUND_GATEWAY_URL; left empty in development, refund starts the simulated
gateway inside its own process (production refuses that).

Rules: REFUND_AUTO_APPROVE_LIMITS and REFUND_GRANT_THRESHOLDS are JSON objects of minor units
per currency, e.g. `{"CNY": 20000}`; a currency they do not name is never approved
automatically and always needs a grant. REFUND_REVIEW_WORKING_DAYS is the operators' service
level.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.refund.domain.money import ISO_4217_CURRENCIES
from walletcore.grpc.clients import InternalTargetOptions
from walletcore.settings import WalletServiceSettings, checked_key_spec


def _default_auto_approve() -> dict[str, int]:
    return {"CNY": 20_000, "USD": 5_000, "EUR": 5_000}


def _default_grant_thresholds() -> dict[str, int]:
    return {"CNY": 100_000, "USD": 20_000, "EUR": 20_000}


class RefundSettings(WalletServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REFUND_")

    # Refund signs nothing of its own (its service tokens are signed with its identity key).
    _REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = (
        "encryption_keys",
        "rate_limit_subject_key",
        "idempotency_keys",
        "service_identity_keys",
        "identity_keys_jwks",
    )

    service_name: str = "refund"
    service_identity_keys: SecretStr | None = None

    auth_issuer: str = Field(default="wallet-auth", min_length=1)
    """The issuer name in auth's access tokens and step-up grants (AUTH_ISSUER)."""
    auth_internal_address: str = Field(default="127.0.0.1:50053", min_length=1)
    auth_internal: InternalTargetOptions = InternalTargetOptions()
    binding_internal_address: str = Field(default="127.0.0.1:50073", min_length=1)
    binding_internal: InternalTargetOptions = InternalTargetOptions()

    gateway_url: str = ""
    gateway_timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    auto_approve_limits: dict[str, int] = Field(default_factory=_default_auto_approve)
    grant_thresholds: dict[str, int] = Field(default_factory=_default_grant_thresholds)
    review_working_days: int = Field(default=1, ge=0, le=30)
    payout_estimate_days: int = Field(default=5, ge=0, le=60)
    max_gateway_attempts: int = Field(default=3, ge=1, le=10)

    payout_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    """How often the payout worker looks for approved refunds and unresolved attempts."""
    pending_grace_seconds: float = Field(default=30.0, ge=0, le=86400)
    """How long a PENDING attempt is left alone before the sweep asks the gateway."""

    @field_validator("encryption_keys", "signing_keys", "service_identity_keys")
    @classmethod
    def _is_key_spec(cls, value: SecretStr | None) -> SecretStr | None:
        return checked_key_spec(value)

    @field_validator("auto_approve_limits", "grant_thresholds")
    @classmethod
    def _per_currency(cls, value: dict[str, int]) -> dict[str, int]:
        for currency, minor in value.items():
            if currency not in ISO_4217_CURRENCIES:
                raise ValueError(f"{currency!r} is not an active ISO 4217 currency code")
            if minor < 0:
                raise ValueError("amounts are zero or more minor units")
        return value

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        for name in ("auth_internal", "binding_internal"):
            options: InternalTargetOptions = getattr(self, name)
            problems.extend(options.production_problems(self.env_name(name)))
        if not self.gateway_url:
            problems.append(
                f"{self.env_name('gateway_url')} must name the payout provider: the simulated "
                "gateway is for development"
            )
        return problems
