"""Signed tokens: access tokens, step-up grants, operator and service identities.

Every token is an EdDSA (Ed25519) JWS with `iss`, `sub`, `aud`, `iat`, `exp`, `jti` and a
`kid` header. Each kind has its own `typ` header (explicit typing, RFC 8725 section 3.11), so
one kind can never be accepted as another, and its own maximum lifetime, enforced when issuing
and again when verifying.

Keys rotate like every other key here (walletcore.keys): the first key of a `SigningKeyRing`
signs, and `public_jwks()` publishes ALL keys, so a token signed just before a rotation still
verifies until its key leaves the ring. Verifiers find keys through a `KeySet`: a static one from
configuration, or `CachingKeySet`, which fetches the issuer's published keys.

Verification pins the algorithm to EdDSA (no `none`, no HS*, no algorithm confusion), and
checks issuer, audience, type and times against an injectable clock with a small leeway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from walletcore.clock import Clock, utc_now
from walletcore.errors import PermissionDenied, Unauthenticated, Unavailable
from walletcore.identity import Caller, CallerKind, OperatorRole
from walletcore.keys import KeyMaterial, development_keys, parse_key_spec

"""Returns the current time, timezone-aware. Injected so tests move time instead of sleeping."""

ALGORITHM = "EdDSA"
USER_AUDIENCE = "wallet"
OPERATOR_AUDIENCE = "wallet-admin"
CLOCK_SKEW_LEEWAY = timedelta(seconds=15)
MAX_TOKEN_CHARS = 8192
VERIFIED_TOKENS_KEPT = 2048
"""How many verified tokens each verifier remembers (see `_Decoder`), about 2 KiB each."""

# The development ring and issuer that operator and service tokens use in the embedded mode and
# that `python -m walletcore.keytool` signs with by default.
DEVELOPMENT_IDENTITY_KEYS_LABEL = "operator-and-service-identities"
DEVELOPMENT_IDENTITY_ISSUER = "wallet-dev-identities"


class TokenKind(enum.Enum):
    """Each kind's `typ` header value and the longest lifetime it may have."""

    ACCESS = ("wallet-access+jwt", timedelta(minutes=15))
    STEP_UP_GRANT = ("wallet-grant+jwt", timedelta(minutes=5))
    OPERATOR = ("wallet-operator+jwt", timedelta(hours=8))
    SERVICE = ("wallet-service+jwt", timedelta(hours=1))

    def __init__(self, typ: str, max_lifetime: timedelta) -> None:
        self.typ = typ
        self.max_lifetime = max_lifetime


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    token_id: str
    """The `jti` claim."""
    expires_at: datetime


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SigningKeyRing:
    """Ed25519 signing keys built from 32-byte seeds; the first key signs."""

    def __init__(self, keys: Sequence[KeyMaterial]) -> None:
        if not keys:
            raise ValueError("a signing key ring needs at least one key")
        if len({key.kid for key in keys}) != len(keys):
            raise ValueError("a signing key ring cannot hold two keys with the same key id")
        self._keys = [(key.kid, Ed25519PrivateKey.from_private_bytes(key.secret)) for key in keys]

    @classmethod
    def from_spec(cls, spec: str) -> SigningKeyRing:
        return cls(parse_key_spec(spec))

    @classmethod
    def development(cls, label: str) -> SigningKeyRing:
        """A ring from the public development seed: for the embedded mode and tests only."""
        return cls(development_keys(f"ed25519/{label}"))

    @property
    def active(self) -> tuple[str, Ed25519PrivateKey]:
        return self._keys[0]

    def public_jwks(self) -> list[dict[str, str]]:
        """The public JWK of every key in the ring, active first."""
        return [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": _b64url_encode(
                    private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
                ),
                "kid": kid,
                "alg": ALGORITHM,
                "use": "sig",
            }
            for kid, private in self._keys
        ]


