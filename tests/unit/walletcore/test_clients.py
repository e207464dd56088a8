"""The internal client factory's parts that need no peer: service tokens, retry config, TLS
settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from walletcore.grpc.clients import InternalTargetOptions, ServiceTokens, service_config
from walletcore.tokens import (
    DEVELOPMENT_IDENTITY_ISSUER,
    DEVELOPMENT_IDENTITY_KEYS_LABEL,
    ServiceTokenVerifier,
    SigningKeyRing,
    StaticKeySet,
    TokenIssuer,
)

pytestmark = pytest.mark.unit

RING = SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL)


class MovableClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_a_service_token_is_reused_then_reminted_before_it_expires() -> None:
    clock = MovableClock()
    tokens = ServiceTokens(
        TokenIssuer(DEVELOPMENT_IDENTITY_ISSUER, RING, clock),
        "kyc",
        ttl=timedelta(minutes=10),
        refresh_before=timedelta(minutes=2),
    )
    first = tokens.token_for("auth")
    clock.now += timedelta(minutes=7, seconds=59)
    assert tokens.token_for("auth") == first
    clock.now += timedelta(seconds=1)
    second = tokens.token_for("auth")
    assert second != first

    verifier = ServiceTokenVerifier(
        StaticKeySet(RING.public_jwks()),
        DEVELOPMENT_IDENTITY_ISSUER,
        audience="auth",
        allowed_services=["kyc"],
        clock=clock,
    )
    caller = await verifier.verify(second)
    assert caller.subject == "kyc"


def test_tokens_are_per_audience() -> None:
    tokens = ServiceTokens(TokenIssuer(DEVELOPMENT_IDENTITY_ISSUER, RING), "kyc")
    assert tokens.token_for("auth") != tokens.token_for("binding")


def test_only_the_named_reads_retry_and_only_on_unavailable() -> None:
    config = json.loads(
        service_config([("wallet.auth.v1.AccountStatusService", "GetAccountStatus")])
    )
    (method,) = config["methodConfig"]
    assert method["name"] == [
        {"service": "wallet.auth.v1.AccountStatusService", "method": "GetAccountStatus"}
    ]
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert json.loads(service_config([])) == {"methodConfig": []}


def test_production_refuses_a_plaintext_channel_unless_allowed(tmp_path: Path) -> None:
    assert InternalTargetOptions().production_problems("KYC_AUTH_INTERNAL") == [
        "KYC_AUTH_INTERNAL__CA_FILE must be set (or KYC_AUTH_INTERNAL__ALLOW_INSECURE=true)"
    ]
    assert InternalTargetOptions(allow_insecure=True).production_problems("X") == []
    assert InternalTargetOptions(ca_file=tmp_path / "ca.pem").production_problems("X") == []


def test_a_client_certificate_needs_its_key_and_tls() -> None:
    with pytest.raises(ValidationError):
        InternalTargetOptions(ca_file=Path("ca.pem"), cert_file=Path("cert.pem"))
    with pytest.raises(ValidationError):
        InternalTargetOptions(cert_file=Path("cert.pem"), key_file=Path("key.pem"))
