"""The VerifyAuditLog and ExportAuditLog RPCs every admin API offers over its service's audit
chain (walletcore.audit): the use cases and their protobuf translations.

    reader = EngineAuditReader(engine, tables.audit_log)       # walletcore.service_kit
    check = await verify_audit_log(reader, clock)
    return VerifyAuditLogResponse(verification=verification_to_proto(check))

    start, end = optional_time(request.start_time, ...), ...
    page = await export_audit_log(reader, AuditExportTokens(key_ring, "kyc"), clock(), ...)

or, for a servicer whose two RPCs are just these, `AuditRpcs` does both translations:

    rpcs = AuditRpcs(reader, AuditExportTokens(key_ring, "binding"), clock)
    return VerifyAuditLogResponse(verification=await rpcs.verify())
    entries, page = await rpcs.export(request, operator_id=current_caller().subject)

Export pages are tokens sealed with the service's key ring and bound to the operator and the
time range, so a token cannot be forged, edited or replayed with other bounds, and they expire
after AUDIT_EXPORT_TOKEN_LIFETIME (INVALID_ARGUMENT / PAGE_TOKEN_INVALID otherwise).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from wallet.common.v1 import audit_pb2, paging_pb2
from walletcore.audit import AuditVerification, canonical_json
from walletcore.clock import Clock
from walletcore.crypto import DecryptionFailed, KeyRing
from walletcore.errors import FieldViolation, InvalidArgument
from walletcore.grpc.convert import page_response, page_token_from

MAX_AUDIT_EXPORT_PAGE_SIZE: Final = 1_000
DEFAULT_AUDIT_EXPORT_PAGE_SIZE: Final = 50
AUDIT_EXPORT_TOKEN_LIFETIME: Final = timedelta(days=1)
PAGE_TOKEN_INVALID: Final = "PAGE_TOKEN_INVALID"  # noqa: S105 (a reason, not a password)
# One export call reads at most this many entries before answering (with a token to go on),
# so a narrow time range over a long chain cannot hold a request for long.
_SCAN_LIMIT: Final = 10_000
_CHUNK: Final = 1_000


class AuditReader(Protocol):
    """Reads a service's audit chain as `walletcore.audit` stores it
    (`walletcore.service_kit.EngineAuditReader`)."""

    async def verify(self) -> AuditVerification: ...

    async def export(self, *, after_seq: int, limit: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class AuditCheck:
    verification: AuditVerification
    verified_at: datetime


async def verify_audit_log(reader: AuditReader, clock: Clock) -> AuditCheck:
    """Recomputes the chain from its first entry."""
    verified_at = clock()
    return AuditCheck(await reader.verify(), verified_at)


@dataclass(frozen=True, slots=True)
class AuditEntryView:
    seq: int
    recorded_at: datetime
    actor: str
    actor_role: str
    action: str
    target: str
    details: dict[str, str]
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True, slots=True)
class AuditExportPage:
    entries: list[AuditEntryView]
    next_page_token: str


class AuditExportTokens:
    """Seals and opens export page tokens with the service's key ring."""

    def __init__(self, encryption: KeyRing, service: str) -> None:
        self._encryption = encryption
        self._label = f"{service}.audit-export-page"

    def binding(self, operator_id: str, start: datetime | None, end: datetime | None) -> bytes:
        bounds = [moment.isoformat() if moment is not None else "" for moment in (start, end)]
        return "\x1f".join([self._label, operator_id, *bounds]).encode()

    def seal(self, after_seq: int, binding: bytes, now: datetime) -> str:
        payload = json.dumps({"after_seq": after_seq, "issued_at": now.timestamp()}).encode()
        sealed = self._encryption.encrypt(payload, associated_data=binding)
        return base64.urlsafe_b64encode(sealed).decode("ascii")

    def open(self, token: str, binding: bytes, now: datetime) -> int:
        invalid = InvalidArgument(
            [FieldViolation("page.page_token", "is not a token of this export")],
            "the page token does not fit this request",
            reason=PAGE_TOKEN_INVALID,
        )
        try:
            sealed = base64.urlsafe_b64decode(token.encode("ascii"))
            payload = json.loads(self._encryption.decrypt(sealed, associated_data=binding))
            after_seq, issued_at = payload["after_seq"], payload["issued_at"]
        except (UnicodeError, binascii.Error, ValueError, KeyError, TypeError, DecryptionFailed):
            raise invalid from None
        if now.timestamp() - issued_at > AUDIT_EXPORT_TOKEN_LIFETIME.total_seconds():
            raise invalid
        if not isinstance(after_seq, int):
            raise invalid
        return after_seq