class TokenIssuer:
    """Signs tokens of every kind as `issuer` with the ring's active key."""

    def __init__(self, issuer: str, ring: SigningKeyRing, clock: Clock = utc_now) -> None:
        self._issuer = issuer
        self._ring = ring
        self._clock = clock

    @property
    def clock(self) -> Clock:
        """The clock whose times the issued tokens carry."""
        return self._clock

    def access_token(
        self, *, account_id: str, session_id: str, ttl: timedelta = TokenKind.ACCESS.max_lifetime
    ) -> IssuedToken:
        return self._issue(TokenKind.ACCESS, account_id, USER_AUDIENCE, ttl, {"sid": session_id})

    def step_up_grant(
        self,
        *,
        account_id: str,
        purpose: str,
        object_id: str | None = None,
        ttl: timedelta = TokenKind.STEP_UP_GRANT.max_lifetime,
    ) -> IssuedToken:
        """A grant for one sensitive action (`purpose`), on one object where it applies."""
        claims = (
            {"purpose": purpose} if object_id is None else {"purpose": purpose, "obj": object_id}
        )
        return self._issue(TokenKind.STEP_UP_GRANT, account_id, USER_AUDIENCE, ttl, claims)

    def operator_token(
        self, *, operator_id: str, role: OperatorRole | str, ttl: timedelta
    ) -> IssuedToken:
        """Raises ValueError for a role that is not an `OperatorRole`."""
        return self._issue(
            TokenKind.OPERATOR,
            operator_id,
            OPERATOR_AUDIENCE,
            ttl,
            {"role": OperatorRole(role).value},
        )

    def service_token(self, *, service: str, audience: str, ttl: timedelta) -> IssuedToken:
        """An identity of `service` for calling the service named `audience`."""
        if not audience:
            raise ValueError("a service token needs the name of the service it calls")
        return self._issue(TokenKind.SERVICE, service, audience, ttl, {})

    def _issue(
        self,
        kind: TokenKind,
        subject: str,
        audience: str,
        ttl: timedelta,
        claims: Mapping[str, str],
    ) -> IssuedToken:
        if not timedelta(seconds=1) <= ttl <= kind.max_lifetime:
            minutes = int(kind.max_lifetime.total_seconds()) // 60
            raise ValueError(f"a {kind.name.lower()} token lives 1 second to {minutes} minutes")
        if not subject:
            raise ValueError("a token needs a subject")
        issued_at = int(self._clock().timestamp())
        expires_at = issued_at + int(ttl.total_seconds())
        token_id = secrets.token_urlsafe(16)
        payload = {
            **claims,
            "iss": self._issuer,
            "sub": subject,
            "aud": audience,
            "iat": issued_at,
            "exp": expires_at,
            "jti": token_id,
        }
        kid, private_key = self._ring.active
        token = jwt.encode(
            payload, private_key, algorithm=ALGORITHM, headers={"kid": kid, "typ": kind.typ}
        )
        return IssuedToken(
            token=token, token_id=token_id, expires_at=datetime.fromtimestamp(expires_at, UTC)
        )


class KeySet(Protocol):
    """Where verifiers find an issuer's public keys."""

    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The key with this id, or None when the issuer has no such key."""
        ...


def parse_jwks(jwks: Iterable[Mapping[str, Any]]) -> dict[str, Ed25519PublicKey]:
    """Ed25519 signature keys by kid. Raises ValueError for anything else, or a repeated kid."""
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in jwks:
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or kid in keys:
            raise ValueError("every published key needs a distinct kid")
        key_type = (jwk.get("kty"), jwk.get("crv"), jwk.get("alg", ALGORITHM))
        if key_type != ("OKP", "Ed25519", ALGORITHM):
            raise ValueError("only Ed25519 EdDSA keys are accepted")
        if jwk.get("use", "sig") != "sig" or "d" in jwk:
            raise ValueError("only public signature keys are accepted")
        x = jwk.get("x")
        try:
            raw = _b64url_decode(x) if isinstance(x, str) else b""
            keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError):
            raise ValueError("a published key has a malformed public key") from None
    return keys


class StaticKeySet:
    """A fixed set of public keys, e.g. from configuration or a ring in the same process."""

    def __init__(self, jwks: Iterable[Mapping[str, Any]]) -> None:
        self._keys = parse_jwks(jwks)

    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)


class CachingKeySet:
    """An issuer's published keys, fetched on demand and cached for `ttl`.

    An unknown kid triggers one refetch, because the issuer may have just rotated; unknown kids
    refetch at most once per `min_refetch_interval`, so tokens with made-up kids cannot hammer the
    issuer. Fetch errors propagate (the fetcher raises e.g. `Unavailable`): verification fails
    closed.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[list[dict[str, Any]]]],
        ttl: timedelta,
        *,
        min_refetch_interval: timedelta = timedelta(seconds=30),
        clock: Clock = utc_now,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._min_refetch_interval = min_refetch_interval
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: datetime | None = None
        self._unknown_kid_refetched_at: datetime | None = None
        # One fetch at a time: callers queued behind it then find the fresh keys.
        self._lock = asyncio.Lock()

    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        async with self._lock:
            if self._is_stale():
                await self._refresh()
            elif kid not in self._keys and self._may_refetch_for_unknown_kid():
                # Counted before fetching, so failing fetches are rate-limited too.
                self._unknown_kid_refetched_at = self._clock()
                await self._refresh()
            return self._keys.get(kid)

    def _is_stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._ttl

    def _may_refetch_for_unknown_kid(self) -> bool:
        last = self._unknown_kid_refetched_at
        return last is None or self._clock() - last >= self._min_refetch_interval

    async def _refresh(self) -> None:
        jwks = await self._fetch()
        try:
            keys = parse_jwks(jwks)
        except ValueError:
            raise Unavailable("the issuer published unusable signing keys") from None
        self._keys = keys
        self._fetched_at = self._clock()


