"""The verification case: PENDING -> APPROVED | REJECTED_RETRY | REJECTED_FINAL.

A pending case must be decided within 24 hours of its submission (its review deadline; the
queue is ordered by it and a case past it is OVERDUE). An account submits again only after
REJECTED_RETRY: the new case is a RESUBMISSION linked to the rejected one. A rejection names a
reason the user is shown; the reviewer's note stays internal.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from services.kyc.domain.documents import DocumentType, IdentityDocument
from services.kyc.domain.reasons import Reason, invalid
from walletcore.errors import FailedPrecondition

REVIEW_WINDOW: Final = timedelta(hours=24)
MAX_NOTE_LENGTH: Final = 2000


class CaseState(enum.StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED_RETRY = "REJECTED_RETRY"
    REJECTED_FINAL = "REJECTED_FINAL"


class Decision(enum.StrEnum):
    APPROVE = "APPROVE"
    REJECT_RETRY = "REJECT_RETRY"
    REJECT_FINAL = "REJECT_FINAL"


_OUTCOMES: Final = {
    Decision.APPROVE: CaseState.APPROVED,
    Decision.REJECT_RETRY: CaseState.REJECTED_RETRY,
    Decision.REJECT_FINAL: CaseState.REJECTED_FINAL,
}


class RejectionReason(enum.StrEnum):
    IMAGE_UNREADABLE = "IMAGE_UNREADABLE"
    DOCUMENT_EXPIRED = "DOCUMENT_EXPIRED"
    DATA_MISMATCH = "DATA_MISMATCH"
    SELFIE_MISMATCH = "SELFIE_MISMATCH"
    DOCUMENT_NOT_ACCEPTED = "DOCUMENT_NOT_ACCEPTED"
    DUPLICATE_IDENTITY = "DUPLICATE_IDENTITY"
    SUSPECTED_FRAUD = "SUSPECTED_FRAUD"
    UNDERAGE = "UNDERAGE"
    OTHER = "OTHER"


class CaseFlag(enum.StrEnum):
    DUPLICATE_IDENTITY = "DUPLICATE_IDENTITY"
    RESUBMISSION = "RESUBMISSION"
    OVERDUE = "OVERDUE"


@dataclass(frozen=True, slots=True)
class Identity:
    """What the user typed and the document says. Personal data: stored encrypted, never
    logged (the repr shows nothing of it)."""

    legal_name: str
    document: IdentityDocument

    def __repr__(self) -> str:
        return f"Identity({self.document!r})"


@dataclass(slots=True)
class Review:
    reviewer_id: str
    decision: Decision
    reason: RejectionReason | None
    note: str
    decided_at: datetime


@dataclass(slots=True)
class VerificationCase:
    id: str
    account_id: str
    identity: Identity
    submitted_at: datetime
    attempt: int = 1
    """1 for the account's first case, one more for each resubmission: (account, attempt)
    is unique, so two concurrent submissions of one account cannot both be stored."""
    state: CaseState = CaseState.PENDING
    resubmission_of: str | None = None
    review: Review | None = field(default=None)

    @classmethod
    def submit(
        cls,
        *,
        id: str,
        account_id: str,
        identity: Identity,
        previous: VerificationCase | None,
        now: datetime,
    ) -> VerificationCase:
        """A new PENDING case, after `previous` (the account's latest case, if any)."""
        return cls(
            id=id,
            account_id=account_id,
            identity=identity,
            submitted_at=now,
            attempt=1 if previous is None else previous.attempt + 1,
            resubmission_of=ensure_may_submit(previous),
        )

    @property
    def document_type(self) -> DocumentType:
        return self.identity.document.type

    @property
    def issuing_country(self) -> str:
        return self.identity.document.issuing_country

    @property
    def review_deadline(self) -> datetime:
        return self.submitted_at + REVIEW_WINDOW

    def is_overdue(self, now: datetime) -> bool:
        return self.state is CaseState.PENDING and now > self.review_deadline

    def flags(self, now: datetime, *, duplicate_identity: bool) -> list[CaseFlag]:
        """What the reviewer should know; `duplicate_identity` comes from the blind index."""
        flags = []
        if duplicate_identity:
            flags.append(CaseFlag.DUPLICATE_IDENTITY)
        if self.resubmission_of is not None:
            flags.append(CaseFlag.RESUBMISSION)
        if self.is_overdue(now):
            flags.append(CaseFlag.OVERDUE)
        return flags

    @property
    def user_visible_reason(self) -> RejectionReason | None:
        """The reason the submitter is told (the note never leaves the review desk)."""
        return None if self.review is None else self.review.reason

    def decide(
        self,
        decision: Decision,
        *,
        reason: RejectionReason | None,
        note: str,
        reviewer_id: str,
        now: datetime,
    ) -> None:
        """INVALID_ARGUMENT REASON_REQUIRED / REASON_NOT_ALLOWED / NOTE_INVALID, then
        FAILED_PRECONDITION CASE_ALREADY_DECIDED."""
        if decision is Decision.APPROVE and reason is not None:
            raise invalid("reason_code", "must be unset for an approval", Reason.REASON_NOT_ALLOWED)
        if decision is not Decision.APPROVE and reason is None:
            raise invalid("reason_code", "is required for a rejection", Reason.REASON_REQUIRED)
        clean_note = note.strip()
        if len(clean_note) > MAX_NOTE_LENGTH or "\x00" in clean_note:
            raise invalid(
                "note",
                f"must be at most {MAX_NOTE_LENGTH} characters without NUL",
                Reason.NOTE_INVALID,
            )
        if self.state is not CaseState.PENDING:
            raise FailedPrecondition(
                "this case has already been decided", reason=Reason.CASE_ALREADY_DECIDED
            )
        self.state = _OUTCOMES[decision]
        self.review = Review(reviewer_id, decision, reason, clean_note, now)


def ensure_may_submit(latest: VerificationCase | None) -> str | None:
    """None for a first submission, the rejected case's id for a resubmission; refuses with
    VERIFICATION_PENDING, ALREADY_VERIFIED or VERIFICATION_REJECTED_FINAL."""
    if latest is None:
        return None
    if latest.state is CaseState.PENDING:
        raise FailedPrecondition(
            "a verification is already waiting for review", reason=Reason.VERIFICATION_PENDING
        )
    if latest.state is CaseState.APPROVED:
        raise FailedPrecondition("the account is already verified", reason=Reason.ALREADY_VERIFIED)
    if latest.state is CaseState.REJECTED_FINAL:
        raise FailedPrecondition(
            "the verification was rejected for good", reason=Reason.VERIFICATION_REJECTED_FINAL
        )
    return latest.id
