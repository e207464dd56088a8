"""Calling another wallet service's internal port: one channel per target, a service token per
call, a deadline on every call, retries of reads on UNAVAILABLE only, and errors as DomainErrors.

A service's settings name each callee's address the way the stack launcher sets it
(`<PREFIX><CALLEE>_INTERNAL_ADDRESS`) plus that callee's options (`<PREFIX><CALLEE>_INTERNAL__*`):

    class KycSettings(ServiceSettings):
        auth_internal_address: str = "127.0.0.1:50053"
        auth_internal: InternalTargetOptions = InternalTargetOptions()
        service_identity_keys: SecretStr | None = None

    clients = InternalClients(
        ServiceTokens(service_token_issuer(settings.service_identity_keys, issuer), "kyc")
    )
    auth = clients.channel(
        InternalTarget("auth", settings.auth_internal_address, settings.auth_internal),
        reads=[("wallet.auth.v1.AccountStatusService", "GetAccountStatus"), ...],
    )
    stub = AccountStatusServiceStub(auth.channel)
    response = await auth.call(stub.GetAccountStatus, request)
    ...
    await clients.close()

`InternalChannel.call` attaches `authorization: Bearer <service token for the target>` (minted
with the service's identity key, audience = the target's name, re-minted before it expires) and
the incoming call's `x-request-id`, applies the target's deadline, and turns a failed call into
the remote's DomainError with its ErrorInfo reason (walletcore.grpc.status); a target that
cannot be reached, or does not answer in time, is `Unavailable`, never INTERNAL.

TLS: with `ca_file` set the channel is TLS (mutual TLS with `cert_file` and `key_file`);
without, it is plaintext, which the production profile refuses (`production_problems`) unless
`allow_insecure` says the network itself is trusted (e.g. a service mesh doing mTLS).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc
import grpc.aio
from pydantic import BaseModel, Field, SecretStr, model_validator

from walletcore.clock import Clock, utc_now
from walletcore.errors import DomainError, Unavailable
from walletcore.grpc.interceptors import REQUEST_ID_KEY
from walletcore.grpc.status import domain_error_from_rpc
from walletcore.logging import current_request_id
from walletcore.service_kit import configured_or_development
from walletcore.tokens import DEVELOPMENT_IDENTITY_KEYS_LABEL, SigningKeyRing, TokenIssuer

_R = TypeVar("_R")

UNREACHABLE_REASON: Final = "UPSTREAM_UNAVAILABLE"
TIMEOUT_REASON: Final = "UPSTREAM_TIMEOUT"
SERVICE_TOKEN_TTL: Final = timedelta(minutes=10)
SERVICE_TOKEN_REFRESH_BEFORE: Final = timedelta(minutes=2)
"""A token is re-minted this long before it expires, so no call carries one about to lapse."""

# Keepalive: pings every 30 s on an idle connection find a dead peer (or a NAT that dropped the
# connection) before a call does; the server side allows pings this often by default.
_KEEPALIVE_OPTIONS: Final = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)
_READ_RETRY_POLICY: Final = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


class InternalTargetOptions(BaseModel):
    """How to reach one internal target, besides its address."""

    ca_file: Path | None = None
    """PEM roots that sign the target's server certificate; set, the channel is TLS."""
    cert_file: Path | None = None
    """This service's client certificate chain (PEM), for mutual TLS; needs `key_file`."""
    key_file: Path | None = None
    server_name: str | None = None
    """The name the target's certificate is checked against, when not the address's host."""
    deadline_seconds: float = Field(default=2.0, gt=0, le=60)
    """Every call's deadline, retries included."""
    allow_insecure: bool = False
    """Production only: accept a plaintext channel (the network must provide the security)."""

    @model_validator(mode="after")
    def _tls_is_complete(self) -> InternalTargetOptions:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("a client certificate needs ca_file (TLS) too")
        return self

    def production_problems(self, env_name: str) -> list[str]:
        """What production refuses here; `env_name` is this model's variable name."""
        if self.ca_file is None and not self.allow_insecure:
            return [f"{env_name}__CA_FILE must be set (or {env_name}__ALLOW_INSECURE=true)"]
        return []

    def credentials(self) -> grpc.ChannelCredentials | None:
        """The channel's TLS credentials; None for plaintext."""
        if self.ca_file is None:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_file.read_bytes(),
            private_key=self.key_file.read_bytes() if self.key_file else None,
            certificate_chain=self.cert_file.read_bytes() if self.cert_file else None,
        )


@dataclass(frozen=True, slots=True)
class InternalTarget:
    """One service to call: its name (the audience of the tokens it accepts) and address."""

    service: str
    address: str
    options: InternalTargetOptions = field(default_factory=InternalTargetOptions)


