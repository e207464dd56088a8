"""The authorization matrix: every RPC of every port x every credential that must not pass.

A service's test lists its ports (`MatrixPort`: the channel, the service descriptor, the kind of
caller it admits, and per RPC the operator roles or service names it admits), and
`refusals(...)` builds the credentials that must be turned away there: none, garbage, and the
right kind of token expired, signed by another key, or with `alg: none`; a user's token on
admin and internal ports; an operator of a role the RPC does not admit; a service the RPC does
not admit, or the right service with a token for another audience. `run_matrix` sends each
(RPC, credential) with an empty request (a request id where the RPC takes one) and asserts
UNAUTHENTICATED or PERMISSION_DENIED; a control row with the right credential must get past
authorization, so a port that refuses everything does not pass by accident.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Final

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from services.auth.bootstrap import DEVELOPMENT_KEYS_LABEL
from tests.support.fuzz import CALL_TIMEOUT_SECONDS, assert_no_server_fault, method_path
from tests.support.profiles import count_matrix_refusals
from walletcore.identity import OperatorRole
from walletcore.keys import DEVELOPMENT_KID, KeyMaterial
from walletcore.tokens import (
    DEVELOPMENT_IDENTITY_ISSUER,
    DEVELOPMENT_IDENTITY_KEYS_LABEL,
    MAX_TOKEN_CHARS,
    SigningKeyRing,
    TokenIssuer,
)

Metadata = tuple[tuple[str, str], ...]
CONTROL: Final = "control: past authorization"
REFUSALS: Final = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})

IDENTITY_RING: Final = SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL)
AUTH_RING: Final = SigningKeyRing.development(DEVELOPMENT_KEYS_LABEL)
# A stranger's key under the id the real key has: only the signature can tell them apart.
STRANGER_RING: Final = SigningKeyRing([KeyMaterial(DEVELOPMENT_KID, secrets.token_bytes(32))])


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def _long_ago() -> datetime:
    return datetime.now(UTC) - timedelta(days=1)


def without_signature(token: str) -> str:
    """`token` re-sent with `alg: none` and no signature (the classic JWT forgery)."""
    header_part, payload_part, _ = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_part + "=" * (-len(header_part) % 4)))
    header["alg"] = "none"
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{encoded}.{payload_part}."


class Caller(Enum):
    """The kind of caller a port admits."""

    USER = "user"
    OPERATOR = "operator"
    SERVICE = "service"


@dataclass(frozen=True)
class Issuers:
    """Who signs what in the stand: auth signs user tokens, the identity provider the rest."""

    auth_issuer: str

    def user(self, *, ring: SigningKeyRing = AUTH_RING, clock: Any = None) -> str:
        issuer = TokenIssuer(self.auth_issuer, ring, **({"clock": clock} if clock else {}))
        return issuer.access_token(account_id=uuid.uuid4().hex, session_id=uuid.uuid4().hex).token

    def operator(
        self, role: OperatorRole, *, ring: SigningKeyRing = IDENTITY_RING, clock: Any = None
    ) -> str:
        issuer = TokenIssuer(
            DEVELOPMENT_IDENTITY_ISSUER, ring, **({"clock": clock} if clock else {})
        )
        return issuer.operator_token(
            operator_id="operator-matrix", role=role, ttl=timedelta(hours=1)
        ).token

    def service(
        self,
        service: str,
        audience: str,
        *,
        ring: SigningKeyRing = IDENTITY_RING,
        clock: Any = None,
    ) -> str:
        issuer = TokenIssuer(
            DEVELOPMENT_IDENTITY_ISSUER, ring, **({"clock": clock} if clock else {})
        )
        return issuer.service_token(
            service=service, audience=audience, ttl=timedelta(hours=1)
        ).token


@dataclass(frozen=True)
class MatrixPort:
    """One served port. `roles` (operator ports) or `services` (internal ports) name, per RPC,
    who is admitted; an RPC left out admits what `default` names. `audience` is the service
    name the port's service tokens must be addressed to. `user_token` is a real signed-in
    user's metadata (for the control row of user ports and the user-token-elsewhere rows);
    `controls` gives an RPC's control row other credentials (SignOut would end `user_token`'s
    session). `signed_out` RPCs admit anyone by design and are left out of the matrix."""

    name: str
    channel: grpc.aio.Channel
    service: ServiceDescriptor
    caller: Caller
    audience: str
    user_token: Metadata
    default: frozenset[str] = frozenset()
    per_rpc: Mapping[str, frozenset[str]] = field(default_factory=dict)
    controls: Mapping[str, Metadata] = field(default_factory=dict)
    signed_out: frozenset[str] = frozenset()

    def admitted(self, method: str) -> frozenset[str]:
        return self.per_rpc.get(method, self.default)


@dataclass(frozen=True)
class Credential:
    name: str
    metadata: Metadata
    refused_with: frozenset[grpc.StatusCode] = REFUSALS


# Every service a token could name: the four services, payments and a stranger.
SERVICES: Final = ("auth", "kyc", "binding", "refund", "payments", "mallory")


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


# Tokens a parser could trip on: JSON that is not an object, a header naming no key or a key
# id of any type, claims of the wrong types, sizes past the limit, a scheme without a token.
MALFORMED: Final = (
    ("three empty objects", bearer("e30.e30.e30")),
    ("header a list", bearer(f"{_b64([1])}.{_b64({})}.c2ln")),
    ("header a string", bearer(f"{_b64('x')}.{_b64({})}.c2ln")),
    ("kid a number", bearer(f"{_b64({'alg': 'EdDSA', 'kid': 7})}.{_b64({})}.c2ln")),
    ("kid a list", bearer(f"{_b64({'alg': 'EdDSA', 'kid': ['dev']})}.{_b64({})}.c2ln")),
    ("claims a list", bearer(f"{_b64({'alg': 'EdDSA', 'kid': 'dev'})}.{_b64([])}.c2ln")),
    (
        "exp a string",
        bearer(f"{_b64({'alg': 'EdDSA', 'kid': 'dev'})}.{_b64({'exp': 'soon'})}.c2ln"),
    ),
    ("not base64", bearer("!!!.???.***")),
    ("scheme only", (("authorization", "Bearer"),)),
    ("another scheme", (("authorization", "Basic dXNlcjpwYXNz"),)),
    ("two headers", (("authorization", "Bearer x"), ("authorization", "Bearer y"))),
)


def refusals(port: MatrixPort, method: str, issuers: Issuers) -> list[Credential]:
    """Every credential that must be refused on `method` of `port`."""
    admitted = port.admitted(method)
    rows = [
        Credential("no token", ()),
        Credential("garbage token", bearer("garbage")),
        *(Credential(f"malformed token ({name})", metadata) for name, metadata in MALFORMED),
        # Past the verifiers' limit is past gRPC's metadata soft limit (8 KiB) too, where the
        # transport refuses some calls at random before the server sees them.
        Credential(
            "malformed token (longer than the limit)",
            bearer("a" * (MAX_TOKEN_CHARS + 1)),
            REFUSALS | {grpc.StatusCode.RESOURCE_EXHAUSTED},
        ),
    ]
    if port.caller is Caller.USER:
        rows += [
            Credential("expired user token", bearer(issuers.user(clock=_long_ago))),
            Credential("user token, another key", bearer(issuers.user(ring=STRANGER_RING))),
            Credential("user token, alg none", bearer(without_signature(issuers.user()))),
        ]
    else:
        rows.append(Credential("user token on a non-user port", port.user_token))
    right = _right_token(port, admitted, issuers)
    if port.caller is Caller.OPERATOR:
        role = OperatorRole(next(iter(sorted(admitted))))
        rows += [
            Credential("expired operator", bearer(issuers.operator(role, clock=_long_ago))),
            Credential("operator, another key", bearer(issuers.operator(role, ring=STRANGER_RING))),
            Credential("operator, alg none", bearer(without_signature(right))),
        ]
        rows += [
            Credential(f"wrong-role operator ({other.value})", bearer(issuers.operator(other)))
            for other in OperatorRole
            if other.value not in admitted
        ]
    else:
        rows += [
            Credential(
                f"operator ({role.value}) on a non-operator port", bearer(issuers.operator(role))
            )
            for role in OperatorRole
        ]
    if port.caller is Caller.SERVICE:
        service = next(iter(sorted(admitted)))
        rows += [
            Credential(
                "expired service token",
                bearer(issuers.service(service, port.audience, clock=_long_ago)),
            ),
            Credential(
                "service token, another key",
                bearer(issuers.service(service, port.audience, ring=STRANGER_RING)),
            ),
            Credential("service token, alg none", bearer(without_signature(right))),
            Credential(
                "right service, another audience",
                bearer(issuers.service(service, "auth" if port.audience != "auth" else "kyc")),
            ),
        ]
        rows += [
            Credential(
                f"wrong service identity ({other})", bearer(issuers.service(other, port.audience))
            )
            for other in SERVICES
            if other not in admitted
        ]
    else:
        rows.append(
            Credential(
                "service token on a non-service port",
                bearer(issuers.service("refund", port.audience)),
            )
        )
    return rows


def _right_token(port: MatrixPort, admitted: frozenset[str], issuers: Issuers) -> str:
    if port.caller is Caller.OPERATOR:
        return issuers.operator(OperatorRole(next(iter(sorted(admitted)))))
    if port.caller is Caller.SERVICE:
        return issuers.service(next(iter(sorted(admitted))), port.audience)
    return port.user_token[0][1].removeprefix("Bearer ")


def control(port: MatrixPort, method: str, issuers: Issuers) -> Credential:
    """The credential `method` admits: the matrix is only meaningful if it gets past."""
    if method in port.controls:
        return Credential("the admitted caller", port.controls[method])
    if port.caller is Caller.USER:
        return Credential("a signed-in user", port.user_token)
    return Credential(
        "the admitted caller", bearer(_right_token(port, port.admitted(method), issuers))
    )


def empty_request(port: MatrixPort, method: str) -> Message:
    descriptor = port.service.methods_by_name[method].input_type
    request = GetMessageClass(descriptor)()
    if "request_id" in descriptor.fields_by_name:
        request.request_id = uuid.uuid4().hex  # type: ignore[attr-defined]
    return request


async def _call(
    port: MatrixPort, method: str, request: Message, metadata: Metadata
) -> tuple[grpc.StatusCode, str, bytes]:
    stub: Any = port.channel.unary_unary(
        method_path(port.service.methods_by_name[method]),
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=lambda data: data,
    )
    try:
        reply = await stub(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or "", b""
    return grpc.StatusCode.OK, "", reply


async def run_matrix(
    ports: Sequence[MatrixPort],
    issuers: Issuers,
    *,
    request_for: Callable[[MatrixPort, str], Message] = empty_request,
) -> Counter[str]:
    """Sends every refusal of every RPC of every port; returns the count of refused calls per
    credential (plus "control: past authorization"). Leaks are collected, then asserted at once
    so one run lists them all."""
    counts: Counter[str] = Counter()
    leaks: list[str] = []
    for port in ports:
        for method in port.service.methods:
            if method.name in port.signed_out:
                continue
            request = request_for(port, method.name)
            for credential in refusals(port, method.name, issuers):
                code, details, reply = await _call(port, method.name, request, credential.metadata)
                assert_no_server_fault(
                    code, details, f"{port.name} {method.name} {credential.name}"
                )
                if code in credential.refused_with and not reply:
                    counts[credential.name] += 1
                else:
                    leaks.append(f"{port.name} {method.name} with {credential.name}: {code.name}")
            right = control(port, method.name, issuers)
            code, details, _ = await _call(port, method.name, request, right.metadata)
            assert_no_server_fault(code, details, f"{port.name} {method.name} control")
            assert code not in REFUSALS, (
                f"{port.name} {method.name} refused {right.name}: {code.name} {details}"
            )
            counts[CONTROL] += 1
    assert leaks == [], "\n".join(leaks)
    count_matrix_refusals(sum(counts.values()) - counts[CONTROL])
    return counts


def summary(service: str, counts: Counter[str]) -> str:
    width = max(map(len, counts))
    lines = [f"{service}: authorization matrix, refused calls per credential"]
    lines += [f"  {name:<{width}}  {count:>4}" for name, count in sorted(counts.items())]
    refused = sum(counts.values()) - counts[CONTROL]
    lines.append(f"  {'total refused':<{width}}  {refused:>4}")
    return "\n".join(lines)
