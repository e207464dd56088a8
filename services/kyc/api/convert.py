"""Translations between kyc's protobuf messages and its service layer, shared by the servicers.

Only the shape of a request is judged here (a date that is no date, an unset enum); the rules
are the domain's. Violations name the proto field path (`document.expiry_date`).
"""

from __future__ import annotations

from datetime import date
from typing import Final

from services.kyc.domain.cases import CaseState, RejectionReason, VerificationCase
from services.kyc.domain.documents import DocumentType
from services.kyc.service.verification import ImageUpload, Submission
from wallet.common.v1 import date_pb2
from wallet.kyc.v1 import kyc_service_pb2, types_pb2
from walletcore.errors import InvalidArgument
from walletcore.grpc.convert import enum_from_proto, enum_to_proto, timestamp

_STATES: Final = {
    CaseState.PENDING: types_pb2.VERIFICATION_STATE_PENDING,
    CaseState.APPROVED: types_pb2.VERIFICATION_STATE_APPROVED,
    CaseState.REJECTED_RETRY: types_pb2.VERIFICATION_STATE_REJECTED_RETRY,
    CaseState.REJECTED_FINAL: types_pb2.VERIFICATION_STATE_REJECTED_FINAL,
}


def date_from(value: date_pb2.Date, field: str) -> date:
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidArgument.field(field, "must be a real calendar date") from None


def date_to_proto(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def _upload(image: types_pb2.DocumentImage, present: bool) -> ImageUpload | None:
    return ImageUpload(image.content, image.content_type) if present else None


def submission_from(request: kyc_service_pb2.SubmitVerificationRequest) -> Submission:
    document = request.document
    document_type = None
    if document.type != types_pb2.DOCUMENT_TYPE_UNSPECIFIED:
        document_type = enum_from_proto(
            types_pb2.DocumentType, document.type, DocumentType, "document.type"
        )
    return Submission(
        legal_name=request.legal_name,
        document_type=document_type,
        document_number=document.number,
        issuing_country=document.issuing_country,
        expiry_date=(
            date_from(document.expiry_date, "document.expiry_date")
            if document.HasField("expiry_date")
            else None
        ),
        date_of_birth=(
            date_from(request.date_of_birth, "date_of_birth")
            if request.HasField("date_of_birth")
            else None
        ),
        front=_upload(request.front_image, request.HasField("front_image")),
        back=_upload(request.back_image, request.HasField("back_image")),
        selfie=_upload(request.selfie_image, request.HasField("selfie_image")),
    )


def reason_to_proto(reason: RejectionReason | None) -> types_pb2.RejectionReason.ValueType:
    if reason is None:
        return types_pb2.REJECTION_REASON_UNSPECIFIED
    return enum_to_proto(types_pb2.RejectionReason, reason)


def state_to_proto(state: CaseState) -> types_pb2.VerificationState.ValueType:
    return _STATES[state]


def verification_to_proto(case: VerificationCase) -> types_pb2.Verification:
    """The case as its submitter sees it: the reason, never the note."""
    verification = types_pb2.Verification(
        verification_id=case.id,
        state=state_to_proto(case.state),
        reason_code=reason_to_proto(case.user_visible_reason),
        document_type=enum_to_proto(types_pb2.DocumentType, case.document_type),
        submitted_at=timestamp(case.submitted_at),
    )
    if case.review is not None:
        verification.decided_at.CopyFrom(timestamp(case.review.decided_at))
    return verification
