"""What every other wallet service asks auth on its internal port: whether an account is
frozen and a session still live, and the keys that verify auth's tokens."""

from __future__ import annotations

import json

import grpc

from tests.api.auth.harness import AuthTestApp, service_metadata
from tests.api.auth.recovery_helpers import refused
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import auth_service_pb2 as auth_pb
from wallet.auth.v1 import types_pb2
from walletcore.tokens import AccessTokenVerifier, StaticKeySet

KYC = service_metadata("kyc")


async def test_the_status_follows_the_account_and_its_session(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()
    other = await auth_app.register()
    request = status_pb.GetAccountStatusRequest(
        account_id=user.account_id, session_id=user.tokens.session_id
    )

    live = await auth_app.internal.GetAccountStatus(request, metadata=KYC)
    await auth_app.public.SignOut(
        auth_pb.SignOutRequest(request_id="sign-out-1"), metadata=user.metadata
    )
    signed_out = await auth_app.internal.GetAccountStatus(request, metadata=KYC)
    someone_elses = await auth_app.internal.GetAccountStatus(
        status_pb.GetAccountStatusRequest(
            account_id=user.account_id, session_id=other.tokens.session_id
        ),
        metadata=KYC,
    )
    unknown = await refused(
        auth_app.internal.GetAccountStatus(
            status_pb.GetAccountStatusRequest(account_id="no-such-account"), metadata=KYC
        )
    )

    assert (live.status, live.session_active, live.totp_enabled) == (
        types_pb2.ACCOUNT_STATUS_ACTIVE,
        True,
        False,
    )
    assert not live.HasField("frozen_at")
    assert signed_out.session_active is False
    assert someone_elses.session_active is False
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")


async def test_the_published_keys_verify_a_users_access_token(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()

    published = await auth_app.internal.ListSigningKeys(
        status_pb.ListSigningKeysRequest(), metadata=service_metadata("binding")
    )

    jwks = [json.loads(key.public_jwk) for key in published.keys]
    assert [key.current for key in published.keys].count(True) == 1
    assert all("d" not in jwk for jwk in jwks)
    assert published.cache_ttl.ToTimedelta().total_seconds() > 0
    verifier = AccessTokenVerifier(StaticKeySet(jwks), auth_app.settings.issuer)
    caller = await verifier.verify(user.tokens.access_token)
    assert (caller.subject, caller.session_id) == (user.account_id, user.tokens.session_id)
