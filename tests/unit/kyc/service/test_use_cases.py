"""Kyc's use cases on the in-memory fakes."""

from __future__ import annotations

import dataclasses
import functools
from datetime import date, timedelta

import pytest

from services.kyc.domain.cases import CaseFlag, CaseState, Decision, RejectionReason
from services.kyc.domain.documents import DocumentType
from services.kyc.domain.images import ImageSide
from services.kyc.domain.reasons import Reason
from services.kyc.service.fakes import KycFakes
from services.kyc.service.review import (
    AuditAction,
    decide_case,
    get_case,
    list_review_queue,
)
from services.kyc.service.status import (
    VerificationLevel,
    match_verified_name,
    verification_level,
)
from services.kyc.service.verification import (
    ImageUpload,
    Submission,
    get_verification,
    submit_verification,
)
from walletcore.errors import FailedPrecondition, InvalidArgument, NotFound

JPEG = ImageUpload(b"\xff\xd8\xff\xe0" + b"\x01" * 100, "image/jpeg")
PNG = ImageUpload(b"\x89PNG\r\n\x1a\n" + b"\x02" * 100, "image/png")
PDF = ImageUpload(b"%PDF-1.4\n" + b"\x03" * 100, "application/pdf")
SUBMISSION = Submission(
    legal_name="Zhang San",
    document_type=DocumentType.CN_RESIDENT_ID,
    document_number="11010519491231002x",
    issuing_country="CN",
    expiry_date=None,
    date_of_birth=None,
    front=JPEG,
    back=PNG,
    selfie=PDF,
)


@pytest.fixture
def fakes() -> KycFakes:
    return KycFakes.create()


async def submit(fakes: KycFakes, account_id: str = "acc-1", **changes: object) -> str:
    submission = dataclasses.replace(SUBMISSION, **changes)  # type: ignore[arg-type]
    case = await fakes.tx.run(
        lambda uow: submit_verification(
            uow, fakes.ctx, account_id=account_id, submission=submission
        )
    )
    return case.id


async def decide(
    fakes: KycFakes, case_id: str, decision: Decision, reason: RejectionReason | None = None
) -> None:
    await fakes.tx.run(
        lambda uow: decide_case(
            uow,
            fakes.ctx,
            reviewer_id="rev-1",
            case_id=case_id,
            decision=decision,
            reason=reason,
            note="the photo is blurred; holder looked nervous",
        )
    )


async def test_a_submission_is_stored_pending_with_its_images(fakes: KycFakes) -> None:
    case_id = await submit(fakes)
    stored = fakes.store.cases[case_id]
    assert stored.state is CaseState.PENDING
    assert stored.identity.document.number == "11010519491231002X"
    assert stored.identity.document.date_of_birth == date(1949, 12, 31)
    assert {side for (cid, side) in fakes.store.images if cid == case_id} == set(ImageSide)


async def test_every_bad_field_is_reported_at_once(fakes: KycFakes) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await submit(
            fakes,
            legal_name=" ",
            document_number="110105194912310021",
            front=ImageUpload(b"plain text", "image/jpeg"),
            selfie=None,
        )
    fields = [v.field for v in refused.value.violations]
    assert fields == ["legal_name", "document.number", "front_image.content", "selfie_image"]
    assert refused.value.reason == Reason.LEGAL_NAME_INVALID
    assert fakes.store.cases == {}


async def test_a_passport_needs_no_back_image_but_a_resident_id_does(fakes: KycFakes) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await submit(fakes, back=None)
    assert refused.value.reason == Reason.IMAGE_REQUIRED
    await submit(
        fakes,
        document_type=DocumentType.PASSPORT,
        document_number="E12345678",
        issuing_country="DE",
        date_of_birth=date(1990, 1, 1),
        back=None,
    )


