"""The four services as four processes on PostgreSQL (a database each, binding's card vault in
a fifth) and Redis, configured by environment alone, with refund's simulated gateway as a fifth
process: a user registers with auth, is verified by kyc's reviewer, binds a card whose holder
name kyc matches, a captured payment on that card is refunded in part back to it through the
gateway; then the security team's command line freezes that user and another from a CSV in one
bulk run, and auth, kyc, binding and refund each refuse the user's next request.

Fixed ports 30100-30115 (no other test uses them): each service learns its peers' addresses
before they start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Final

import grpc
import grpc.aio
import pytest

from tests.api.auth.harness import bearer, service_metadata
from tests.api.kyc.harness import LEGAL_NAME, RESIDENT_ID, reviewer, submit_request
from tests.api.walletsec.cli_helpers import operator_token
from tests.conftest import fresh_postgres_database
from tests.e2e.refund_peers import simulated_gateway
from tests.e2e.test_binding_process import _subject_of, registered_access_token
from tests.e2e.test_kyc_process import (
    ServiceProcess,
    fixed_ports,
    request_id,
    started_in_order,
    stop,
)
from tests.support.notify import SmsWebhookCatcher
from wallet.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from wallet.binding.v1 import binding_service_pb2, binding_service_pb2_grpc
from wallet.binding.v1 import types_pb2 as binding_types
from wallet.common.v1 import money_pb2
from wallet.kyc.v1 import (
    kyc_review_service_pb2,
    kyc_review_service_pb2_grpc,
    kyc_service_pb2,
    kyc_service_pb2_grpc,
)
from wallet.kyc.v1 import types_pb2 as kyc_types
from wallet.refund.v1 import payment_ledger_service_pb2 as ledger_pb
from wallet.refund.v1 import payment_ledger_service_pb2_grpc, refund_service_pb2_grpc
from wallet.refund.v1 import refund_service_pb2 as refund_pb
from wallet.refund.v1 import types_pb2 as refund_types
from walletcore.grpc.convert import timestamp
from walletcore.grpc.status import error_details
from walletcore.identity import OperatorRole

PHONE: Final = "+8613800138456"
OTHER_PHONE: Final = "+8613800138457"
TEST_CARD: Final = "4242 4242 4242 4242"
"""The card networks' public test number (Visa)."""
SERVICES: Final = ("auth", "kyc", "binding", "refund")
BASE_PORT: Final = 30100
SETTLE_SECONDS: Final = 30.0


@pytest.fixture
async def four_services(
    tmp_path: Path,
    sms_webhook_catcher: SmsWebhookCatcher,
    postgres_server_url: str,
    redis_url: str,
    redis_prefix: str,
) -> AsyncIterator[dict[str, ServiceProcess]]:
    ports = fixed_ports(BASE_PORT, SERVICES)
    internal = {name: f"127.0.0.1:{ports[name]['INTERNAL']}" for name in SERVICES}
    async with (
        fresh_postgres_database(postgres_server_url) as auth_db,
        fresh_postgres_database(postgres_server_url) as kyc_db,
        fresh_postgres_database(postgres_server_url) as binding_db,
        fresh_postgres_database(postgres_server_url) as vault_db,
        fresh_postgres_database(postgres_server_url) as refund_db,
        simulated_gateway(tmp_path, latency_seconds=0) as gateway_url,
    ):

        def on_postgres_and_redis(database_url: str, name: str) -> dict[str, str]:
            return {
                "DATABASE_URL": database_url,
                "RATE_LIMITER": "redis",
                "REDIS_URL": redis_url,
                "RATE_LIMIT_NAMESPACE": f"{redis_prefix}-{name}",
            }

        settings = {
            "auth": {
                **on_postgres_and_redis(auth_db, "auth"),
                "OUTBOX_POLL_SECONDS": "0.05",
                "NOTIFIER__SMS_ADAPTER": "webhook",
                "NOTIFIER__SMS_WEBHOOK_URL": sms_webhook_catcher.url,
            },
            "kyc": {
                **on_postgres_and_redis(kyc_db, "kyc"),
                "AUTH_INTERNAL_ADDRESS": internal["auth"],
            },
            "binding": {
                **on_postgres_and_redis(binding_db, "binding"),
                "VAULT_DATABASE_URL": vault_db,
                "AUTH_INTERNAL_ADDRESS": internal["auth"],
                "KYC_INTERNAL_ADDRESS": internal["kyc"],
            },
            "refund": {
                **on_postgres_and_redis(refund_db, "refund"),
                "AUTH_INTERNAL_ADDRESS": internal["auth"],
                "BINDING_INTERNAL_ADDRESS": internal["binding"],
                "GATEWAY_URL": gateway_url,
                "PAYOUT_INTERVAL_SECONDS": "0.1",
            },
        }
        async with started_in_order(tmp_path, settings, ports) as running:
            yield running


async def refusal(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str | None]:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    details = error_details(refused.value)
    return details.code, details.reason


