"""The account holder's side: submitting identity data and images, and reading the case.

The public port's verifier has already asked auth that the account is active and the session
alive (a frozen account never gets here); the use cases take the caller's account id.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

from services.kyc.domain.cases import Identity, VerificationCase
from services.kyc.domain.documents import DocumentType, IdentityDocument
from services.kyc.domain.images import DocumentImage, ImageSide
from services.kyc.domain.names import normalise_legal_name
from services.kyc.domain.reasons import Reason, invalid, verification_not_found
from services.kyc.service.context import KycContext
from services.kyc.service.ports import KycReads, KycUnitOfWork
from walletcore.errors import FieldViolation, InvalidArgument

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ImageUpload:
    content: bytes
    content_type: str

    def __repr__(self) -> str:
        return f"ImageUpload({self.content_type!r}, {len(self.content)} bytes)"


@dataclass(frozen=True, slots=True)
class Submission:
    """A SubmitVerification request as plain values (the api layer's translation)."""

    legal_name: str
    document_type: DocumentType | None
    """None when the request left it unspecified."""
    document_number: str
    issuing_country: str
    expiry_date: date | None
    date_of_birth: date | None
    front: ImageUpload | None
    back: ImageUpload | None
    selfie: ImageUpload | None

    def __repr__(self) -> str:
        return "Submission(...)"


@dataclass
class _Violations:
    """Collects every bad field of a request, so the client fixes them in one go; the
    ErrorInfo reason is the first one's."""

    violations: list[FieldViolation] = field(default_factory=list)
    reason: str | None = None

    def check(self, parse: Callable[[], _T]) -> _T | None:
        try:
            return parse()
        except InvalidArgument as error:
            self.violations.extend(error.violations)
            self.reason = self.reason or error.reason
            return None

    def raise_any(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations, reason=self.reason)


@dataclass(frozen=True, slots=True)
class CheckedSubmission:
    identity: Identity
    images: dict[ImageSide, DocumentImage]


def check_submission(submission: Submission, *, today: date) -> CheckedSubmission:
    """Every field checked (INVALID_ARGUMENT naming each bad one), then the holder's age
    (FAILED_PRECONDITION UNDERAGE)."""
    found = _Violations()
    name = found.check(lambda: normalise_legal_name(submission.legal_name))
    document: IdentityDocument | None = None
    document_type = submission.document_type
    if document_type is None:
        found.check(_missing_document_type)
    else:
        document = found.check(
            lambda: IdentityDocument.parse(
                document_type=document_type,
                number=submission.document_number,
                issuing_country=submission.issuing_country,
                expiry_date=submission.expiry_date,
                date_of_birth=submission.date_of_birth,
                today=today,
            )
        )
    uploads = {
        ImageSide.FRONT: submission.front,
        ImageSide.BACK: submission.back,
        ImageSide.SELFIE: submission.selfie,
    }
    back_optional = document_type is DocumentType.PASSPORT
    images: dict[ImageSide, DocumentImage] = {}
    for side, upload in uploads.items():
        field_name = f"{side.value}_image"
        if upload is None:
            if not (side is ImageSide.BACK and back_optional):
                found.check(functools.partial(_missing_image, field_name))
            continue
        image = found.check(
            functools.partial(
                DocumentImage.parse, upload.content, upload.content_type, field=field_name
            )
        )
        if image is not None:
            images[side] = image
    found.raise_any()
    # No violation means both parsed.
    if name is None:  # an invariant, checked also under python -O
        raise RuntimeError("no violation means the name parsed")
    if document is None:  # an invariant, checked also under python -O
        raise RuntimeError("no violation means the document parsed")
    document.require_adult(today)
    return CheckedSubmission(Identity(name, document), images)


def _missing_document_type() -> None:
    raise invalid("document.type", "is required", Reason.DOCUMENT_TYPE_UNSUPPORTED)


def _missing_image(field_name: str) -> None:
    raise invalid(field_name, "is required", Reason.IMAGE_REQUIRED)


async def submit_verification(
    uow: KycUnitOfWork, ctx: KycContext, *, account_id: str, submission: Submission
) -> VerificationCase:
    """Checks the submission, then that the account may submit (VERIFICATION_PENDING,
    ALREADY_VERIFIED, VERIFICATION_REJECTED_FINAL), and stores the new PENDING case, its
    images and its identity's blind-index digests."""
    now = ctx.clock()
    checked = check_submission(submission, today=now.date())
    previous = await uow.cases.latest_for_account(account_id, for_update=True)
    case = VerificationCase.submit(
        id=ctx.new_id(),
        account_id=account_id,
        identity=checked.identity,
        previous=previous,
        now=now,
    )
    digests = ctx.identity_index.candidates(checked.identity.document.index_value)
    await uow.cases.add(case, digests)
    for side, image in checked.images.items():
        await uow.documents.put(case.id, side, image)
    return case


async def get_verification(reads: KycReads, *, account_id: str) -> VerificationCase:
    """The caller's latest case; VERIFICATION_NOT_FOUND before the first submission."""
    case = await reads.cases.latest_for_account(account_id)
    if case is None:
        raise verification_not_found()
    return case
