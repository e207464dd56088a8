"""Consuming auth's step-up grants in another service: what is refused, and why, and once."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest

from walletcore.errors import PermissionDenied
from walletcore.fakes import FakeClock
from walletcore.grants import GrantAcceptance, accept_grant
from walletcore.keys import KeyMaterial, generate_key
from walletcore.tokens import CachingKeySet, GrantVerifier, SigningKeyRing, TokenIssuer

AUTH_ISSUER = "wallet-auth"


class MemoryConsumedGrants:
    def __init__(self) -> None:
        self.rows: dict[str, datetime] = {}

    async def consume(self, jti: str, expires_at: datetime) -> bool:
        if jti in self.rows:
            return False
        self.rows[jti] = expires_at
        return True


class PublishedKeys:
    """Auth's ListSigningKeys: what it publishes now, and how often it was asked."""

    def __init__(self, ring: SigningKeyRing) -> None:
        self.ring = ring
        self.fetches = 0

    async def fetch(self) -> list[dict[str, Any]]:
        self.fetches += 1
        return [dict(jwk) for jwk in self.ring.public_jwks()]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def auth_key() -> KeyMaterial:
    return generate_key("auth-1")


@pytest.fixture
def auth_ring(auth_key: KeyMaterial) -> SigningKeyRing:
    return SigningKeyRing([auth_key])


@pytest.fixture
def published(auth_ring: SigningKeyRing) -> PublishedKeys:
    return PublishedKeys(auth_ring)