async def export_audit_log(
    reader: AuditReader,
    tokens: AuditExportTokens,
    now: datetime,
    *,
    operator_id: str,
    start: datetime | None,
    end: datetime | None,
    page_size: int,
    page_token: str,
) -> AuditExportPage:
    """Entries in sequence order recorded in [start, end), `page_size` at most per page."""
    if start is not None and end is not None and end < start:
        raise InvalidArgument.field("end_time", "must not be before start_time")
    size = min(page_size, MAX_AUDIT_EXPORT_PAGE_SIZE)
    binding = tokens.binding(operator_id, start, end)
    after_seq = tokens.open(page_token, binding, now) if page_token else 0
    entries: list[AuditEntryView] = []
    scanned = 0
    while scanned < _SCAN_LIMIT:
        chunk = await reader.export(after_seq=after_seq, limit=_CHUNK)
        for raw in chunk:
            scanned += 1
            after_seq = raw["seq"]
            entry = _entry_view(raw)
            if (start is None or entry.recorded_at >= start) and (
                end is None or entry.recorded_at < end
            ):
                entries.append(entry)
            if len(entries) == size:
                return AuditExportPage(entries, tokens.seal(after_seq, binding, now))
        if len(chunk) < _CHUNK:
            return AuditExportPage(entries, "")
    return AuditExportPage(entries, tokens.seal(after_seq, binding, now))


def _entry_view(raw: Mapping[str, Any]) -> AuditEntryView:
    details = raw["details"]
    return AuditEntryView(
        seq=raw["seq"],
        recorded_at=datetime.fromisoformat(raw["occurred_at"]),
        actor=raw["actor"],
        actor_role=raw["actor_role"],
        action=raw["action"],
        target=raw["target"],
        details={
            key: value if isinstance(value, str) else canonical_json(value)
            for key, value in (details.items() if isinstance(details, dict) else ())
        },
        prev_hash=raw["prev_hash"],
        entry_hash=raw["entry_hash"],
    )


# -- protobuf ----------------------------------------------------------------------------------


def _timestamp(moment: datetime) -> Timestamp:
    converted = Timestamp()
    converted.FromDatetime(moment.astimezone(UTC))
    return converted


def verification_to_proto(check: AuditCheck) -> audit_pb2.AuditVerification:
    verification = check.verification
    return audit_pb2.AuditVerification(
        intact=verification.ok,
        entries_checked=verification.entries_checked,
        first_broken_sequence=verification.first_invalid_seq or 0,
        head_hash=verification.head_hash,
        verified_at=_timestamp(check.verified_at),
    )


def audit_entry_to_proto(entry: AuditEntryView) -> audit_pb2.AuditEntry:
    return audit_pb2.AuditEntry(
        sequence=entry.seq,
        recorded_at=_timestamp(entry.recorded_at),
        operator_id=entry.actor,
        operator_role=entry.actor_role,
        action=entry.action,
        target=entry.target,
        details=entry.details,
        prev_hash=entry.prev_hash,
        hash=entry.entry_hash,
    )


def optional_time(moment: Timestamp, present: bool, field: str) -> datetime | None:
    """A request's optional Timestamp field; InvalidArgument on `field` when out of range."""
    if not present:
        return None
    try:
        return moment.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument.field(field, "must be a valid point in time") from None


def export_page(page: paging_pb2.PageRequest) -> tuple[int, str]:
    """PageRequest as documented, but up to MAX_AUDIT_EXPORT_PAGE_SIZE entries per page."""
    if page.page_size < 0:
        raise InvalidArgument.field("page.page_size", "must not be negative")
    return page.page_size or DEFAULT_AUDIT_EXPORT_PAGE_SIZE, page_token_from(page)


class ExportAuditLogRequest(Protocol):
    """Every service's ExportAuditLogRequest has these fields."""

    @property
    def start_time(self) -> Timestamp: ...

    @property
    def end_time(self) -> Timestamp: ...

    @property
    def page(self) -> paging_pb2.PageRequest: ...

    def HasField(self, field_name: Literal["start_time", "end_time"]) -> bool: ...


@dataclass(frozen=True, slots=True)
class AuditRpcs:
    """VerifyAuditLog and ExportAuditLog from request to response fields, for any service's
    admin API (their messages have the same fields in every package)."""

    reader: AuditReader
    tokens: AuditExportTokens
    clock: Clock

    async def verify(self) -> audit_pb2.AuditVerification:
        return verification_to_proto(await verify_audit_log(self.reader, self.clock))

    async def export(
        self, request: ExportAuditLogRequest, *, operator_id: str
    ) -> tuple[list[audit_pb2.AuditEntry], paging_pb2.PageResponse]:
        start = optional_time(request.start_time, request.HasField("start_time"), "start_time")
        end = optional_time(request.end_time, request.HasField("end_time"), "end_time")
        page_size, page_token = export_page(request.page)
        export = await export_audit_log(
            self.reader,
            self.tokens,
            self.clock(),
            operator_id=operator_id,
            start=start,
            end=end,
            page_size=page_size,
            page_token=page_token,
        )
        return (
            [audit_entry_to_proto(entry) for entry in export.entries],
            page_response(export.next_page_token),
        )
