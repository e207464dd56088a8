"""Auth as its composition root wires it: three ports, who may call what, health, metrics."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import grpc.aio
import httpx
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select

from services.auth.adapters.tables import idempotency_records
from services.auth.api.auth_service import unimplemented_rpcs
from services.auth.bootstrap import (
    ADMIN_SERVICE,
    AUTH_SERVICE,
    SIGNED_OUT_RPCS,
    STATUS_SERVICE,
    admin_policy,
    internal_policy,
    public_policy,
)
from services.auth.service.fakes import FakeClock
from tests.api.auth.conftest import (
    AuthTestApp,
    StartAuth,
    email_contact,
    operator_metadata,
    request_id,
    service_metadata,
)
from wallet.auth.v1 import (
    account_admin_service_pb2,
    account_status_service_pb2,
    auth_service_pb2,
)
from wallet.common.v1 import contact_pb2
from walletcore.clock import utc_now
from walletcore.grpc.access import PUBLIC
from walletcore.grpc.status import error_details
from walletcore.idempotency import IDEMPOTENCY_RETENTION
from walletcore.identity import OperatorRole

SERVING = health_pb2.HealthCheckResponse.SERVING
# Access checks happen in the interceptors, before any storage: one backend shows them.
ONE_BACKEND = pytest.mark.parametrize("auth_backend", ["sqlite"], indirect=True)


def test_every_auth_service_rpc_is_implemented() -> None:
    assert unimplemented_rpcs() == []


def test_every_method_of_every_port_has_an_access_rule() -> None:
    for service, policy in (
        (AUTH_SERVICE, public_policy()),
        (ADMIN_SERVICE, admin_policy()),
        (STATUS_SERVICE, internal_policy()),
    ):
        assert set(policy) == {f"/{service.full_name}/{m.name}" for m in service.methods}


def test_exactly_the_signed_out_rpcs_are_public() -> None:
    public = {
        full_name.rpartition("/")[2]
        for full_name, rule in public_policy().items()
        if rule is PUBLIC
    }

    assert public == SIGNED_OUT_RPCS


@pytest.mark.parametrize(
    ("port", "service"),
    [
        ("public", AUTH_SERVICE.full_name),
        ("admin", ADMIN_SERVICE.full_name),
        ("internal", STATUS_SERVICE.full_name),
    ],
)
@ONE_BACKEND
async def test_each_port_reports_serving(auth_app: AuthTestApp, port: str, service: str) -> None:
    health = health_pb2_grpc.HealthStub(auth_app.channels[port])

    overall = await health.Check(health_pb2.HealthCheckRequest())
    own = await health.Check(health_pb2.HealthCheckRequest(service=service))

    assert (overall.status, own.status) == (SERVING, SERVING)


async def test_a_registered_user_reads_their_account_with_the_token_registration_gave(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register(email=auth_app.new_email())

    reply = await auth_app.public.GetAccount(
        auth_service_pb2.GetAccountRequest(), metadata=user.metadata
    )

    assert reply.account.account_id == user.account_id


@ONE_BACKEND
async def test_an_authenticated_rpc_without_a_token_is_unauthenticated(
    auth_app: AuthTestApp,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth_app.public.GetAccount(auth_service_pb2.GetAccountRequest())

    details = error_details(refused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


async def test_a_user_token_on_the_admin_port_is_not_a_credential_there(
    auth_app: AuthTestApp,
) -> None:
    # UNAUTHENTICATED, not PERMISSION_DENIED: the admin port trusts only the identity
    # provider's keys, and auth's own signature on a user token does not verify under them,
    # so the token is no credential at all there (whatever kind it claims to be).
    user = await auth_app.register()

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth_app.admin.GetAccount(
            account_admin_service_pb2.AccountAdminServiceGetAccountRequest(
                account_id=user.account_id
            ),
            metadata=user.metadata,
        )

    details = error_details(refused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


@ONE_BACKEND
async def test_an_operator_without_the_security_officer_role_is_denied(
    auth_app: AuthTestApp,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth_app.admin.FindAccount(
            account_admin_service_pb2.FindAccountRequest(
                contact=email_contact("someone@example.com")
            ),
            metadata=operator_metadata(OperatorRole.KYC_REVIEWER),
        )

    details = error_details(refused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")


async def test_a_security_officer_is_admitted_on_the_admin_port(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()

    found = await auth_app.admin.FindAccount(
        account_admin_service_pb2.FindAccountRequest(contact=user.contact),
        metadata=operator_metadata(),
    )

    assert found.account_id == user.account_id


@ONE_BACKEND
async def test_a_service_outside_the_wallet_is_denied_on_the_internal_port(
    auth_app: AuthTestApp,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth_app.internal.ListSigningKeys(
            account_status_service_pb2.ListSigningKeysRequest(),
            metadata=service_metadata("payments"),
        )

    details = error_details(refused.value)
    assert (details.code, details.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "SERVICE_NOT_ALLOWED",
    )


@ONE_BACKEND
async def test_only_binding_may_drive_a_contact_change(auth_app: AuthTestApp) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth_app.internal.CompleteContactChange(
            account_status_service_pb2.CompleteContactChangeRequest(
                request_id=request_id(), verification_id="v1", code="123456"
            ),
            metadata=service_metadata("kyc"),
        )

    details = error_details(refused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")


async def test_the_published_signing_keys_verify_the_access_tokens_auth_issues(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()

    reply = await auth_app.internal.ListSigningKeys(
        account_status_service_pb2.ListSigningKeysRequest(), metadata=service_metadata("kyc")
    )

    current = [key for key in reply.keys if key.current]
    assert len(current) == 1
    public_key = jwt.PyJWK.from_json(current[0].public_jwk)
    claims = jwt.decode(
        user.tokens.access_token, public_key, algorithms=["EdDSA"], audience="wallet"
    )
    assert claims["sub"] == user.account_id


async def test_sign_in_is_limited_per_identifier_however_it_is_spelled(
    auth_app: AuthTestApp,
) -> None:
    address = auth_app.new_email()
    spellings = [address, address.upper()]
    refusal = None
    for attempt in range(11):
        identifier = contact_pb2.Contact(email=spellings[attempt % 2])
        try:
            await auth_app.sign_in(identifier, "not the password")
        except grpc.aio.AioRpcError as error:
            refusal = error_details(error)
            if refusal.reason == "RATE_LIMITED":
                break

    assert refusal is not None
    assert (refusal.code, refusal.reason, attempt) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
        10,
    )
    assert [v.subject for v in refusal.quota_violations] == ["sign_in_per_account_minute"]


@ONE_BACKEND
async def test_metrics_count_the_rpcs_auth_served(auth_app: AuthTestApp) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await auth_app.public.GetAccount(auth_service_pb2.GetAccountRequest())

    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{auth_app.ports['metrics']}/metrics")

    assert response.status_code == 200
    assert (
        'grpc_server_handled_total{grpc_code="UNAUTHENTICATED",'
        'grpc_method="GetAccount",grpc_service="wallet.auth.v1.AuthService"} 1.0'
    ) in response.text


async def request_ids_recorded(app: AuthTestApp) -> set[str]:
    async with app.app.engine.connect() as connection:
        return set(await connection.scalars(select(idempotency_records.c.request_id)))


async def test_the_service_purges_idempotency_records_past_their_retention(
    start_auth: StartAuth,
) -> None:
    clock = FakeClock(utc_now())
    async with start_auth(clock=clock, idempotency_purge_interval_seconds=0.05) as app:
        user = await app.register(email=app.new_email())
        old = await request_ids_recorded(app)
        clock.advance(IDEMPOTENCY_RETENTION + timedelta(minutes=1))
        await app.signed_in(user)
        fresh = await request_ids_recorded(app) - old

        # The purge runs every 0.05 s of real time; a minute is ample on a loaded machine.
        for _ in range(1200):
            if await request_ids_recorded(app) == fresh:
                break
            await asyncio.sleep(0.05)

        assert old
        assert len(fresh) == 1
        assert await request_ids_recorded(app) == fresh