@pytest.fixture
def auth(auth_ring: SigningKeyRing, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(AUTH_ISSUER, auth_ring, clock)


@pytest.fixture
def consumed() -> MemoryConsumedGrants:
    return MemoryConsumedGrants()


@pytest.fixture
def grants(
    published: PublishedKeys, clock: FakeClock, consumed: MemoryConsumedGrants
) -> GrantAcceptance:
    keyset = CachingKeySet(published.fetch, timedelta(minutes=5), clock=clock)
    return GrantAcceptance(GrantVerifier(keyset, AUTH_ISSUER, clock=clock), consumed)


def unbind_grant(auth: TokenIssuer, card_id: str = "card-1") -> str:
    return auth.step_up_grant(account_id="acc-1", purpose="UNBIND_CARD", object_id=card_id).token


async def refusal(grants: GrantAcceptance, token: str, **overrides: str) -> PermissionDenied:
    action = {"account_id": "acc-1", "purpose": "UNBIND_CARD", "object_id": "card-1"}
    with pytest.raises(PermissionDenied) as caught:
        await grants.accept(token, **{**action, **overrides})
    return caught.value


async def test_a_grant_for_exactly_this_action_is_accepted_and_recorded(
    auth: TokenIssuer, grants: GrantAcceptance, consumed: MemoryConsumedGrants, clock: FakeClock
) -> None:
    issued = auth.step_up_grant(account_id="acc-1", purpose="UNBIND_CARD", object_id="card-1")

    grant = await grants.accept(
        issued.token, account_id="acc-1", purpose="UNBIND_CARD", object_id="card-1"
    )

    assert (grant.jti, grant.account_id, grant.object_id) == (issued.token_id, "acc-1", "card-1")
    assert consumed.rows == {issued.token_id: clock.now + timedelta(minutes=5)}


async def test_a_grant_is_accepted_once(auth: TokenIssuer, grants: GrantAcceptance) -> None:
    token = unbind_grant(auth)
    await grants.accept(token, account_id="acc-1", purpose="UNBIND_CARD", object_id="card-1")

    error = await refusal(grants, token)

    assert error.reason == "GRANT_ALREADY_USED"


@pytest.mark.parametrize(
    ("override", "cause", "message"),
    [
        ({"purpose": "CHANGE_PHONE"}, "PURPOSE_MISMATCH", "another action"),
        ({"object_id": "card-2"}, "OBJECT_MISMATCH", "another object"),
        ({"account_id": "acc-2"}, "ACCOUNT_MISMATCH", "another account"),
    ],
)
async def test_a_grant_for_another_action_is_invalid_naming_what_differs(
    auth: TokenIssuer,
    grants: GrantAcceptance,
    consumed: MemoryConsumedGrants,
    override: dict[str, str],
    cause: str,
    message: str,
) -> None:
    error = await refusal(grants, unbind_grant(auth), **override)

    assert (error.reason, error.metadata) == ("GRANT_INVALID", {"cause": cause})
    assert message in error.message
    assert consumed.rows == {}


async def test_a_refused_grant_stays_usable_for_its_own_action(
    auth: TokenIssuer, grants: GrantAcceptance
) -> None:
    token = unbind_grant(auth)
    await refusal(grants, token, object_id="card-2")

    grant = await grants.accept(
        token, account_id="acc-1", purpose="UNBIND_CARD", object_id="card-1"
    )

    assert grant.object_id == "card-1"


async def test_a_forged_grant_is_invalid(
    auth_ring: SigningKeyRing, grants: GrantAcceptance, clock: FakeClock
) -> None:
    # Same key id as auth's key, another private key: only the signature gives it away.
    forger = TokenIssuer(AUTH_ISSUER, SigningKeyRing([generate_key("auth-1")]), clock)
    forged = forger.step_up_grant(account_id="acc-1", purpose="UNBIND_CARD", object_id="card-1")

    error = await refusal(grants, forged.token)

    assert (error.reason, error.metadata) == ("GRANT_INVALID", {"cause": "SIGNATURE_OR_FORMAT"})


async def test_an_access_token_is_no_grant(auth: TokenIssuer, grants: GrantAcceptance) -> None:
    access = auth.access_token(account_id="acc-1", session_id="ses-1")

    error = await refusal(grants, access.token)

    assert error.reason == "GRANT_INVALID"


async def test_an_expired_grant_is_refused_as_expired(
    auth: TokenIssuer, grants: GrantAcceptance, clock: FakeClock
) -> None:
    token = unbind_grant(auth)
    # Past the 5 minutes and the verifiers' 15-second clock-skew leeway.
    clock.advance(timedelta(minutes=5, seconds=15))

    error = await refusal(grants, token)

    assert error.reason == "GRANT_EXPIRED"


async def test_a_grant_living_longer_than_five_minutes_is_refused_even_if_auth_signed_it(
    auth_ring: SigningKeyRing, grants: GrantAcceptance, clock: FakeClock
) -> None:
    # TokenIssuer refuses to issue one, so it is signed by hand with auth's own key.
    kid, private_key = auth_ring.active
    issued_at = int(clock.now.timestamp())
    claims = {
        "iss": AUTH_ISSUER,
        "sub": "acc-1",
        "aud": "wallet",
        "iat": issued_at,
        "exp": issued_at + 301,
        "jti": secrets.token_urlsafe(16),
        "purpose": "UNBIND_CARD",
        "obj": "card-1",
    }
    token = jwt.encode(
        claims, private_key, algorithm="EdDSA", headers={"kid": kid, "typ": "wallet-grant+jwt"}
    )

    error = await refusal(grants, token)

    assert (error.reason, error.metadata) == ("GRANT_INVALID", {"cause": "LIFETIME_TOO_LONG"})
    assert "5 minutes" in error.message


async def test_a_grant_signed_with_a_key_auth_rotated_in_is_accepted_without_restart(
    auth: TokenIssuer,
    auth_key: KeyMaterial,
    grants: GrantAcceptance,
    published: PublishedKeys,
    clock: FakeClock,
) -> None:
    await grants.accept(
        unbind_grant(auth), account_id="acc-1", purpose="UNBIND_CARD", object_id="card-1"
    )
    rotated = SigningKeyRing([generate_key("auth-2"), auth_key])
    published.ring = rotated
    fetches_before = published.fetches

    grant = await grants.accept(
        TokenIssuer(AUTH_ISSUER, rotated, clock)
        .step_up_grant(account_id="acc-1", purpose="UNBIND_CARD", object_id="card-2")
        .token,
        account_id="acc-1",
        purpose="UNBIND_CARD",
        object_id="card-2",
    )

    assert grant.object_id == "card-2"
    assert published.fetches == fetches_before + 1


async def test_accept_grant_without_the_wrapper_checks_the_same(
    auth: TokenIssuer, published: PublishedKeys, clock: FakeClock
) -> None:
    keyset = CachingKeySet(published.fetch, timedelta(minutes=5), clock=clock)
    verifier = GrantVerifier(keyset, AUTH_ISSUER, clock=clock)
    consumed = MemoryConsumedGrants()
    token = auth.step_up_grant(account_id="acc-1", purpose="DISABLE_TOTP").token

    grant = await accept_grant(
        verifier, consumed, token, account_id="acc-1", purpose="DISABLE_TOTP"
    )
    with pytest.raises(PermissionDenied) as again:
        await accept_grant(verifier, consumed, token, account_id="acc-1", purpose="DISABLE_TOTP")

    assert grant.object_id is None
    assert again.value.reason == "GRANT_ALREADY_USED"
