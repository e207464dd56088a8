"""The API tests' client side of kyc: stubs for its three ports, requests and credentials."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

from services.kyc.bootstrap import KycApp
from tests.api.auth.harness import AuthTestApp, Metadata, operator_metadata, service_metadata
from wallet.common.v1 import date_pb2
from wallet.kyc.v1 import (
    kyc_review_service_pb2,
    kyc_review_service_pb2_grpc,
    kyc_service_pb2,
    kyc_service_pb2_grpc,
    kyc_status_service_pb2_grpc,
    types_pb2,
)
from walletcore.identity import OperatorRole

RESIDENT_ID: Final = "11010519491231002X"
"""GB 11643-1999's own example number (born 1949-12-31)."""
LEGAL_NAME: Final = "Zhang San"
JPEG: Final = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x11" * 2048
PNG: Final = b"\x89PNG\r\n\x1a\n" + b"\x22" * 2048
PDF: Final = b"%PDF-1.7\n" + b"\x33" * 2048


def request_id() -> str:
    return uuid.uuid4().hex


def reviewer(operator_id: str = "reviewer-1") -> Metadata:
    return operator_metadata(OperatorRole.KYC_REVIEWER, operator_id)


def officer() -> Metadata:
    return operator_metadata(OperatorRole.SECURITY_OFFICER, "officer-1")


def binding_service() -> Metadata:
    return service_metadata("binding", audience="kyc")


def image(content: bytes, content_type: str) -> types_pb2.DocumentImage:
    return types_pb2.DocumentImage(content=content, content_type=content_type)


def submit_request(
    *,
    number: str = RESIDENT_ID,
    legal_name: str = LEGAL_NAME,
    document_type: Any = types_pb2.DOCUMENT_TYPE_CN_RESIDENT_ID,
    issuing_country: str = "CN",
    date_of_birth: date_pb2.Date | None = None,
    front: types_pb2.DocumentImage | None = None,
) -> kyc_service_pb2.SubmitVerificationRequest:
    return kyc_service_pb2.SubmitVerificationRequest(
        request_id=request_id(),
        legal_name=legal_name,
        document=types_pb2.IdentityDocument(
            type=document_type, number=number, issuing_country=issuing_country
        ),
        date_of_birth=date_of_birth,
        front_image=front or image(JPEG, "image/jpeg"),
        back_image=image(PNG, "image/png"),
        selfie_image=image(PDF, "application/pdf"),
    )


@dataclass
class KycTestApp:
    app: KycApp
    auth: AuthTestApp
    ports: dict[str, int]
    public: kyc_service_pb2_grpc.KycServiceAsyncStub
    review: kyc_review_service_pb2_grpc.KycReviewServiceAsyncStub
    status: kyc_status_service_pb2_grpc.KycStatusServiceAsyncStub

    async def submit(self, metadata: Metadata, **changes: Any) -> types_pb2.Verification:
        reply = await self.public.SubmitVerification(submit_request(**changes), metadata=metadata)
        return reply.verification

    async def decide(
        self,
        case_id: str,
        decision: Any,
        reason: Any = types_pb2.REJECTION_REASON_UNSPECIFIED,
        note: str = "",
    ) -> types_pb2.Verification:
        reply = await self.review.DecideCase(
            kyc_review_service_pb2.DecideCaseRequest(
                request_id=request_id(),
                case_id=case_id,
                decision=decision,
                reason_code=reason,
                note=note,
            ),
            metadata=reviewer(),
        )
        return reply.verification
