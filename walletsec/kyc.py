"""The KYC review queue: list pending cases, show one (decrypted, for its reviewer), decide it.

Kyc's review RPCs need a `kyc_reviewer` identity; each case read is audited by kyc.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from wallet.kyc.v1 import kyc_review_service_pb2 as pb
from wallet.kyc.v1 import kyc_review_service_pb2_grpc as rpc
from wallet.kyc.v1 import types_pb2
from walletsec.app import enum_name, handled, paged, state_of, to_dict, when
from walletsec.connection import CliError, ExitCode

_IMAGE_SUFFIXES: Final = {"image/jpeg": ".jpg", "image/png": ".png", "application/pdf": ".pdf"}
DECISIONS: Final = {
    "approve": types_pb2.REVIEW_DECISION_APPROVE,
    "reject-retry": types_pb2.REVIEW_DECISION_REJECT_RETRY,
    "reject-final": types_pb2.REVIEW_DECISION_REJECT_FINAL,
}
_REASON_PREFIX: Final = "REJECTION_REASON_"
REASONS: Final = [
    name.removeprefix(_REASON_PREFIX).lower().replace("_", "-")
    for name in types_pb2.RejectionReason.DESCRIPTOR.values_by_name
    if name != f"{_REASON_PREFIX}UNSPECIFIED"
]

commands = typer.Typer(help="The KYC review queue: list, show, decide.", no_args_is_help=True)
CaseArgument = Annotated[str, typer.Argument(help="The case id.")]


def _stub(ctx: typer.Context) -> rpc.KycReviewServiceStub:
    return rpc.KycReviewServiceStub(state_of(ctx).connect().channel("kyc"))


def _flags(flags: Any) -> str:
    return ", ".join(enum_name(flag, types_pb2.CaseFlag.Name, "CASE_FLAG_") for flag in flags)


def _document_type(value: int) -> str:
    return enum_name(value, types_pb2.DocumentType.Name, "DOCUMENT_TYPE_")


@commands.command("list")
@handled
def list_queue(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="The most cases to list.")] = 50,
) -> None:
    """List pending cases, earliest review deadline first."""
    state = state_of(ctx)
    stub = _stub(ctx)
    items: list[pb.ReviewQueueItem] = paged(
        lambda page: state.connect().call(
            "kyc", stub.ListReviewQueue, pb.ListReviewQueueRequest(page=page)
        ),
        lambda reply: reply.items,
        limit,
    )
    if state.json_output:
        state.emit([to_dict(item) for item in items])
        return
    table = Table(
        "case",
        "account",
        "document",
        "country",
        "submitted",
        "deadline",
        "flags",
        title="KYC review queue",
    )
    for item in items:
        table.add_row(
            Text(item.case_id),
            Text(item.account_id),
            _document_type(item.document_type),
            Text(item.issuing_country),
            when(item.submitted_at),
            when(item.review_deadline),
            _flags(item.flags),
        )
    state.out.print(table)


@commands.command("show")
@handled
def show(
    ctx: typer.Context,
    case_id: CaseArgument,
    save_images: Annotated[
        Path | None,
        typer.Option(
            "--save-images",
            help="Write the case's images into this directory.",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Show one case with its decrypted identity data (the read is audited)."""
    state = state_of(ctx)
    case = state.connect().call("kyc", _stub(ctx).GetCase, pb.GetCaseRequest(case_id=case_id))
    review = case.review_case
    images = {
        "front": review.front_image,
        "back": review.back_image,
        "selfie": review.selfie_image,
    }
    saved: dict[str, str] = {}
    if save_images is not None:
        try:
            save_images.mkdir(parents=True, exist_ok=True)
            for name, image in images.items():
                if image.content:
                    target = save_images / (
                        f"{review.case_id}-{name}{_IMAGE_SUFFIXES.get(image.content_type, '')}"
                    )
                    target.write_bytes(image.content)
                    saved[name] = str(target)
        except OSError as error:
            raise CliError(
                f"cannot save the images: {error.strerror}", ExitCode.BAD_INPUT
            ) from None
    if state.json_output:
        data = to_dict(review)
        for name, image in images.items():
            data.pop(f"{name}_image", None)
            if image.content:
                data[f"{name}_image"] = {
                    "content_type": image.content_type,
                    "bytes": len(image.content),
                    **({"saved_to": saved[name]} if name in saved else {}),
                }
        state.emit(data)
        return
    state_name = enum_name(review.state, types_pb2.VerificationState.Name, "VERIFICATION_STATE_")
    table = Table("", "", title=Text(f"case {review.case_id}"), show_header=False)
    dob = review.date_of_birth
    rows = [
        ("account", review.account_id),
        ("state", state_name),
        ("legal name", review.legal_name),
        (
            "document",
            f"{_document_type(review.document.type)} {review.document.number} "
            f"({review.document.issuing_country})",
        ),
        ("date of birth", f"{dob.year:04d}-{dob.month:02d}-{dob.day:02d}" if dob.year else ""),
        ("submitted", when(review.submitted_at)),
        ("deadline", when(review.review_deadline)),
        ("flags", _flags(review.flags)),
        ("same document on", ", ".join(review.duplicate_account_ids)),
    ]
    for name, image in images.items():
        if image.content:
            where = f" -> {saved[name]}" if name in saved else ""
            rows.append(
                (f"{name} image", f"{image.content_type}, {len(image.content)} bytes{where}")
            )
    for label, value in rows:
        if value:
            table.add_row(label, Text(value))
    state.out.print(table)


@commands.command("decide")
@handled
def decide(
    ctx: typer.Context,
    case_id: CaseArgument,
    decision: Annotated[str, typer.Option("--decision", help=f"One of: {', '.join(DECISIONS)}.")],
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", help=f"Required to reject: {', '.join(REASONS)}.", show_default=False
        ),
    ] = None,
    note: Annotated[
        str, typer.Option("--note", help="Internal note (never shown to the user).")
    ] = "",
    request_id: Annotated[
        str | None,
        typer.Option(
            "--request-id", help="Idempotency key (default: a fresh one).", show_default=False
        ),
    ] = None,
) -> None:
    """Approve or reject a pending case."""
    state = state_of(ctx)
    if decision not in DECISIONS:
        raise CliError(
            f"--decision must be one of: {', '.join(DECISIONS)} (got {decision!r})",
            ExitCode.BAD_INPUT,
        )
    reason_code = types_pb2.REJECTION_REASON_UNSPECIFIED
    if reason is not None:
        if reason not in REASONS:
            raise CliError(
                f"--reason must be one of: {', '.join(REASONS)} (got {reason!r})",
                ExitCode.BAD_INPUT,
            )
        reason_code = types_pb2.RejectionReason.Value(
            _REASON_PREFIX + reason.upper().replace("-", "_")
        )
    reply = state.connect().call(
        "kyc",
        _stub(ctx).DecideCase,
        pb.DecideCaseRequest(
            request_id=request_id or uuid.uuid4().hex,
            case_id=case_id,
            decision=DECISIONS[decision],
            reason_code=reason_code,
            note=note,
        ),
    )
    verification = reply.verification
    if state.json_output:
        state.emit({"case_id": case_id, **to_dict(verification)})
        return
    outcome = enum_name(verification.state, types_pb2.VerificationState.Name, "VERIFICATION_STATE_")
    state.out.print(
        f"case {escape(case_id)}: [bold]{outcome}[/] at {when(verification.decided_at)}"
    )
