"""Signed tokens: issuing, verifying each kind, forgeries, key rotation and key fetching."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from walletcore import keytool
from walletcore.errors import PermissionDenied, Unauthenticated, Unavailable
from walletcore.identity import Caller, CallerKind, OperatorRole
from walletcore.keys import format_key_spec, generate_key
from walletcore.tokens import (
    DEVELOPMENT_IDENTITY_ISSUER,
    DEVELOPMENT_IDENTITY_KEYS_LABEL,
    AccessTokenVerifier,
    CachingKeySet,
    GrantVerifier,
    OperatorTokenVerifier,
    ServiceTokenVerifier,
    SigningKeyRing,
    StaticKeySet,
    TokenIssuer,
    TokenKind,
)

ISSUER = "wallet-auth"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ring() -> SigningKeyRing:
    return SigningKeyRing([generate_key("k1")])


@pytest.fixture
def issuer(ring: SigningKeyRing, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(ISSUER, ring, clock)


def _access(ring: SigningKeyRing, clock: FakeClock, issuer: str = ISSUER) -> AccessTokenVerifier:
    return AccessTokenVerifier(StaticKeySet(ring.public_jwks()), issuer, clock=clock)


def _grants(ring: SigningKeyRing, clock: FakeClock) -> GrantVerifier:
    return GrantVerifier(StaticKeySet(ring.public_jwks()), ISSUER, clock=clock)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned_parts(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _sign_raw(ring: SigningKeyRing, payload: dict[str, Any], typ: str) -> str:
    """Sign arbitrary claims with the ring's key, as a compromised or buggy issuer would."""
    kid, key = ring.active
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid, "typ": typ})


# Each kind round trips


