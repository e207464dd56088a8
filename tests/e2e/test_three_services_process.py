"""Auth, kyc and binding as three processes, as `make run` starts them, each configured by
environment alone: a user registers with auth, is verified by kyc's reviewer, binds a card
whose holder name kyc matches, and a freeze in auth is refused by binding on the next request.

Fixed ports 30100-30111 (no other e2e test uses them): each service learns its peers' addresses
before they start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import grpc
import grpc.aio
import pytest

from tests.api.auth.harness import bearer, operator_metadata
from tests.api.kyc.harness import LEGAL_NAME, RESIDENT_ID, reviewer, submit_request
from tests.e2e.test_kyc_process import (
    ServiceProcess,
    fixed_ports,
    request_id,
    started_in_order,
    stop,
)
from tests.support.notify import SmsWebhookCatcher, extract_code
from wallet.auth.v1 import account_admin_service_pb2 as admin_pb
from wallet.auth.v1 import account_admin_service_pb2_grpc, auth_service_pb2, auth_service_pb2_grpc
from wallet.binding.v1 import binding_service_pb2, binding_service_pb2_grpc
from wallet.binding.v1 import types_pb2 as binding_types
from wallet.common.v1 import client_pb2, contact_pb2
from wallet.kyc.v1 import kyc_review_service_pb2, kyc_review_service_pb2_grpc, kyc_service_pb2_grpc
from wallet.kyc.v1 import types_pb2 as kyc_types
from walletcore.grpc.status import error_details

PHONE: Final = "+8613800138456"
PASSWORD: Final = "correct horse battery staple"
CLIENT: Final = client_pb2.ClientContext(
    device_id="e2e-three-device", platform=client_pb2.PLATFORM_ANDROID
)
TEST_CARD: Final = "4242 4242 4242 4242"
"""The card networks' public test number (Visa)."""
BASE_PORT: Final = 30100


@pytest.fixture
async def three_services(
    tmp_path: Path, sms_webhook_catcher: SmsWebhookCatcher
) -> AsyncIterator[dict[str, ServiceProcess]]:
    ports = fixed_ports(BASE_PORT, ("auth", "kyc", "binding"))
    settings = {
        "auth": {
            "RATE_LIMITER": "memory",
            "OUTBOX_POLL_SECONDS": "0.05",
            "NOTIFIER__SMS_ADAPTER": "webhook",
            "NOTIFIER__SMS_WEBHOOK_URL": sms_webhook_catcher.url,
        },
        "kyc": {
            "RATE_LIMITER": "memory",
            "AUTH_INTERNAL_ADDRESS": f"127.0.0.1:{ports['auth']['INTERNAL']}",
        },
        "binding": {
            "RATE_LIMITER": "memory",
            "VAULT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'binding-vault.db'}",
            "AUTH_INTERNAL_ADDRESS": f"127.0.0.1:{ports['auth']['INTERNAL']}",
            "KYC_INTERNAL_ADDRESS": f"127.0.0.1:{ports['kyc']['INTERNAL']}",
        },
    }
    async with started_in_order(tmp_path, settings, ports) as running:
        yield running


async def register(channel: grpc.aio.Channel, sms: SmsWebhookCatcher) -> tuple[str, str]:
    """A new account of auth, signed in: (account id, access token)."""
    users = auth_service_pb2_grpc.AuthServiceStub(channel)
    started = await users.StartRegistration(
        auth_service_pb2.StartRegistrationRequest(
            request_id=request_id(), password=PASSWORD, contact=contact_pb2.Contact(phone=PHONE)
        )
    )
    registered = await users.CompleteRegistration(
        auth_service_pb2.CompleteRegistrationRequest(
            request_id=request_id(),
            registration_id=started.registration_id,
            code=extract_code((await sms.wait_for(to=PHONE)).text),
            client=CLIENT,
        )
    )
    return registered.account_id, registered.tokens.access_token


async def test_a_verified_user_binds_a_card_and_a_freeze_in_auth_stops_binding(
    three_services: dict[str, ServiceProcess], sms_webhook_catcher: SmsWebhookCatcher
) -> None:
    auth, kyc, binding = (three_services[name] for name in ("auth", "kyc", "binding"))
    async with (
        grpc.aio.insecure_channel(auth.address("PUBLIC")) as auth_public,
        grpc.aio.insecure_channel(auth.address("ADMIN")) as auth_admin,
        grpc.aio.insecure_channel(kyc.address("PUBLIC")) as kyc_public,
        grpc.aio.insecure_channel(kyc.address("ADMIN")) as kyc_admin,
        grpc.aio.insecure_channel(binding.address("PUBLIC")) as binding_public,
    ):
        account_id, token = await register(auth_public, sms_webhook_catcher)
        user = bearer(token)
        submitted = await kyc_service_pb2_grpc.KycServiceStub(kyc_public).SubmitVerification(
            submit_request(), metadata=user
        )
        decided = await kyc_review_service_pb2_grpc.KycReviewServiceStub(kyc_admin).DecideCase(
            kyc_review_service_pb2.DecideCaseRequest(
                request_id=request_id(),
                case_id=submitted.verification.verification_id,
                decision=kyc_types.REVIEW_DECISION_APPROVE,
            ),
            metadata=reviewer(),
        )
        cards = binding_service_pb2_grpc.BindingServiceStub(binding_public)
        bound = await cards.BindCard(
            binding_service_pb2.BindCardRequest(
                request_id=request_id(),
                card_number=TEST_CARD,
                expiry_month=12,
                expiry_year=dt.datetime.now(dt.UTC).year + 3,
                # Compared by kyc with the approved legal name after case folding.
                holder_name=LEGAL_NAME.upper(),
            ),
            metadata=user,
        )
        await account_admin_service_pb2_grpc.AccountAdminServiceStub(auth_admin).FreezeAccount(
            admin_pb.FreezeAccountRequest(
                request_id=request_id(),
                account_id=account_id,
                reason="reported stolen phone",
                ticket_ref="INC-9",
            ),
            metadata=operator_metadata(),
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await cards.ListCards(binding_service_pb2.ListCardsRequest(), metadata=user)
        exits = {name: await stop(service) for name, service in reversed(three_services.items())}

    assert decided.verification.state == kyc_types.VERIFICATION_STATE_APPROVED
    assert (bound.card.brand, bound.card.last4) == (binding_types.CARD_BRAND_VISA, "4242")
    details = error_details(refused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")
    assert exits == {"binding": 0, "kyc": 0, "auth": 0}, {
        name: service.output() for name, service in three_services.items()
    }
    logs = binding.output()
    assert '"message": "server stopped"' in logs
    for secret in (TEST_CARD, TEST_CARD.replace(" ", ""), PHONE, token, LEGAL_NAME):
        assert secret not in logs
    assert RESIDENT_ID not in kyc.output()