def service_token_issuer(
    identity_keys: SecretStr | None, issuer: str, *, clock: Clock = utc_now
) -> TokenIssuer:
    """The issuer of this service's identity tokens: the configured identity signing keys
    (a `kid:base64url` spec), else the development identity ring every service trusts in
    development, its tokens' times read from `clock` (which `ServiceTokens` also re-mints by)."""
    ring = configured_or_development(
        identity_keys,
        SigningKeyRing.from_spec,
        lambda: SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL),
    )
    return TokenIssuer(issuer, ring, clock)


class ServiceTokens:
    """This service's tokens, one per audience, re-minted `refresh_before` their expiry on the
    issuer's own clock (so the tokens' times and the re-minting can never disagree)."""

    def __init__(
        self,
        issuer: TokenIssuer,
        service: str,
        *,
        ttl: timedelta = SERVICE_TOKEN_TTL,
        refresh_before: timedelta = SERVICE_TOKEN_REFRESH_BEFORE,
    ) -> None:
        if refresh_before >= ttl:
            raise ValueError("a token must be refreshed before it expires, not after")
        self._issuer = issuer
        self._service = service
        self._ttl = ttl
        self._refresh_before = refresh_before
        self._tokens: dict[str, tuple[str, datetime]] = {}

    def token_for(self, audience: str) -> str:
        cached = self._tokens.get(audience)
        if cached is not None and self._issuer.clock() < cached[1] - self._refresh_before:
            return cached[0]
        issued = self._issuer.service_token(service=self._service, audience=audience, ttl=self._ttl)
        self._tokens[audience] = (issued.token, issued.expires_at)
        return issued.token


class InternalChannel:
    """A channel to one target; `call` is how every call to it is made."""

    def __init__(
        self, target: InternalTarget, channel: grpc.aio.Channel, tokens: ServiceTokens
    ) -> None:
        self.target = target
        self.channel = channel
        self._tokens = tokens

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The service token for the target and the request id of the call being served."""
        token = self._tokens.token_for(self.target.service)
        request_id = current_request_id()
        entries = [("authorization", f"Bearer {token}")]
        if request_id is not None:
            entries.append((REQUEST_ID_KEY, request_id))
        return tuple(entries)

    async def call(self, method: Callable[..., Awaitable[_R]], request: Any) -> _R:
        """`method` is a stub's bound method, e.g. `stub.GetAccountStatus`."""
        try:
            return await method(
                request, metadata=self.metadata(), timeout=self.target.options.deadline_seconds
            )
        except grpc.aio.AioRpcError as error:
            raise remote_error(error) from None


def remote_error(error: grpc.aio.AioRpcError) -> DomainError:
    """The DomainError a failed internal call stands for (see the module docstring)."""
    code = error.code()
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return Unavailable(
            "a service this request depends on did not answer", reason=TIMEOUT_REASON
        )
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        remote = domain_error_from_rpc(error)
        if isinstance(remote, Unavailable) and remote.reason != Unavailable.reason:
            return remote  # the target answered, naming why (e.g. its own dependency is down)
        return Unavailable(
            "a service this request depends on is unavailable", reason=UNREACHABLE_REASON
        )
    return domain_error_from_rpc(error)


def service_config(reads: Sequence[tuple[str, str]]) -> str:
    """gRPC service config retrying the given (service, method) reads on UNAVAILABLE only:
    writes are never retried by the channel (their callers decide, with idempotency keys)."""
    if not reads:
        return json.dumps({"methodConfig": []})
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": service, "method": method} for service, method in reads],
                    "retryPolicy": _READ_RETRY_POLICY,
                }
            ]
        }
    )


class InternalClients:
    """Makes and owns the channels of one service to its internal targets."""

    def __init__(self, tokens: ServiceTokens) -> None:
        self._tokens = tokens
        self._channels: list[grpc.aio.Channel] = []

    def channel(
        self, target: InternalTarget, *, reads: Sequence[tuple[str, str]] = ()
    ) -> InternalChannel:
        options: list[tuple[str, Any]] = [
            *_KEEPALIVE_OPTIONS,
            ("grpc.enable_retries", 1),
            ("grpc.service_config", service_config(reads)),
        ]
        if target.options.server_name:
            options.append(("grpc.ssl_target_name_override", target.options.server_name))
        credentials = target.options.credentials()
        channel = (
            grpc.aio.secure_channel(target.address, credentials, options=options)
            if credentials is not None
            else grpc.aio.insecure_channel(target.address, options=options)
        )
        self._channels.append(channel)
        return InternalChannel(target, channel, self._tokens)

    async def close(self) -> None:
        channels, self._channels = self._channels, []
        for channel in channels:
            await channel.close()