class _Rejected(Exception):
    """The token is not valid (bad signature, issuer, audience, times or claims)."""


class _Expired(_Rejected):
    pass


class _WrongKind(_Rejected):
    """A valid token of another kind."""


@dataclass(frozen=True, slots=True)
class _Verified:
    key: Ed25519PublicKey
    kid: str
    claims: Mapping[str, Any]


class _TooLong(_Rejected):
    """Correctly signed, but living longer than its kind may: not from a conforming issuer."""


class _Decoder:
    """The checks every kind shares; returns the verified claims or raises a `_Rejected`.

    A client presents the same token on every call until it expires, and checking the
    signature was most of a verification's cost; so the last `VERIFIED_TOKENS_KEPT` tokens
    that passed are remembered with the key that verified them. A remembered token is
    accepted again only while its key set still answers its kid with that same key (a key
    that left the set, or a refetched set, means a full verification), and its times are
    checked against the clock on every call, so it still expires exactly on time. Only tokens
    that passed are kept, the least recently presented leaving first: made-up tokens cannot
    fill the memory.
    """

    def __init__(
        self, keyset: KeySet, issuer: str, kind: TokenKind, audience: str, clock: Clock
    ) -> None:
        self._keyset = keyset
        self._issuer = issuer
        self._kind = kind
        self._audience = audience
        self._clock = clock
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    async def claims(self, token: str) -> Mapping[str, Any]:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise _Rejected
        remembered = self._verified.get(token)
        if remembered is not None and await self._keyset.public_key(remembered.kid) is (
            remembered.key
        ):
            self._check_times(remembered.claims)
            self._verified.move_to_end(token)
            return remembered.claims
        return await self._verify(token)

    async def _verify(self, token: str) -> Mapping[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _Rejected from None
        kid = header.get("kid")
        # Checked before the key lookup so forged headers never reach a key fetch.
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise _Rejected
        key = await self._keyset.public_key(kid)
        if key is None:
            raise _Rejected
        try:
            decoded = jwt.decode_complete(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                # Times are checked below against the injected clock; audience after the type.
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "sub", "aud", "iat", "exp", "jti"],
                },
            )
        except jwt.PyJWTError:
            raise _Rejected from None
        claims: dict[str, Any] = decoded["payload"]
        try:
            self._check_times(claims)
        except _TooLong:
            # Only a token of this kind can be too long for it; another kind is just invalid.
            if decoded["header"].get("typ") != self._kind.typ:
                raise _Rejected from None
            raise
        if decoded["header"].get("typ") != self._kind.typ:
            raise _WrongKind
        if (
            claims["aud"] != self._audience
            or not _is_text(claims["sub"])
            or not _is_text(claims["jti"])
        ):
            raise _Rejected
        verified = MappingProxyType(claims)
        self._verified[token] = _Verified(key, kid, verified)
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)
        return verified

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        issued_at, expires_at, not_before = (
            claims["iat"],
            claims["exp"],
            claims.get("nbf", claims["iat"]),
        )
        if not all(_is_timestamp(value) for value in (issued_at, expires_at, not_before)):
            raise _Rejected
        now = self._clock().timestamp()
        leeway = CLOCK_SKEW_LEEWAY.total_seconds()
        if issued_at > now + leeway or not_before > now + leeway:
            raise _Rejected
        if expires_at - issued_at > self._kind.max_lifetime.total_seconds():
            raise _TooLong
        if expires_at <= issued_at:
            raise _Rejected
        if now >= expires_at + leeway:
            raise _Expired


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _is_timestamp(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _credential_error(rejection: _Rejected) -> Unauthenticated | PermissionDenied:
    if isinstance(rejection, _WrongKind):
        return PermissionDenied(
            "this kind of token is not accepted here", reason="WRONG_TOKEN_KIND"
        )
    if isinstance(rejection, _Expired):
        return Unauthenticated("the token has expired", reason="TOKEN_EXPIRED")
    return Unauthenticated("the token is not valid", reason="TOKEN_INVALID")


class AccessTokenVerifier:
    """Users on the public port: access tokens from auth."""

    def __init__(self, keyset: KeySet, issuer: str, *, clock: Clock = utc_now) -> None:
        self._decoder = _Decoder(keyset, issuer, TokenKind.ACCESS, USER_AUDIENCE, clock)

    async def verify(self, token: str) -> Caller:
        try:
            claims = await self._decoder.claims(token)
            if not _is_text(claims.get("sid")):
                raise _Rejected
        except _Rejected as rejection:
            raise _credential_error(rejection) from None
        return Caller(kind=CallerKind.USER, subject=claims["sub"], session_id=claims["sid"])


class OperatorTokenVerifier:
    """Operators on the admin port: the caller carries the token's one role."""

    def __init__(self, keyset: KeySet, issuer: str, *, clock: Clock = utc_now) -> None:
        self._decoder = _Decoder(keyset, issuer, TokenKind.OPERATOR, OPERATOR_AUDIENCE, clock)

    async def verify(self, token: str) -> Caller:
        try:
            claims = await self._decoder.claims(token)
            if claims.get("role") not in {role.value for role in OperatorRole}:
                raise _Rejected
        except _Rejected as rejection:
            raise _credential_error(rejection) from None
        return Caller(
            kind=CallerKind.OPERATOR, subject=claims["sub"], roles=frozenset({claims["role"]})
        )


class ServiceTokenVerifier:
    """Other services on the internal port: tokens addressed to `audience` (this service)
    from one of `allowed_services`; any other service gets PermissionDenied."""

    def __init__(
        self,
        keyset: KeySet,
        issuer: str,
        *,
        audience: str,
        allowed_services: Collection[str],
        clock: Clock = utc_now,
    ) -> None:
        self._decoder = _Decoder(keyset, issuer, TokenKind.SERVICE, audience, clock)
        self._allowed_services = frozenset(allowed_services)

    async def verify(self, token: str) -> Caller:
        try:
            claims = await self._decoder.claims(token)
        except _Rejected as rejection:
            raise _credential_error(rejection) from None
        if claims["sub"] not in self._allowed_services:
            raise PermissionDenied(
                "this service may not call this API", reason="SERVICE_NOT_ALLOWED"
            )
        # The service's name doubles as its role, so a port can grant one method to one
        # caller (`require_roles("binding")`) and keep least privilege between services.
        return Caller(
            kind=CallerKind.SERVICE, subject=claims["sub"], roles=frozenset({claims["sub"]})
        )


@dataclass(frozen=True, slots=True)
class VerifiedGrant:
    jti: str
    account_id: str
    purpose: str
    object_id: str | None
    expires_at: datetime


class GrantVerifier:
    """Checks a step-up grant for one action of one account, on one object where it applies.

    A grant is valid for several uses until it expires: accepting it ONCE is the consumer's job.
    Record `VerifiedGrant.jti` (e.g. a unique row kept until `expires_at`) in the transaction
    that performs the action, and refuse a jti already recorded.
    """

    def __init__(self, keyset: KeySet, issuer: str, *, clock: Clock = utc_now) -> None:
        self._decoder = _Decoder(keyset, issuer, TokenKind.STEP_UP_GRANT, USER_AUDIENCE, clock)

    async def verify(
        self, token: str, *, account_id: str, purpose: str, object_id: str | None = None
    ) -> VerifiedGrant:
        try:
            claims = await self._decoder.claims(token)
        except _Expired:
            raise PermissionDenied(
                "the step-up grant has expired", reason="GRANT_EXPIRED"
            ) from None
        except _TooLong:
            raise PermissionDenied(
                "the step-up grant lives longer than 5 minutes", reason="GRANT_LIFETIME_TOO_LONG"
            ) from None
        except _Rejected:
            raise PermissionDenied(
                "the step-up grant is not valid", reason="GRANT_INVALID"
            ) from None
        granted_object = claims.get("obj")
        if not _is_text(claims.get("purpose")) or not (
            granted_object is None or _is_text(granted_object)
        ):
            raise PermissionDenied("the step-up grant is not valid", reason="GRANT_INVALID")
        if claims["sub"] != account_id:
            raise PermissionDenied(
                "the step-up grant is for another account", reason="GRANT_ACCOUNT_MISMATCH"
            )
        if claims["purpose"] != purpose:
            raise PermissionDenied(
                "the step-up grant is for another action", reason="GRANT_PURPOSE_MISMATCH"
            )
        if granted_object != object_id:
            raise PermissionDenied(
                "the step-up grant is for another object", reason="GRANT_OBJECT_MISMATCH"
            )
        return VerifiedGrant(
            jti=claims["jti"],
            account_id=account_id,
            purpose=purpose,
            object_id=object_id,
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