async def test_access_token_round_trips(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    issued = issuer.access_token(account_id="acc-1", session_id="ses-1")

    caller = await _access(ring, clock).verify(issued.token)

    assert caller == Caller(kind=CallerKind.USER, subject="acc-1", session_id="ses-1")
    assert issued.expires_at == clock.now + timedelta(minutes=15)
    assert jwt.get_unverified_header(issued.token)["kid"] == "k1"
    assert {"iss", "sub", "aud", "iat", "exp", "jti"} <= _claims(issued.token).keys()


async def test_step_up_grant_round_trips(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    issued = issuer.step_up_grant(account_id="acc-1", purpose="UNBIND_CARD", object_id="card-9")

    grant = await _grants(ring, clock).verify(
        issued.token, account_id="acc-1", purpose="UNBIND_CARD", object_id="card-9"
    )

    assert (grant.jti, grant.account_id, grant.purpose, grant.object_id) == (
        issued.token_id,
        "acc-1",
        "UNBIND_CARD",
        "card-9",
    )
    assert grant.expires_at == clock.now + timedelta(minutes=5)


async def test_grants_get_distinct_ids(issuer: TokenIssuer) -> None:
    first = issuer.step_up_grant(account_id="acc-1", purpose="DISABLE_TOTP")
    second = issuer.step_up_grant(account_id="acc-1", purpose="DISABLE_TOTP")

    assert first.token_id != second.token_id


async def test_operator_token_round_trips(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    issued = issuer.operator_token(
        operator_id="op-7", role=OperatorRole.KYC_REVIEWER, ttl=timedelta(hours=1)
    )
    verifier = OperatorTokenVerifier(StaticKeySet(ring.public_jwks()), ISSUER, clock=clock)

    caller = await verifier.verify(issued.token)

    assert caller.kind is CallerKind.OPERATOR
    assert caller.subject == "op-7"
    assert caller.roles == frozenset({"kyc_reviewer"})


async def test_service_token_round_trips_for_allowed_callers_only(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    verifier = ServiceTokenVerifier(
        StaticKeySet(ring.public_jwks()),
        ISSUER,
        audience="auth",
        allowed_services={"kyc", "binding"},
        clock=clock,
    )

    kyc = issuer.service_token(service="kyc", audience="auth", ttl=timedelta(minutes=5))
    assert await verifier.verify(kyc.token) == Caller(
        kind=CallerKind.SERVICE, subject="kyc", roles=frozenset({"kyc"})
    )

    refund = issuer.service_token(service="refund", audience="auth", ttl=timedelta(minutes=5))
    with pytest.raises(PermissionDenied) as caught:
        await verifier.verify(refund.token)
    assert caught.value.reason == "SERVICE_NOT_ALLOWED"


async def test_service_token_for_another_service_is_refused(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    verifier = ServiceTokenVerifier(
        StaticKeySet(ring.public_jwks()),
        ISSUER,
        audience="binding",
        allowed_services={"refund"},
        clock=clock,
    )
    meant_for_auth = issuer.service_token(
        service="refund", audience="auth", ttl=timedelta(minutes=5)
    )

    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(meant_for_auth.token)
    assert caught.value.reason == "TOKEN_INVALID"


# One kind is never accepted as another


async def test_grant_is_refused_as_an_access_token(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    grant = issuer.step_up_grant(account_id="acc-1", purpose="UNBIND_CARD")

    with pytest.raises(PermissionDenied) as caught:
        await _access(ring, clock).verify(grant.token)
    assert caught.value.reason == "WRONG_TOKEN_KIND"


async def test_access_token_is_refused_as_a_grant(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    access = issuer.access_token(account_id="acc-1", session_id="ses-1")

    with pytest.raises(PermissionDenied) as caught:
        await _grants(ring, clock).verify(access.token, account_id="acc-1", purpose="UNBIND_CARD")
    assert caught.value.reason == "GRANT_INVALID"


async def test_user_tokens_are_refused_on_the_admin_port(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    verifier = OperatorTokenVerifier(StaticKeySet(ring.public_jwks()), ISSUER, clock=clock)
    access = issuer.access_token(account_id="acc-1", session_id="ses-1")

    with pytest.raises(PermissionDenied):
        await verifier.verify(access.token)


# Bad tokens


async def test_expired_access_token_is_refused(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    issued = issuer.access_token(account_id="acc-1", session_id="ses-1", ttl=timedelta(minutes=5))
    verifier = _access(ring, clock)

    clock.advance(minutes=5, seconds=5)
    assert (await verifier.verify(issued.token)).subject == "acc-1"  # within the skew leeway

    clock.advance(minutes=1)
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(issued.token)
    assert caught.value.reason == "TOKEN_EXPIRED"


async def test_token_issued_in_the_future_is_refused(
    ring: SigningKeyRing, clock: FakeClock
) -> None:
    ahead = FakeClock()
    ahead.advance(minutes=2)
    issued = TokenIssuer(ISSUER, ring, ahead).access_token(account_id="acc-1", session_id="s")

    with pytest.raises(Unauthenticated) as caught:
        await _access(ring, clock).verify(issued.token)
    assert caught.value.reason == "TOKEN_INVALID"


async def test_wrong_issuer_is_refused(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    issued = issuer.access_token(account_id="acc-1", session_id="ses-1")

    with pytest.raises(Unauthenticated) as caught:
        await _access(ring, clock, issuer="someone-else").verify(issued.token)
    assert caught.value.reason == "TOKEN_INVALID"


async def test_tampered_signature_and_payload_are_refused(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    token = issuer.access_token(account_id="acc-1", session_id="ses-1").token
    header, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    claims = {**_claims(token), "sub": "acc-2"}
    other_payload = _b64(json.dumps(claims).encode())

    for forged in (f"{header}.{payload}.{flipped}", f"{header}.{other_payload}.{signature}"):
        with pytest.raises(Unauthenticated) as caught:
            await _access(ring, clock).verify(forged)
        assert caught.value.reason == "TOKEN_INVALID"


async def test_alg_none_forgery_is_refused(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    claims = _claims(issuer.access_token(account_id="acc-1", session_id="ses-1").token)
    header = {"alg": "none", "kid": "k1", "typ": TokenKind.ACCESS.typ}

    with pytest.raises(Unauthenticated):
        await _access(ring, clock).verify(_unsigned_parts(header, claims) + ".")


async def test_hs256_forgery_with_the_public_key_is_refused(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    claims = _claims(issuer.access_token(account_id="acc-1", session_id="ses-1").token)
    header = {"alg": "HS256", "kid": "k1", "typ": TokenKind.ACCESS.typ}
    public_x = ring.public_jwks()[0]["x"]
    signing_input = _unsigned_parts(header, claims)

    for secret in (public_x.encode(), base64.urlsafe_b64decode(public_x + "=")):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(Unauthenticated):
            await _access(ring, clock).verify(f"{signing_input}.{_b64(mac)}")


async def test_token_signed_by_a_stranger_with_a_known_kid_is_refused(
    ring: SigningKeyRing, clock: FakeClock
) -> None:
    stranger = SigningKeyRing([generate_key("k1")])
    forged = TokenIssuer(ISSUER, stranger, clock).access_token(account_id="acc-1", session_id="s")

    with pytest.raises(Unauthenticated):
        await _access(ring, clock).verify(forged.token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 10_000])
async def test_malformed_tokens_are_refused_without_a_key_fetch(
    token: str, clock: FakeClock
) -> None:
    fetches = 0

    async def fetch() -> list[dict[str, Any]]:
        nonlocal fetches
        fetches += 1
        return []

    verifier = AccessTokenVerifier(CachingKeySet(fetch, timedelta(minutes=5), clock=clock), ISSUER)

    with pytest.raises(Unauthenticated):
        await verifier.verify(token)
    assert fetches == 0


async def test_lifetime_caps_hold_at_verification(ring: SigningKeyRing, clock: FakeClock) -> None:
    now = int(clock.now.timestamp())
    long_lived = {
        "iss": ISSUER,
        "sub": "acc-1",
        "aud": "wallet",
        "sid": "s",
        "jti": "j",
        "iat": now,
        "exp": now + 3600,
    }

    with pytest.raises(Unauthenticated) as caught:
        await _access(ring, clock).verify(_sign_raw(ring, long_lived, TokenKind.ACCESS.typ))
    assert caught.value.reason == "TOKEN_INVALID"


async def test_operator_token_with_an_unknown_role_is_refused(
    ring: SigningKeyRing, clock: FakeClock
) -> None:
    now = int(clock.now.timestamp())
    claims = {
        "iss": ISSUER,
        "sub": "op-1",
        "aud": "wallet-admin",
        "role": "superuser",
        "jti": "j",
        "iat": now,
        "exp": now + 60,
    }
    verifier = OperatorTokenVerifier(StaticKeySet(ring.public_jwks()), ISSUER, clock=clock)

    with pytest.raises(Unauthenticated):
        await verifier.verify(_sign_raw(ring, claims, TokenKind.OPERATOR.typ))


# Time-to-live caps when issuing


@pytest.mark.parametrize(
    "mint",
    [
        lambda i: i.step_up_grant(account_id="a", purpose="P", ttl=timedelta(minutes=10)),
        lambda i: i.access_token(account_id="a", session_id="s", ttl=timedelta(minutes=16)),
        lambda i: i.access_token(account_id="a", session_id="s", ttl=timedelta(0)),
        lambda i: i.operator_token(operator_id="o", role="security_officer", ttl=timedelta(days=1)),
        lambda i: i.service_token(service="kyc", audience="auth", ttl=timedelta(hours=2)),
    ],
)
def test_issuing_beyond_a_kinds_lifetime_is_refused(issuer: TokenIssuer, mint: Any) -> None:
    with pytest.raises(ValueError, match="token lives"):
        mint(issuer)


def test_issuing_an_operator_token_with_an_unknown_role_is_refused(issuer: TokenIssuer) -> None:
    with pytest.raises(ValueError, match="superuser"):
        issuer.operator_token(operator_id="o", role="superuser", ttl=timedelta(hours=1))


# Grants


@pytest.mark.parametrize(
    ("expected", "reason"),
    [
        ({"account_id": "acc-2", "purpose": "UNBIND_CARD", "object_id": "card-9"}, "ACCOUNT"),
        ({"account_id": "acc-1", "purpose": "CHANGE_PHONE", "object_id": "card-9"}, "PURPOSE"),
        ({"account_id": "acc-1", "purpose": "UNBIND_CARD", "object_id": "card-8"}, "OBJECT"),
        ({"account_id": "acc-1", "purpose": "UNBIND_CARD", "object_id": None}, "OBJECT"),
    ],
)
async def test_grant_mismatches_name_what_differs(
    issuer: TokenIssuer,
    ring: SigningKeyRing,
    clock: FakeClock,
    expected: dict[str, Any],
    reason: str,
) -> None:
    grant = issuer.step_up_grant(account_id="acc-1", purpose="UNBIND_CARD", object_id="card-9")

    with pytest.raises(PermissionDenied) as caught:
        await _grants(ring, clock).verify(grant.token, **expected)
    assert caught.value.reason == f"GRANT_{reason}_MISMATCH"


async def test_grant_without_object_does_not_cover_an_object(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    grant = issuer.step_up_grant(account_id="acc-1", purpose="UNBIND_CARD")

    with pytest.raises(PermissionDenied) as caught:
        await _grants(ring, clock).verify(
            grant.token, account_id="acc-1", purpose="UNBIND_CARD", object_id="card-9"
        )
    assert caught.value.reason == "GRANT_OBJECT_MISMATCH"


async def test_expired_and_forged_grants_are_refused(
    issuer: TokenIssuer, ring: SigningKeyRing, clock: FakeClock
) -> None:
    grant = issuer.step_up_grant(account_id="acc-1", purpose="DISABLE_TOTP")
    verifier = _grants(ring, clock)

    with pytest.raises(PermissionDenied) as forged:
        await verifier.verify(grant.token + "x", account_id="acc-1", purpose="DISABLE_TOTP")
    assert forged.value.reason == "GRANT_INVALID"

    clock.advance(minutes=6)
    with pytest.raises(PermissionDenied) as expired:
        await verifier.verify(grant.token, account_id="acc-1", purpose="DISABLE_TOTP")
    assert expired.value.reason == "GRANT_EXPIRED"


# Key rotation


def test_public_jwks_publish_every_key_without_private_parts() -> None:
    ring = SigningKeyRing([generate_key("new"), generate_key("old")])

    jwks = ring.public_jwks()

    assert [jwk["kid"] for jwk in jwks] == ["new", "old"]
    for jwk in jwks:
        assert jwk.keys() == {"kty", "crv", "x", "kid", "alg", "use"}
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )


async def test_token_signed_by_a_retired_key_verifies_until_the_key_leaves(
    clock: FakeClock,
) -> None:
    old, new = generate_key("old"), generate_key("new")
    token = TokenIssuer(ISSUER, SigningKeyRing([old]), clock).access_token(
        account_id="acc-1", session_id="s"
    )

    rotated = SigningKeyRing([new, old])
    assert (await _access(rotated, clock).verify(token.token)).subject == "acc-1"
    fresh = TokenIssuer(ISSUER, rotated, clock).access_token(account_id="acc-1", session_id="s")
    assert jwt.get_unverified_header(fresh.token)["kid"] == "new"

    with pytest.raises(Unauthenticated):
        await _access(SigningKeyRing([new]), clock).verify(token.token)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"},
        {"kty": "OKP", "crv": "X25519", "kid": "k", "x": "A" * 43},
        {"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "A" * 43, "alg": "HS256"},
        {"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "A" * 43, "d": "A" * 43},
        {"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "short"},
        {"kty": "OKP", "crv": "Ed25519", "x": "A" * 43},
    ],
)
def test_static_key_set_accepts_only_public_ed25519_keys(jwk: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="key"):
        StaticKeySet([jwk])


class CountingFetch:
    def __init__(self, jwks: list[dict[str, Any]]) -> None:
        self.jwks = jwks
        self.calls = 0

    async def __call__(self) -> list[dict[str, Any]]:
        self.calls += 1
        return list(self.jwks)


async def test_caching_key_set_fetches_once_per_ttl(clock: FakeClock) -> None:
    ring = SigningKeyRing([generate_key("k1")])
    fetch = CountingFetch(ring.public_jwks())
    keyset = CachingKeySet(fetch, timedelta(minutes=10), clock=clock)

    for _ in range(5):
        assert await keyset.public_key("k1") is not None
    assert fetch.calls == 1

    clock.advance(minutes=10)
    assert await keyset.public_key("k1") is not None
    assert fetch.calls == 2


async def test_caching_key_set_refetches_once_for_a_new_kid(clock: FakeClock) -> None:
    old, new = generate_key("old"), generate_key("new")
    fetch = CountingFetch(SigningKeyRing([old]).public_jwks())
    verifier = AccessTokenVerifier(
        CachingKeySet(fetch, timedelta(minutes=10), clock=clock), ISSUER, clock=clock
    )
    issued_before = TokenIssuer(ISSUER, SigningKeyRing([old]), clock)
    await verifier.verify(issued_before.access_token(account_id="a", session_id="s").token)

    rotated = SigningKeyRing([new, old])
    fetch.jwks = rotated.public_jwks()
    token = TokenIssuer(ISSUER, rotated, clock).access_token(account_id="a", session_id="s")

    assert (await verifier.verify(token.token)).subject == "a"
    assert (await verifier.verify(token.token)).subject == "a"
    assert fetch.calls == 2


async def test_unknown_kids_cannot_hammer_the_fetcher(clock: FakeClock) -> None:
    ring = SigningKeyRing([generate_key("k1")])
    fetch = CountingFetch(ring.public_jwks())
    keyset = CachingKeySet(
        fetch, timedelta(minutes=10), min_refetch_interval=timedelta(seconds=30), clock=clock
    )

    for number in range(20):
        assert await keyset.public_key(f"made-up-{number}") is None
    assert fetch.calls == 2  # the first load, then one refetch for an unknown kid

    clock.advance(seconds=30)
    assert await keyset.public_key("made-up-again") is None
    assert fetch.calls == 3


async def test_caching_key_set_fails_closed_on_unusable_keys(clock: FakeClock) -> None:
    fetch = CountingFetch([{"kty": "RSA", "kid": "k1"}])
    verifier = AccessTokenVerifier(
        CachingKeySet(fetch, timedelta(minutes=10), clock=clock), ISSUER, clock=clock
    )
    token = TokenIssuer(ISSUER, SigningKeyRing([generate_key("k1")]), clock).access_token(
        account_id="a", session_id="s"
    )

    with pytest.raises(Unavailable):
        await verifier.verify(token.token)


# Development tokens from the key tool


async def test_keytool_mints_operator_tokens_the_development_verifier_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["operator-token", "--operator-id", "op-1", "--role", "security_officer"]
    assert keytool.main(argv) == 0
    token = capsys.readouterr().out.strip()
    ring = SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL)

    caller = await OperatorTokenVerifier(
        StaticKeySet(ring.public_jwks()), DEVELOPMENT_IDENTITY_ISSUER
    ).verify(token)

    assert caller.subject == "op-1"
    assert caller.has_role(OperatorRole.SECURITY_OFFICER)


async def test_keytool_signs_service_tokens_with_a_key_spec_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key("prod1")
    monkeypatch.setenv("TEST_SIGNING_KEYS", format_key_spec([key]))
    argv = ["service-token", "--service", "kyc", "--audience", "auth"]

    assert keytool.main([*argv, "--signing-keys-env", "NO_SUCH_VARIABLE"]) == 2
    assert keytool.main([*argv, "--signing-keys-env", "TEST_SIGNING_KEYS"]) == 0
    token = capsys.readouterr().out.strip()

    caller = await ServiceTokenVerifier(
        StaticKeySet(SigningKeyRing([key]).public_jwks()),
        DEVELOPMENT_IDENTITY_ISSUER,
        audience="auth",
        allowed_services={"kyc"},
    ).verify(token)
    assert caller == Caller(kind=CallerKind.SERVICE, subject="kyc", roles=frozenset({"kyc"}))


async def test_a_token_verified_before_stops_verifying_when_its_key_leaves_the_fetched_set(
    clock: FakeClock,
) -> None:
    old, new = generate_key("old"), generate_key("new")
    token = TokenIssuer(ISSUER, SigningKeyRing([old]), clock).access_token(
        account_id="acc-1", session_id="s"
    )
    fetch = CountingFetch(SigningKeyRing([new, old]).public_jwks())
    verifier = AccessTokenVerifier(
        CachingKeySet(fetch, ttl=timedelta(minutes=1), clock=clock), ISSUER, clock=clock
    )
    assert (await verifier.verify(token.token)).subject == "acc-1"
    assert (await verifier.verify(token.token)).subject == "acc-1"

    fetch.jwks = SigningKeyRing([new]).public_jwks()
    clock.advance(minutes=2)

    with pytest.raises(Unauthenticated):
        await verifier.verify(token.token)
