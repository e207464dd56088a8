"""The review desk: the queue, reading a case, deciding it.

The admin port's access policy has already admitted the caller as a `kyc_reviewer`. Every
case read and every decision appends an `AuditRecord` to kyc's hash-chained trail in the same
transaction: references only (case id, account id, decision, reason code), never the name,
the number or the reviewer's note.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from services.kyc.domain.cases import CaseFlag, Decision, RejectionReason, VerificationCase
from services.kyc.domain.images import DocumentImage, ImageSide
from services.kyc.domain.reasons import case_not_found
from services.kyc.service.context import KycContext
from services.kyc.service.ports import KycUnitOfWork
from walletcore.audit import AuditRecord
from walletcore.identity import OperatorRole

_REVIEWER_ROLE: Final = OperatorRole.KYC_REVIEWER.value


def case_target(case_id: str) -> str:
    return f"case:{case_id}"


class AuditAction(enum.StrEnum):
    CASE_READ = "kyc.case.read"
    CASE_DECIDED = "kyc.case.decide"


@dataclass(frozen=True, slots=True)
class QueueItem:
    case: VerificationCase
    flags: list[CaseFlag]


@dataclass(frozen=True, slots=True)
class ReviewQueue:
    items: list[QueueItem]
    next_token: str


@dataclass(frozen=True, slots=True)
class CaseForReview:
    case: VerificationCase
    flags: list[CaseFlag]
    duplicate_account_ids: list[str]
    images: dict[ImageSide, DocumentImage]

    def __repr__(self) -> str:
        return f"CaseForReview({self.case.id})"


async def list_review_queue(
    uow: KycUnitOfWork, ctx: KycContext, *, limit: int, page_token: str
) -> ReviewQueue:
    now = ctx.clock()
    page = await uow.cases.review_queue(limit=limit, page_token=page_token)
    items = [
        QueueItem(case, case.flags(now, duplicate_identity=case.id in page.duplicates))
        for case in page.cases
    ]
    return ReviewQueue(items, page.next_token)


async def get_case(
    uow: KycUnitOfWork, ctx: KycContext, *, reviewer_id: str, case_id: str
) -> CaseForReview:
    """CASE_NOT_FOUND; the read is audited."""
    now = ctx.clock()
    case = await uow.cases.get(case_id)
    if case is None:
        raise case_not_found()
    duplicates = await uow.cases.accounts_sharing_identity(case)
    images = {}
    for side in ImageSide:
        image = await uow.documents.get(case.id, side)
        if image is not None:
            images[side] = image
    await uow.audit.append(
        AuditRecord(
            actor=reviewer_id,
            actor_role=_REVIEWER_ROLE,
            action=AuditAction.CASE_READ.value,
            target=case_target(case.id),
            details={"account_id": case.account_id},
        ),
        now,
    )
    return CaseForReview(
        case, case.flags(now, duplicate_identity=bool(duplicates)), duplicates, images
    )


async def decide_case(
    uow: KycUnitOfWork,
    ctx: KycContext,
    *,
    reviewer_id: str,
    case_id: str,
    decision: Decision,
    reason: RejectionReason | None,
    note: str,
) -> VerificationCase:
    """CASE_NOT_FOUND, REASON_REQUIRED, REASON_NOT_ALLOWED, CASE_ALREADY_DECIDED; the
    decision is audited (without the note, which may describe the person)."""
    now = ctx.clock()
    case = await uow.cases.get(case_id, for_update=True)
    if case is None:
        raise case_not_found()
    case.decide(decision, reason=reason, note=note, reviewer_id=reviewer_id, now=now)
    await uow.cases.save_decision(case)
    details = {"account_id": case.account_id, "decision": decision.value}
    if reason is not None:
        details["reason"] = reason.value
    await uow.audit.append(
        AuditRecord(
            actor=reviewer_id,
            actor_role=_REVIEWER_ROLE,
            action=AuditAction.CASE_DECIDED.value,
            target=case_target(case.id),
            details=details,
        ),
        now,
    )
    return case
