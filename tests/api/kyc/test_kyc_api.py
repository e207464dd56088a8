"""Kyc through real gRPC, next to a real auth, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import date
from typing import Any

import grpc
import grpc.aio
import pytest
from sqlalchemy import func, select

from services.kyc.adapters.tables import document_images, verification_cases
from services.kyc.domain.images import MAX_IMAGE_BYTES
from tests.api.auth.harness import Registered, operator_metadata, service_metadata
from tests.api.auth.test_admin_freeze import freeze_request
from tests.api.kyc.harness import (
    JPEG,
    LEGAL_NAME,
    RESIDENT_ID,
    KycTestApp,
    binding_service,
    image,
    officer,
    request_id,
    reviewer,
    submit_request,
)
from tests.unit.kyc.domain.test_resident_id import with_check
from wallet.common.v1 import date_pb2
from wallet.kyc.v1 import kyc_review_service_pb2 as review_pb
from wallet.kyc.v1 import kyc_service_pb2 as kyc_pb
from wallet.kyc.v1 import kyc_status_service_pb2 as status_pb
from wallet.kyc.v1 import types_pb2
from walletcore.grpc.status import RpcErrorDetails, error_details

pytestmark = pytest.mark.timeout(60)


async def refused(call: Awaitable[Any]) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    return error_details(failure.value)


async def case_count(app: KycTestApp) -> int:
    async with app.app.engine.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(verification_cases))
    return int(count or 0)


async def get_case(app: KycTestApp, case_id: str) -> review_pb.ReviewCase:
    reply = await app.review.GetCase(review_pb.GetCaseRequest(case_id=case_id), metadata=reviewer())
    return reply.review_case


async def test_a_submission_is_pending_and_readable_by_its_holder(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    submitted = await kyc_app.submit(user.metadata, number=RESIDENT_ID.lower())
    assert submitted.state == types_pb2.VERIFICATION_STATE_PENDING
    assert submitted.document_type == types_pb2.DOCUMENT_TYPE_CN_RESIDENT_ID
    assert not submitted.HasField("decided_at")
    own = await kyc_app.public.GetVerification(
        kyc_pb.GetVerificationRequest(), metadata=user.metadata
    )
    assert own.verification == submitted


async def test_a_retried_request_id_returns_the_first_case(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    request = submit_request()
    first = await kyc_app.public.SubmitVerification(request, metadata=user.metadata)
    again = await kyc_app.public.SubmitVerification(request, metadata=user.metadata)
    assert again == first
    assert await case_count(kyc_app) == 1


async def test_approval_makes_the_account_verified(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    submitted = await kyc_app.submit(user.metadata)
    queue = await kyc_app.review.ListReviewQueue(
        review_pb.ListReviewQueueRequest(), metadata=reviewer()
    )
    assert [item.case_id for item in queue.items] == [submitted.verification_id]
    assert queue.items[0].account_id == user.account_id
    case = await get_case(kyc_app, submitted.verification_id)
    assert case.legal_name == LEGAL_NAME
    assert case.document.number == RESIDENT_ID
    assert case.date_of_birth == date_pb2.Date(year=1949, month=12, day=31)
    assert case.front_image.content == JPEG
    assert case.front_image.content_type == "image/jpeg"

    decided = await kyc_app.decide(submitted.verification_id, types_pb2.REVIEW_DECISION_APPROVE)
    assert decided.state == types_pb2.VERIFICATION_STATE_APPROVED
    level = await kyc_app.status.GetVerificationLevel(
        status_pb.GetVerificationLevelRequest(account_id=user.account_id),
        metadata=binding_service(),
    )
    assert level.level == types_pb2.VERIFICATION_LEVEL_APPROVED
    assert level.HasField("approved_at")
    match = await kyc_app.status.MatchVerifiedName(
        status_pb.MatchVerifiedNameRequest(account_id=user.account_id, name="  zhang   SAN"),
        metadata=binding_service(),
    )
    assert match.matches
    again = await refused(
        kyc_app.public.SubmitVerification(submit_request(), metadata=user.metadata)
    )
    assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_VERIFIED")


async def test_a_retry_rejection_shows_the_reason_and_allows_a_resubmission(
    kyc_app: KycTestApp,
) -> None:
    user = await kyc_app.auth.register()
    first = await kyc_app.submit(user.metadata)
    await kyc_app.decide(
        first.verification_id,
        types_pb2.REVIEW_DECISION_REJECT_RETRY,
        types_pb2.REJECTION_REASON_IMAGE_UNREADABLE,
        note="internal: glare over the photo",
    )
    seen = await kyc_app.public.GetVerification(
        kyc_pb.GetVerificationRequest(), metadata=user.metadata
    )
    assert seen.verification.state == types_pb2.VERIFICATION_STATE_REJECTED_RETRY
    assert seen.verification.reason_code == types_pb2.REJECTION_REASON_IMAGE_UNREADABLE
    assert b"glare" not in seen.SerializeToString()

    second = await kyc_app.submit(user.metadata)
    assert second.state == types_pb2.VERIFICATION_STATE_PENDING
    case = await get_case(kyc_app, second.verification_id)
    assert list(case.flags) == [types_pb2.CASE_FLAG_RESUBMISSION]
    old = await get_case(kyc_app, first.verification_id)
    assert old.note == "internal: glare over the photo"
    assert old.reviewer_id == "reviewer-1"


async def test_a_final_rejection_refuses_further_submissions(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    first = await kyc_app.submit(user.metadata)
    await kyc_app.decide(
        first.verification_id,
        types_pb2.REVIEW_DECISION_REJECT_FINAL,
        types_pb2.REJECTION_REASON_SUSPECTED_FRAUD,
    )
    again = await refused(
        kyc_app.public.SubmitVerification(submit_request(), metadata=user.metadata)
    )
    assert (again.code, again.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VERIFICATION_REJECTED_FINAL",
    )
    pending = await refused(
        kyc_app.review.DecideCase(
            review_pb.DecideCaseRequest(
                request_id=request_id(),
                case_id=first.verification_id,
                decision=types_pb2.REVIEW_DECISION_APPROVE,
            ),
            metadata=reviewer(),
        )
    )
    assert pending.reason == "CASE_ALREADY_DECIDED"


async def test_a_second_submission_while_pending_is_refused(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    await kyc_app.submit(user.metadata)
    again = await refused(
        kyc_app.public.SubmitVerification(submit_request(), metadata=user.metadata)
    )
    assert (again.code, again.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VERIFICATION_PENDING",
    )


async def test_one_number_from_two_accounts_is_flagged_on_both(kyc_app: KycTestApp) -> None:
    first_user, second_user = await kyc_app.auth.register(), await kyc_app.auth.register()
    first = await kyc_app.submit(first_user.metadata)
    second = await kyc_app.submit(second_user.metadata, legal_name="Li Si")
    for case_id, other in (
        (first.verification_id, second_user.account_id),
        (second.verification_id, first_user.account_id),
    ):
        case = await get_case(kyc_app, case_id)
        assert types_pb2.CASE_FLAG_DUPLICATE_IDENTITY in case.flags
        assert list(case.duplicate_account_ids) == [other]
    queue = await kyc_app.review.ListReviewQueue(
        review_pb.ListReviewQueueRequest(), metadata=reviewer()
    )
    assert all(types_pb2.CASE_FLAG_DUPLICATE_IDENTITY in item.flags for item in queue.items)


async def test_an_underage_holder_is_refused(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    today = date.today()
    born = today.replace(year=today.year - 17)
    number = with_check(f"110105{born:%Y%m%d}003")
    answer = await refused(
        kyc_app.public.SubmitVerification(submit_request(number=number), metadata=user.metadata)
    )
    assert (answer.code, answer.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "UNDERAGE")
    assert await case_count(kyc_app) == 0


async def test_a_wrong_check_character_names_the_field(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    answer = await refused(
        kyc_app.public.SubmitVerification(
            submit_request(number="110105194912310021"), metadata=user.metadata
        )
    )
    assert (answer.code, answer.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "DOCUMENT_NUMBER_INVALID",
    )
    assert [v.field for v in answer.field_violations] == ["document.number"]
    assert "110105" not in answer.message + "".join(v.description for v in answer.field_violations)


async def test_a_renamed_text_file_is_no_image(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    text = image(b"Dear diary, today I renamed this file to photo.jpg", "image/jpeg")
    answer = await refused(
        kyc_app.public.SubmitVerification(submit_request(front=text), metadata=user.metadata)
    )
    assert (answer.code, answer.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "IMAGE_TYPE_UNSUPPORTED",
    )
    assert [v.field for v in answer.field_violations] == ["front_image.content"]
    assert await case_count(kyc_app) == 0


async def test_an_image_over_5_mib_is_refused_clearly(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    large = image(JPEG + b"\x00" * (MAX_IMAGE_BYTES + 1 - len(JPEG)), "image/jpeg")
    answer = await refused(
        kyc_app.public.SubmitVerification(submit_request(front=large), metadata=user.metadata)
    )
    # Past gRPC's default 4 MiB: the server's raised limit lets the rule answer, not the transport.
    assert (answer.code, answer.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "IMAGE_TOO_LARGE")
    assert [v.field for v in answer.field_violations] == ["front_image.content"]


async def test_three_images_of_5_mib_are_accepted(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    request = submit_request(
        front=image(JPEG + b"\x00" * (MAX_IMAGE_BYTES - len(JPEG)), "image/jpeg")
    )
    request.back_image.content += b"\x00" * (MAX_IMAGE_BYTES - len(request.back_image.content))
    request.selfie_image.content += b"\x00" * (MAX_IMAGE_BYTES - len(request.selfie_image.content))
    reply = await kyc_app.public.SubmitVerification(request, metadata=user.metadata)
    assert reply.verification.state == types_pb2.VERIFICATION_STATE_PENDING
    async with kyc_app.app.engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(document_images)) == 3


async def test_a_frozen_account_is_refused_on_the_next_request(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    await kyc_app.submit(user.metadata)
    await kyc_app.auth.admin.FreezeAccount(
        freeze_request(user.account_id), metadata=operator_metadata()
    )
    for call in (
        kyc_app.public.GetVerification(kyc_pb.GetVerificationRequest(), metadata=user.metadata),
        kyc_app.public.SubmitVerification(submit_request(), metadata=user.metadata),
    ):
        answer = await refused(call)
        assert (answer.code, answer.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "ACCOUNT_FROZEN",
        )
    assert await case_count(kyc_app) == 1


async def test_only_reviewers_use_the_review_desk(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    listing = review_pb.ListReviewQueueRequest()
    as_officer = await refused(kyc_app.review.ListReviewQueue(listing, metadata=officer()))
    assert as_officer.code == grpc.StatusCode.PERMISSION_DENIED
    as_user = await refused(kyc_app.review.ListReviewQueue(listing, metadata=user.metadata))
    assert as_user.code == grpc.StatusCode.UNAUTHENTICATED
    anonymous = await refused(kyc_app.review.ListReviewQueue(listing))
    assert anonymous.code == grpc.StatusCode.UNAUTHENTICATED
    audit = await refused(
        kyc_app.review.VerifyAuditLog(review_pb.VerifyAuditLogRequest(), metadata=reviewer())
    )
    assert audit.code == grpc.StatusCode.PERMISSION_DENIED
    status = await refused(
        kyc_app.status.GetVerificationLevel(
            status_pb.GetVerificationLevelRequest(account_id=user.account_id),
            metadata=user.metadata,
        )
    )
    assert (status.code, status.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
    other_service = await refused(
        kyc_app.status.GetVerificationLevel(
            status_pb.GetVerificationLevelRequest(account_id=user.account_id),
            metadata=service_metadata("refund", audience="kyc"),
        )
    )
    assert other_service.code == grpc.StatusCode.PERMISSION_DENIED


async def test_a_user_reads_only_their_own_case(kyc_app: KycTestApp) -> None:
    owner, stranger = await kyc_app.auth.register(), await kyc_app.auth.register()
    await kyc_app.submit(owner.metadata)
    answer = await refused(
        kyc_app.public.GetVerification(kyc_pb.GetVerificationRequest(), metadata=stranger.metadata)
    )
    assert (answer.code, answer.reason) == (grpc.StatusCode.NOT_FOUND, "VERIFICATION_NOT_FOUND")


async def test_reviewer_actions_are_in_the_verifiable_audit_chain(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    case_id = (await kyc_app.submit(user.metadata)).verification_id
    await get_case(kyc_app, case_id)
    await kyc_app.decide(
        case_id, types_pb2.REVIEW_DECISION_REJECT_RETRY, types_pb2.REJECTION_REASON_DATA_MISMATCH
    )
    check = await kyc_app.review.VerifyAuditLog(
        review_pb.VerifyAuditLogRequest(), metadata=officer()
    )
    assert check.verification.intact
    assert check.verification.entries_checked == 2
    export = await kyc_app.review.ExportAuditLog(
        review_pb.ExportAuditLogRequest(), metadata=officer()
    )
    assert [(e.action, e.target, e.operator_id) for e in export.entries] == [
        ("kyc.case.read", f"case:{case_id}", "reviewer-1"),
        ("kyc.case.decide", f"case:{case_id}", "reviewer-1"),
    ]
    assert export.entries[1].details["reason"] == "DATA_MISMATCH"
    assert export.entries[1].hash == check.verification.head_hash


async def test_auth_down_is_unavailable_and_nothing_is_written(kyc_app: KycTestApp) -> None:
    user: Registered = await kyc_app.auth.register()
    # A first call fetches and caches auth's keys, so the one below fails on the account check.
    await kyc_app.submit(user.metadata)
    await kyc_app.auth.app.close(grace=0)
    for call in (
        kyc_app.public.SubmitVerification(submit_request(), metadata=user.metadata),
        kyc_app.public.GetVerification(kyc_pb.GetVerificationRequest(), metadata=user.metadata),
    ):
        answer = await refused(call)
        assert answer.code == grpc.StatusCode.UNAVAILABLE
    assert await case_count(kyc_app) == 1  # the first submission only


@pytest.mark.parametrize("kyc_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: setattr(r, "legal_name", "Zhang\x00San"), "legal_name"),
        (lambda r: setattr(r.document, "number", "11010519491231002\x00"), "document.number"),
        (lambda r: setattr(r.document, "issuing_country", "C\x1bN"), "document.issuing_country"),
        (
            lambda r: setattr(r.front_image, "content_type", "image/jpeg\x00"),
            "front_image.content_type",
        ),
        (lambda r: setattr(r, "legal_name", "x" * 10_000), "legal_name"),
    ],
)
async def test_malformed_strings_name_their_field_and_write_nothing(
    kyc_app: KycTestApp, change: Any, field: str
) -> None:
    user = await kyc_app.auth.register()
    request = submit_request()
    change(request)
    answer = await refused(kyc_app.public.SubmitVerification(request, metadata=user.metadata))
    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in answer.field_violations]
    assert await case_count(kyc_app) == 0


@pytest.mark.parametrize("kyc_backend", ["sqlite"], indirect=True)
async def test_a_malformed_case_id_or_note_is_refused_before_any_lookup(
    kyc_app: KycTestApp,
) -> None:
    bad_id = await refused(
        kyc_app.review.GetCase(review_pb.GetCaseRequest(case_id="case\x00"), metadata=reviewer())
    )
    assert [v.field for v in bad_id.field_violations] == ["case_id"]
    user = await kyc_app.auth.register()
    case_id = (await kyc_app.submit(user.metadata)).verification_id
    bad_note = await refused(
        kyc_app.review.DecideCase(
            review_pb.DecideCaseRequest(
                request_id=request_id(),
                case_id=case_id,
                decision=types_pb2.REVIEW_DECISION_APPROVE,
                note="fine\x00",
            ),
            metadata=reviewer(),
        )
    )
    assert [v.field for v in bad_note.field_violations] == ["note"]
    check = await kyc_app.review.VerifyAuditLog(
        review_pb.VerifyAuditLogRequest(), metadata=officer()
    )
    assert check.verification.entries_checked == 0
