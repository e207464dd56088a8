"""Users on a non-auth service's public port: auth's access token, checked with auth on every call.

A service wires it as its public port's verifier, over an internal channel to auth
(walletcore.grpc.clients):

    auth = AuthStatusClient(clients.channel(target, reads=AUTH_READS))
    users = ActiveUserVerifier(
        AccessTokenVerifier(auth_keyset(auth), settings.auth_issuer), auth
    )
    Port(PortKind.PUBLIC, [...], policy, verifier=users)

The token's signature is checked with auth's published keys (`ListSigningKeys`, cached by
`CachingKeySet`, refetched when a token names an unknown kid, so a key rotation in auth needs
no restart here). Then every call asks auth (`GetAccountStatus`) about the account and the
session, as auth's own public port does: a frozen account is FAILED_PRECONDITION /
ACCOUNT_FROZEN from the very next request after the freeze returned; an ended session or an
unknown account is UNAUTHENTICATED / SESSION_REVOKED; and when auth cannot answer the call is
UNAVAILABLE (fail closed: nobody is let in unchecked).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Final

from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import account_status_service_pb2_grpc, types_pb2
from walletcore.clock import Clock, utc_now
from walletcore.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from walletcore.grpc.clients import InternalChannel
from walletcore.identity import Caller, CredentialVerifier
from walletcore.tokens import CachingKeySet

STATUS_SERVICE_NAME: Final = "wallet.auth.v1.AccountStatusService"
AUTH_READS: Final = (
    (STATUS_SERVICE_NAME, "GetAccountStatus"),
    (STATUS_SERVICE_NAME, "ListSigningKeys"),
)
"""The reads of auth's internal port, which the channel may retry on UNAVAILABLE."""
AUTH_KEYS_CACHE_TTL: Final = timedelta(minutes=5)
"""Auth's own ListSigningKeys `cache_ttl`."""
ACCOUNT_FROZEN: Final = "ACCOUNT_FROZEN"
SESSION_REVOKED: Final = "SESSION_REVOKED"
AUTH_REFUSED_REASON: Final = "UPSTREAM_REFUSED"


class AuthStatusClient:
    """Auth's AccountStatusService reads, through an internal channel."""

    def __init__(self, channel: InternalChannel) -> None:
        self.channel = channel
        self._stub = account_status_service_pb2_grpc.AccountStatusServiceStub(channel.channel)

    async def account_status(
        self, account_id: str, session_id: str | None = None
    ) -> status_pb.GetAccountStatusResponse:
        request = status_pb.GetAccountStatusRequest(
            account_id=account_id, session_id=session_id or ""
        )
        response: status_pb.GetAccountStatusResponse = await self.channel.call(
            self._stub.GetAccountStatus, request
        )
        return response

    async def signing_keys(self) -> list[dict[str, Any]]:
        """Auth's published public JWKs, every key that may verify a token in circulation."""
        response: status_pb.ListSigningKeysResponse = await self.channel.call(
            self._stub.ListSigningKeys, status_pb.ListSigningKeysRequest()
        )
        try:
            return [json.loads(key.public_jwk) for key in response.keys]
        except ValueError:
            raise Unavailable("auth published unusable signing keys") from None


def auth_keyset(
    auth: AuthStatusClient, *, ttl: timedelta = AUTH_KEYS_CACHE_TTL, clock: Clock = utc_now
) -> CachingKeySet:
    """Auth's signing keys (access tokens and step-up grants), fetched and cached."""
    return CachingKeySet(auth.signing_keys, ttl, clock=clock)


def session_revoked() -> Unauthenticated:
    return Unauthenticated("the session has ended: sign in again", reason=SESSION_REVOKED)


def account_frozen() -> FailedPrecondition:
    return FailedPrecondition("the account is frozen", reason=ACCOUNT_FROZEN)


class ActiveUserVerifier:
    """A valid access token of a live session of an active account, asked of auth per call."""

    def __init__(self, tokens: CredentialVerifier, auth: AuthStatusClient) -> None:
        self._tokens = tokens
        self._auth = auth

    async def verify(self, token: str) -> Caller:
        caller = await self._tokens.verify(token)
        if caller.session_id is None:
            raise session_revoked()
        try:
            status = await self._auth.account_status(caller.subject, caller.session_id)
        except (NotFound, InvalidArgument):
            # A deleted account, or a subject auth does not know: the token is no longer good.
            raise session_revoked() from None
        except Unavailable:
            raise
        except DomainError:
            # Auth refused *this service* (its service token, its role): the user did nothing
            # wrong and must not see that refusal; fail closed.
            raise Unavailable(
                "the account check is unavailable", reason=AUTH_REFUSED_REASON
            ) from None
        if status.status == types_pb2.ACCOUNT_STATUS_FROZEN:
            raise account_frozen()
        if status.status != types_pb2.ACCOUNT_STATUS_ACTIVE:
            raise Unavailable("the account check is unavailable", reason=AUTH_REFUSED_REASON)
        if not status.HasField("session_active") or not status.session_active:
            raise session_revoked()
        return caller
