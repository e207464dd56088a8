"""Kyc's database schema: one MetaData for the repositories and the Alembic migrations.

No table holds personal data in clear. A case's identity (legal name, document number, dates)
and the reviewer's note are AES-256-GCM ciphertexts under the key ring, with the case id and
the column as associated data; images likewise, with the case id and the side. Duplicate
documents are found through `identity_digests`, keyed HMACs of the canonical number (one per
index key, so a lookup works across a key rotation).

What the schema itself guarantees:

- (account_id, attempt) is UNIQUE: an account's cases are numbered, so two concurrent
  submissions of one account cannot both be stored.
- States, decisions, reasons, document types and image sides hold only their enum's values.
- The audit log is append-only: the migration installs `walletcore.audit`'s guard triggers.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

from services.kyc.domain.cases import CaseState, Decision, RejectionReason
from services.kyc.domain.documents import DocumentType
from services.kyc.domain.images import ImageSide, ImageType
from walletcore.audit import define_audit_table
from walletcore.db import UTCDateTime, enum_check, make_metadata
from walletcore.idempotency import define_idempotency_table

ID_LENGTH: Final = 64
ACCOUNT_ID_LENGTH: Final = 128
REVIEWER_ID_LENGTH: Final = 128

metadata = make_metadata()


_one_of = enum_check


verification_cases = Table(
    "verification_cases",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("account_id", String(ACCOUNT_ID_LENGTH), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("document_type", String(32), nullable=False),
    Column("issuing_country", String(2), nullable=False),
    Column("submitted_at", UTCDateTime, nullable=False),
    Column("resubmission_of", String(ID_LENGTH), ForeignKey("verification_cases.id")),
    Column("identity", LargeBinary, nullable=False),
    Column("decision", String(16)),
    Column("reason", String(32)),
    Column("note", LargeBinary),
    Column("reviewer_id", String(REVIEWER_ID_LENGTH)),
    Column("decided_at", UTCDateTime),
    UniqueConstraint("account_id", "attempt"),
    CheckConstraint("attempt >= 1", name="attempt_positive"),
    _one_of("state", CaseState),
    _one_of("document_type", DocumentType),
    _one_of("decision", Decision),
    _one_of("reason", RejectionReason),
    # The review queue: pending cases by submission (deadline = submission + 24 h), then id.
    Index("ix_verification_cases_queue", "state", "submitted_at", "id"),
)

identity_digests = Table(
    "identity_digests",
    metadata,
    Column("case_id", String(ID_LENGTH), ForeignKey("verification_cases.id"), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("account_id", String(ACCOUNT_ID_LENGTH), nullable=False),
    Index("ix_identity_digests_digest", "digest"),
)

document_images = Table(
    "document_images",
    metadata,
    Column("case_id", String(ID_LENGTH), ForeignKey("verification_cases.id"), primary_key=True),
    Column("side", String(8), primary_key=True),
    Column("content_type", String(32), nullable=False),
    Column("content", LargeBinary, nullable=False),
    _one_of("side", ImageSide),
    _one_of("content_type", ImageType),
)

audit_log = define_audit_table(metadata)
idempotency_records = define_idempotency_table(metadata)
