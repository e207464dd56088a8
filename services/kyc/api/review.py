"""KycReviewService: the review desk on kyc's admin port.

The port's access policy admits `kyc_reviewer` operators (and `security_officer`s for the
audit RPCs); the caller's subject is the operator id every use case acts and audits as.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.kyc.api.convert import (
    date_to_proto,
    reason_to_proto,
    state_to_proto,
    verification_to_proto,
)
from services.kyc.domain.cases import MAX_NOTE_LENGTH, CaseFlag, Decision, RejectionReason
from services.kyc.domain.images import DocumentImage, ImageSide
from services.kyc.service import review
from services.kyc.service.context import KycContext
from services.kyc.service.ports import KycUnitOfWork
from wallet.kyc.v1 import kyc_review_service_pb2 as pb
from wallet.kyc.v1 import kyc_review_service_pb2_grpc, types_pb2
from walletcore.audit_rpcs import AuditExportTokens, AuditReader, AuditRpcs
from walletcore.grpc.convert import (
    enum_from_proto,
    enum_to_proto,
    id_from,
    idempotent,
    page_of,
    page_response,
    timestamp,
)
from walletcore.identity import current_caller
from walletcore.transactions import Transactions
from walletcore.validation import checked_text

Context = grpc.aio.ServicerContext[Any, Any]


def _flags(flags: list[CaseFlag]) -> list[types_pb2.CaseFlag.ValueType]:
    return [enum_to_proto(types_pb2.CaseFlag, flag) for flag in flags]


def _image(image: DocumentImage | None) -> types_pb2.DocumentImage | None:
    if image is None:
        return None
    return types_pb2.DocumentImage(content=image.content, content_type=image.image_type.value)


class KycReviewServicer(kyc_review_service_pb2_grpc.KycReviewServiceServicer):
    def __init__(
        self,
        ctx: KycContext,
        tx: Transactions[KycUnitOfWork],
        audit_reader: AuditReader,
        export_tokens: AuditExportTokens,
    ) -> None:
        self.ctx = ctx
        self.tx = tx
        self.audit = AuditRpcs(audit_reader, export_tokens, ctx.clock)

    async def ListReviewQueue(
        self, request: pb.ListReviewQueueRequest, context: Context
    ) -> pb.ListReviewQueueResponse:
        page = page_of(request.page)
        queue = await self.tx.run(
            lambda uow: review.list_review_queue(
                uow, self.ctx, limit=page.size, page_token=page.token
            )
        )
        return pb.ListReviewQueueResponse(
            items=[
                pb.ReviewQueueItem(
                    case_id=item.case.id,
                    account_id=item.case.account_id,
                    document_type=enum_to_proto(types_pb2.DocumentType, item.case.document_type),
                    issuing_country=item.case.issuing_country,
                    submitted_at=timestamp(item.case.submitted_at),
                    review_deadline=timestamp(item.case.review_deadline),
                    flags=_flags(item.flags),
                )
                for item in queue.items
            ],
            page=page_response(queue.next_token),
        )

    async def GetCase(self, request: pb.GetCaseRequest, context: Context) -> pb.GetCaseResponse:
        case_id = id_from(request.case_id, "case_id")
        reviewer_id = current_caller().subject

        async def work(uow: KycUnitOfWork) -> review.CaseForReview:
            return await review.get_case(uow, self.ctx, reviewer_id=reviewer_id, case_id=case_id)

        found = await self.tx.run(work)
        case = found.case
        document = case.identity.document
        view = pb.ReviewCase(
            case_id=case.id,
            account_id=case.account_id,
            state=state_to_proto(case.state),
            legal_name=case.identity.legal_name,
            document=types_pb2.IdentityDocument(
                type=enum_to_proto(types_pb2.DocumentType, document.type),
                number=document.number,
                issuing_country=document.issuing_country,
                expiry_date=(
                    None if document.expiry_date is None else date_to_proto(document.expiry_date)
                ),
            ),
            date_of_birth=date_to_proto(document.date_of_birth),
            front_image=_image(found.images.get(ImageSide.FRONT)),
            back_image=_image(found.images.get(ImageSide.BACK)),
            selfie_image=_image(found.images.get(ImageSide.SELFIE)),
            flags=_flags(found.flags),
            duplicate_account_ids=found.duplicate_account_ids,
            submitted_at=timestamp(case.submitted_at),
            review_deadline=timestamp(case.review_deadline),
            reason_code=reason_to_proto(case.user_visible_reason),
        )
        if case.review is not None:
            view.note = case.review.note
            view.reviewer_id = case.review.reviewer_id
            view.decided_at.CopyFrom(timestamp(case.review.decided_at))
        return pb.GetCaseResponse(review_case=view)

    async def DecideCase(
        self, request: pb.DecideCaseRequest, context: Context
    ) -> pb.DecideCaseResponse:
        case_id = id_from(request.case_id, "case_id")
        decision = enum_from_proto(types_pb2.ReviewDecision, request.decision, Decision, "decision")
        reason = None
        if request.reason_code != types_pb2.REJECTION_REASON_UNSPECIFIED:
            reason = enum_from_proto(
                types_pb2.RejectionReason, request.reason_code, RejectionReason, "reason_code"
            )
        note = checked_text(request.note, "note", max_length=MAX_NOTE_LENGTH, multiline=True)
        reviewer_id = current_caller().subject

        async def work(uow: KycUnitOfWork) -> bytes:
            case = await review.decide_case(
                uow,
                self.ctx,
                reviewer_id=reviewer_id,
                case_id=case_id,
                decision=decision,
                reason=reason,
                note=note,
            )
            return pb.DecideCaseResponse(
                verification=verification_to_proto(case)
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.DecideCaseResponse, work)

    async def VerifyAuditLog(
        self, request: pb.VerifyAuditLogRequest, context: Context
    ) -> pb.VerifyAuditLogResponse:
        return pb.VerifyAuditLogResponse(verification=await self.audit.verify())

    async def ExportAuditLog(
        self, request: pb.ExportAuditLogRequest, context: Context
    ) -> pb.ExportAuditLogResponse:
        entries, page = await self.audit.export(request, operator_id=current_caller().subject)
        return pb.ExportAuditLogResponse(entries=entries, page=page)