async def test_an_underage_holder_is_refused(fakes: KycFakes) -> None:
    seventeen = fakes.clock().date().replace(year=fakes.clock().year - 17)
    with pytest.raises(FailedPrecondition) as refused:
        await submit(
            fakes,
            document_type=DocumentType.PASSPORT,
            document_number="E12345678",
            issuing_country="DE",
            date_of_birth=seventeen,
        )
    assert refused.value.reason == Reason.UNDERAGE
    assert fakes.store.cases == {}


@pytest.mark.parametrize(
    ("decision", "reason", "refusal"),
    [
        (None, None, Reason.VERIFICATION_PENDING),
        (Decision.APPROVE, None, Reason.ALREADY_VERIFIED),
        (
            Decision.REJECT_FINAL,
            RejectionReason.SUSPECTED_FRAUD,
            Reason.VERIFICATION_REJECTED_FINAL,
        ),
    ],
)
async def test_a_second_submission_is_refused(
    fakes: KycFakes, decision: Decision | None, reason: RejectionReason | None, refusal: str
) -> None:
    case_id = await submit(fakes)
    if decision is not None:
        await decide(fakes, case_id, decision, reason)
    with pytest.raises(FailedPrecondition) as refused:
        await submit(fakes)
    assert refused.value.reason == refusal
    assert len(fakes.store.cases) == 1


async def test_a_resubmission_after_retry_is_flagged_and_linked(fakes: KycFakes) -> None:
    first = await submit(fakes)
    await decide(fakes, first, Decision.REJECT_RETRY, RejectionReason.IMAGE_UNREADABLE)
    second = await submit(fakes)
    assert fakes.store.cases[second].resubmission_of == first
    queue = await fakes.tx.run(
        lambda uow: list_review_queue(uow, fakes.ctx, limit=10, page_token="")
    )
    assert [(item.case.id, item.flags) for item in queue.items] == [
        (second, [CaseFlag.RESUBMISSION])
    ]


async def test_the_user_sees_the_reason_never_the_note(fakes: KycFakes) -> None:
    case_id = await submit(fakes)
    await decide(fakes, case_id, Decision.REJECT_RETRY, RejectionReason.IMAGE_UNREADABLE)
    case = await fakes.tx.run(lambda uow: get_verification(uow, account_id="acc-1"))
    assert case.user_visible_reason is RejectionReason.IMAGE_UNREADABLE


async def test_a_user_reads_only_their_own_case(fakes: KycFakes) -> None:
    await submit(fakes, account_id="acc-1")
    with pytest.raises(NotFound) as missing:
        await fakes.tx.run(lambda uow: get_verification(uow, account_id="acc-2"))
    assert missing.value.reason == Reason.VERIFICATION_NOT_FOUND


async def test_the_queue_is_ordered_by_deadline_and_flags_overdue(fakes: KycFakes) -> None:
    first = await submit(fakes, account_id="acc-1")
    fakes.clock.advance(timedelta(hours=2))
    second = await submit(
        fakes,
        account_id="acc-2",
        document_type=DocumentType.PASSPORT,
        document_number="E7654321",
        issuing_country="DE",
        date_of_birth=date(1990, 1, 1),
    )
    fakes.clock.advance(timedelta(hours=23))
    page = await fakes.tx.run(lambda uow: list_review_queue(uow, fakes.ctx, limit=1, page_token=""))
    assert [(i.case.id, i.flags) for i in page.items] == [(first, [CaseFlag.OVERDUE])]
    rest = await fakes.tx.run(
        lambda uow: list_review_queue(uow, fakes.ctx, limit=1, page_token=page.next_token)
    )
    assert [(i.case.id, i.flags) for i in rest.items] == [(second, [])]
    assert rest.next_token == ""


async def test_a_foreign_page_token_is_refused(fakes: KycFakes) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await fakes.tx.run(
            lambda uow: list_review_queue(uow, fakes.ctx, limit=1, page_token="nope")
        )
    assert refused.value.reason == Reason.PAGE_TOKEN_INVALID


