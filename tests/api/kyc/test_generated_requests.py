"""Whatever a client, a reviewer's tool or binding sends to any RPC of kyc's three ports, the
answer is a client error or a success, never INTERNAL or UNKNOWN and never a message naming the
server's insides; kyc still serves afterwards (SPEC 7). The requests are drawn from the
descriptors (tests/support/fuzz.py), so an RPC added later is covered too."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf.message import Message
from hypothesis import strategies as st

from tests.api.kyc.harness import (
    LEGAL_NAME,
    KycTestApp,
    binding_service,
    officer,
    request_id,
    reviewer,
    submit_request,
)
from tests.support.channels import port_channels
from tests.support.fuzz import Port, hammer
from wallet.common.v1 import paging_pb2
from wallet.kyc.v1 import kyc_review_service_pb2, kyc_service_pb2, kyc_status_service_pb2, types_pb2

pytestmark = pytest.mark.fuzz

PER_RPC = 12
RAW_PER_RPC = 4


async def test_no_generated_request_to_any_rpc_is_a_server_error(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    submitted = await kyc_app.submit(user.metadata)
    # Some requests name the real account and case, so they get past the lookups.
    known = {
        "account_id": st.just(user.account_id),
        "case_id": st.just(submitted.verification_id),
    }
    officers = officer()
    case_id = submitted.verification_id
    # Requests that would succeed; half the draws spoil one or two fields of one of them.
    well_formed: dict[str, Callable[[], Message]] = {
        "SubmitVerification": submit_request,
        "GetCase": lambda: kyc_review_service_pb2.GetCaseRequest(case_id=case_id),
        "DecideCase": lambda: kyc_review_service_pb2.DecideCaseRequest(
            request_id=request_id(),
            case_id=case_id,
            decision=types_pb2.REVIEW_DECISION_REJECT_RETRY,
            reason_code=types_pb2.REJECTION_REASON_IMAGE_UNREADABLE,
            note="blurred",
        ),
        "ListReviewQueue": lambda: kyc_review_service_pb2.ListReviewQueueRequest(
            page=paging_pb2.PageRequest(page_size=10)
        ),
        "ExportAuditLog": lambda: kyc_review_service_pb2.ExportAuditLogRequest(
            page=paging_pb2.PageRequest(page_size=10)
        ),
        "GetVerificationLevel": lambda: kyc_status_service_pb2.GetVerificationLevelRequest(
            account_id=user.account_id
        ),
        "MatchVerifiedName": lambda: kyc_status_service_pb2.MatchVerifiedNameRequest(
            account_id=user.account_id, name=LEGAL_NAME
        ),
    }
    async with port_channels(kyc_app.ports) as channels:
        ports = [
            Port(
                "public",
                channels["public"],
                kyc_service_pb2.DESCRIPTOR.services_by_name["KycService"],
                user.metadata,
                known=known,
                well_formed=well_formed,
            ),
            Port(
                "admin",
                channels["admin"],
                kyc_review_service_pb2.DESCRIPTOR.services_by_name["KycReviewService"],
                reviewer("reviewer-fuzz"),
                metadata_for={"VerifyAuditLog": officers, "ExportAuditLog": officers},
                known=known,
                well_formed=well_formed,
            ),
            Port(
                "internal",
                channels["internal"],
                kyc_status_service_pb2.DESCRIPTOR.services_by_name["KycStatusService"],
                binding_service(),
                known=known,
                well_formed=well_formed,
            ),
        ]

        sent = await hammer(ports, per_rpc=PER_RPC, raw_per_rpc=RAW_PER_RPC)

    print(f"kyc: generated requests per port {sent}")
    # A valid call after all of it is answered as before.
    status = await kyc_app.status.GetVerificationLevel(
        kyc_status_service_pb2.GetVerificationLevelRequest(account_id=user.account_id),
        metadata=binding_service(),
    )
    assert status is not None
