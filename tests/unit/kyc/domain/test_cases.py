"""The case state machine, resubmission rules, deadline and flags."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.kyc.domain.cases import (
    REVIEW_WINDOW,
    CaseFlag,
    CaseState,
    Decision,
    Identity,
    RejectionReason,
    VerificationCase,
)
from services.kyc.domain.documents import DocumentType, IdentityDocument
from services.kyc.domain.reasons import Reason
from walletcore.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
IDENTITY = Identity(
    "Zhang San",
    IdentityDocument(
        DocumentType.CN_RESIDENT_ID, "11010519491231002X", "CN", None, date(1949, 12, 31)
    ),
)


def new_case(previous: VerificationCase | None = None, case_id: str = "case-1") -> VerificationCase:
    return VerificationCase.submit(
        id=case_id, account_id="acc-1", identity=IDENTITY, previous=previous, now=NOW
    )


def decided(decision: Decision, reason: RejectionReason | None = None) -> VerificationCase:
    case = new_case()
    case.decide(decision, reason=reason, note="checked", reviewer_id="rev-1", now=NOW)
    return case


def test_a_new_case_is_pending_with_a_deadline_a_day_later() -> None:
    case = new_case()
    assert case.state is CaseState.PENDING
    assert case.review_deadline == NOW + REVIEW_WINDOW
    assert case.flags(NOW, duplicate_identity=False) == []


def test_a_case_past_its_deadline_is_overdue_until_decided() -> None:
    case = new_case()
    later = NOW + REVIEW_WINDOW + timedelta(seconds=1)
    assert not case.is_overdue(NOW + REVIEW_WINDOW)
    assert case.flags(later, duplicate_identity=True) == [
        CaseFlag.DUPLICATE_IDENTITY,
        CaseFlag.OVERDUE,
    ]
    case.decide(Decision.APPROVE, reason=None, note="", reviewer_id="rev-1", now=later)
    assert not case.is_overdue(later)


@pytest.mark.parametrize(
    ("decision", "state"),
    [
        (Decision.APPROVE, CaseState.APPROVED),
        (Decision.REJECT_RETRY, CaseState.REJECTED_RETRY),
        (Decision.REJECT_FINAL, CaseState.REJECTED_FINAL),
    ],
)
def test_a_decision_moves_a_pending_case(decision: Decision, state: CaseState) -> None:
    reason = None if decision is Decision.APPROVE else RejectionReason.IMAGE_UNREADABLE
    case = decided(decision, reason)
    assert case.state is state
    assert case.user_visible_reason is reason
    assert case.review is not None
    assert case.review.note == "checked"


def test_a_decided_case_cannot_be_decided_again() -> None:
    case = decided(Decision.APPROVE)
    with pytest.raises(FailedPrecondition) as refused:
        case.decide(
            Decision.REJECT_FINAL,
            reason=RejectionReason.SUSPECTED_FRAUD,
            note="",
            reviewer_id="rev-2",
            now=NOW,
        )
    assert refused.value.reason == Reason.CASE_ALREADY_DECIDED
    assert case.state is CaseState.APPROVED


def test_a_rejection_needs_a_reason_and_an_approval_takes_none() -> None:
    case = new_case()
    with pytest.raises(InvalidArgument) as missing:
        case.decide(Decision.REJECT_RETRY, reason=None, note="", reviewer_id="r", now=NOW)
    assert missing.value.reason == Reason.REASON_REQUIRED
    with pytest.raises(InvalidArgument) as extra:
        case.decide(
            Decision.APPROVE, reason=RejectionReason.OTHER, note="", reviewer_id="r", now=NOW
        )
    assert extra.value.reason == Reason.REASON_NOT_ALLOWED
    assert case.state is CaseState.PENDING


def test_a_note_is_at_most_2000_characters() -> None:
    case = new_case()
    with pytest.raises(InvalidArgument) as refused:
        case.decide(Decision.APPROVE, reason=None, note="n" * 2001, reviewer_id="r", now=NOW)
    assert refused.value.reason == Reason.NOTE_INVALID


def test_resubmission_follows_only_a_retry_rejection_and_links_it() -> None:
    rejected = decided(Decision.REJECT_RETRY, RejectionReason.IMAGE_UNREADABLE)
    again = new_case(rejected, case_id="case-2")
    assert again.resubmission_of == rejected.id
    assert again.flags(NOW, duplicate_identity=False) == [CaseFlag.RESUBMISSION]


@pytest.mark.parametrize(
    ("previous", "reason"),
    [
        (lambda: new_case(), Reason.VERIFICATION_PENDING),
        (lambda: decided(Decision.APPROVE), Reason.ALREADY_VERIFIED),
        (
            lambda: decided(Decision.REJECT_FINAL, RejectionReason.SUSPECTED_FRAUD),
            Reason.VERIFICATION_REJECTED_FINAL,
        ),
    ],
)
def test_no_submission_after_pending_approved_or_final(previous: object, reason: str) -> None:
    with pytest.raises(FailedPrecondition) as refused:
        new_case(previous(), case_id="case-2")  # type: ignore[operator]
    assert refused.value.reason == reason