async def bulk_freeze(csv_file: Path, auth_admin: str) -> tuple[int, dict[str, Any], str]:
    """`walletsec --json bulk-freeze` as its own process, as an officer runs it."""
    environment = {
        **os.environ,
        "WALLETSEC_OPERATOR_TOKEN": operator_token(OperatorRole.SECURITY_OFFICER),
        "WALLETSEC_AUTH_ADMIN": auth_admin,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "walletsec",
        "--json",
        "bulk-freeze",
        str(csv_file),
        "--reason",
        "credential stuffing",
        "--ticket",
        "INC-2001",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(SETTLE_SECONDS):
        out, err = await process.communicate()
    assert process.returncode is not None
    report = json.loads(out) if process.returncode == 0 else {}
    return process.returncode, report, err.decode(errors="replace")


async def refund_until_settled(refunds: Any, refund_id: str, user: Any) -> Any:
    async with asyncio.timeout(SETTLE_SECONDS):
        while True:
            seen = await refunds.GetRefund(
                refund_pb.GetRefundRequest(refund_id=refund_id), metadata=user
            )
            if seen.refund.state in (
                refund_types.REFUND_STATE_SUCCEEDED,
                refund_types.REFUND_STATE_FAILED,
            ):
                return seen
            await asyncio.sleep(0.1)


async def test_a_verified_user_is_refunded_to_the_card_and_a_bulk_freeze_stops_all_four(
    four_services: dict[str, ServiceProcess],
    sms_webhook_catcher: SmsWebhookCatcher,
    tmp_path: Path,
) -> None:
    auth, kyc, binding, refund = (four_services[name] for name in SERVICES)
    async with (
        grpc.aio.insecure_channel(auth.address("PUBLIC")) as auth_public,
        grpc.aio.insecure_channel(kyc.address("PUBLIC")) as kyc_public,
        grpc.aio.insecure_channel(kyc.address("ADMIN")) as kyc_admin,
        grpc.aio.insecure_channel(binding.address("PUBLIC")) as binding_public,
        grpc.aio.insecure_channel(refund.address("PUBLIC")) as refund_public,
        grpc.aio.insecure_channel(refund.address("INTERNAL")) as refund_internal,
    ):
        token = await registered_access_token(auth.ports["PUBLIC"], sms_webhook_catcher, PHONE)
        account_id = _subject_of(token)
        other_id = _subject_of(
            await registered_access_token(auth.ports["PUBLIC"], sms_webhook_catcher, OTHER_PHONE)
        )
        user = bearer(token)
        verifications = kyc_service_pb2_grpc.KycServiceStub(kyc_public)
        submitted = await verifications.SubmitVerification(submit_request(), metadata=user)
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
        payment = await payment_ledger_service_pb2_grpc.PaymentLedgerServiceStub(
            refund_internal
        ).RecordCapturedPayment(
            ledger_pb.RecordCapturedPaymentRequest(
                request_id=request_id(),
                payment_id="pay_e2e_four",
                account_id=account_id,
                amount=money_pb2.Money(amount_minor=10_000, currency="CNY"),
                source_instrument_id=bound.card.card_id,
                captured_at=timestamp(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)),
            ),
            metadata=service_metadata("payments", audience="refund"),
        )
        refunds = refund_service_pb2_grpc.RefundServiceStub(refund_public)
        requested = await refunds.RequestRefund(
            refund_pb.RequestRefundRequest(
                request_id=request_id(),
                payment_id=payment.payment.payment_id,
                amount=money_pb2.Money(amount_minor=2_500, currency="CNY"),
                reason=refund_types.REFUND_REASON_NOT_RECEIVED,
            ),
            metadata=user,
        )
        settled = await refund_until_settled(refunds, requested.refund.refund_id, user)

        csv_file = tmp_path / "breach.csv"
        csv_file.write_text(
            f"account_id,source\n{account_id},report\n{other_id},report\n"
            "acct-never-issued-0001,report\n"
        )
        exit_code, report, errors = await bulk_freeze(csv_file, auth.address("ADMIN"))

        refused = {
            "auth": await refusal(
                auth_service_pb2_grpc.AuthServiceStub(auth_public).ListSessions(
                    auth_service_pb2.ListSessionsRequest(), metadata=user
                )
            ),
            "kyc": await refusal(
                verifications.GetVerification(
                    kyc_service_pb2.GetVerificationRequest(), metadata=user
                )
            ),
            "binding": await refusal(
                cards.ListCards(binding_service_pb2.ListCardsRequest(), metadata=user)
            ),
            "refund": await refusal(
                refunds.ListRefunds(refund_pb.ListRefundsRequest(), metadata=user)
            ),
        }
        exits = {name: await stop(service) for name, service in reversed(four_services.items())}

    assert decided.verification.state == kyc_types.VERIFICATION_STATE_APPROVED
    assert (bound.card.brand, bound.card.last4) == (binding_types.CARD_BRAND_VISA, "4242")
    assert settled.refund.state == refund_types.REFUND_STATE_SUCCEEDED
    assert exit_code == 0, errors
    assert (report["frozen"], report["already_frozen"]) == (2, 0)
    assert report["not_found"] == ["acct-never-issued-0001"]
    frozen = (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")
    assert refused == dict.fromkeys(SERVICES, frozen)
    assert exits == {"refund": 0, "binding": 0, "kyc": 0, "auth": 0}, {
        name: service.output() for name, service in four_services.items()
    }
    logs = {name: service.output() for name, service in four_services.items()}
    assert all('"message": "server stopped"' in log for log in logs.values())
    for secret in (TEST_CARD, TEST_CARD.replace(" ", ""), PHONE, OTHER_PHONE, token, LEGAL_NAME):
        assert not [name for name, log in logs.items() if secret in log], secret
    assert RESIDENT_ID not in logs["kyc"]