async def test_the_same_number_from_two_accounts_flags_both(fakes: KycFakes) -> None:
    first = await submit(fakes, account_id="acc-1")
    second = await submit(fakes, account_id="acc-2", legal_name="Li Si")
    for case_id, other in ((first, "acc-2"), (second, "acc-1")):
        review = await fakes.tx.run(
            functools.partial(get_case, ctx=fakes.ctx, reviewer_id="rev-1", case_id=case_id)
        )
        assert CaseFlag.DUPLICATE_IDENTITY in review.flags
        assert review.duplicate_account_ids == [other]
    digests = [fakes.store.digests[first], fakes.store.digests[second]]
    assert digests[0] == digests[1]
    assert "11010519491231002X" not in "".join(digests[0])


async def test_a_resubmission_of_the_same_account_is_no_duplicate(fakes: KycFakes) -> None:
    first = await submit(fakes)
    await decide(fakes, first, Decision.REJECT_RETRY, RejectionReason.IMAGE_UNREADABLE)
    second = await submit(fakes)
    review = await fakes.tx.run(
        lambda uow: get_case(uow, fakes.ctx, reviewer_id="rev-1", case_id=second)
    )
    assert review.duplicate_account_ids == []
    assert CaseFlag.DUPLICATE_IDENTITY not in review.flags


async def test_reviewer_actions_are_audited_without_personal_data(fakes: KycFakes) -> None:
    case_id = await submit(fakes)
    await fakes.tx.run(lambda uow: get_case(uow, fakes.ctx, reviewer_id="rev-1", case_id=case_id))
    await decide(fakes, case_id, Decision.REJECT_FINAL, RejectionReason.SUSPECTED_FRAUD)
    records = [record for record, _ in fakes.store.audit_records]
    assert [(r.action, r.actor, r.actor_role, r.target) for r in records] == [
        (AuditAction.CASE_READ.value, "rev-1", "kyc_reviewer", f"case:{case_id}"),
        (AuditAction.CASE_DECIDED.value, "rev-1", "kyc_reviewer", f"case:{case_id}"),
    ]
    assert records[1].details == {
        "account_id": "acc-1",
        "decision": "REJECT_FINAL",
        "reason": "SUSPECTED_FRAUD",
    }
    assert "blurred" not in repr(records)
    assert "Zhang" not in repr(records)


async def test_a_refused_decision_writes_nothing(fakes: KycFakes) -> None:
    case_id = await submit(fakes)
    await decide(fakes, case_id, Decision.APPROVE)
    with pytest.raises(FailedPrecondition) as refused:
        await decide(fakes, case_id, Decision.REJECT_FINAL, RejectionReason.OTHER)
    assert refused.value.reason == Reason.CASE_ALREADY_DECIDED
    assert len(fakes.store.audit_records) == 1
    with pytest.raises(NotFound):
        await decide(fakes, "case-none", Decision.APPROVE)


async def test_levels_follow_the_latest_case(fakes: KycFakes) -> None:
    async def level() -> VerificationLevel:
        found = await fakes.tx.run(lambda uow: verification_level(uow, account_id="acc-1"))
        return found.level

    assert await level() is VerificationLevel.NONE
    case_id = await submit(fakes)
    assert await level() is VerificationLevel.PENDING
    await decide(fakes, case_id, Decision.APPROVE)
    approved = await fakes.tx.run(lambda uow: verification_level(uow, account_id="acc-1"))
    assert approved.level is VerificationLevel.APPROVED
    assert approved.approved_at == fakes.clock()


async def test_the_verified_name_matches_after_normalisation(fakes: KycFakes) -> None:
    case_id = await submit(fakes)

    async def matches(name: str) -> bool:
        return await fakes.tx.run(
            lambda uow: match_verified_name(uow, account_id="acc-1", name=name)
        )

    with pytest.raises(FailedPrecondition) as pending:
        await matches("Zhang San")
    assert pending.value.reason == Reason.KYC_NOT_APPROVED
    await decide(fakes, case_id, Decision.APPROVE)
    assert await matches("  ZHANG   san ")
    assert not await matches("Zhang Sun")
    with pytest.raises(InvalidArgument):
        await matches("")
