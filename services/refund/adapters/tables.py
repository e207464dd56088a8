"""Refund's database schema: one MetaData for the repositories and the Alembic migrations.

What the schema itself guarantees, whatever code runs against it:

- No over-refund: `payments.reserved_minor` is the sum of the payment's refunds that are
  neither REJECTED nor FAILED, and a CHECK keeps it between 0 and the captured amount. Every
  change of it happens under the payment's row lock (SELECT ... FOR UPDATE), so concurrent
  requests on PostgreSQL are decided one after the other; the CHECK is the last word if any
  code path ever forgot the lock.
- At most one PENDING payout attempt per refund (a partial UNIQUE index), and an attempt id,
  which is the gateway's idempotency key, is never reused (its primary key).
- A step-up grant is spent once (`consumed_grants`, walletcore.grants); the admin audit log is
  append-only (the migration installs walletcore.audit's guard triggers).
- Enumerated columns hold only their enum's values (CHECK constraints).

A refund's transitions and operator actions are JSON lists on its row: they are only ever read
with the refund, and appended to under its row lock.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from services.refund.domain.refunds import (
    AttemptState,
    FailureReason,
    RefundReason,
    RefundState,
    RejectReason,
)
from walletcore.audit import define_audit_table
from walletcore.db import UTCDateTime, enum_check, make_metadata
from walletcore.grants import define_consumed_grants_table
from walletcore.idempotency import define_idempotency_table

ID_LENGTH: Final = 128
"""Payment ids (the payment system's, 1 to 128 characters), account ids, instrument ids."""
REFUND_ID_LENGTH: Final = 64
ATTEMPT_ID_LENGTH: Final = 80
"""`<refund id>-<n>`."""
REASON_DETAIL_LENGTH: Final = 1000
GATEWAY_TEXT_LENGTH: Final = 128

metadata = make_metadata()

payments = Table(
    "payments",
    metadata,
    Column("payment_id", String(ID_LENGTH), primary_key=True),
    Column("account_id", String(ID_LENGTH), nullable=False),
    Column("captured_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("source_instrument_id", String(ID_LENGTH), nullable=False),
    Column("captured_at", UTCDateTime, nullable=False),
    Column("reserved_minor", BigInteger, nullable=False, server_default=text("0")),
    CheckConstraint("captured_minor > 0", name="captured_positive"),
    CheckConstraint(
        "reserved_minor >= 0 AND reserved_minor <= captured_minor", name="reserved_within_captured"
    ),
    Index("ix_payments_account_captured", "account_id", "captured_at", "payment_id"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("refund_id", String(REFUND_ID_LENGTH), primary_key=True),
    Column("payment_id", ForeignKey("payments.payment_id"), nullable=False, index=True),
    Column("account_id", String(ID_LENGTH), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("reason_detail", String(REASON_DETAIL_LENGTH), nullable=False),
    Column("evidence", Text, nullable=False),
    Column("instrument_id", String(ID_LENGTH), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("failure_reason", String(40)),
    Column("reject_reason", String(32)),
    Column("review_working_days", Integer, nullable=False),
    Column("waiting_since", UTCDateTime),
    # Derived from waiting_since and the service level, stored so the overdue count is a query.
    Column("review_deadline", UTCDateTime),
    Column("round_attempts", Integer, nullable=False),
    Column("hold_placed", Boolean, nullable=False),
    Column("history", Text, nullable=False),
    Column("operator_actions", Text, nullable=False),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    enum_check("state", RefundState),
    enum_check("reason", RefundReason),
    enum_check("failure_reason", FailureReason),
    enum_check("reject_reason", RejectReason),
    Index("ix_refunds_account_requested", "account_id", "requested_at", "refund_id"),
    Index("ix_refunds_state_waiting", "state", "waiting_since", "refund_id"),
)

payout_attempts = Table(
    "payout_attempts",
    metadata,
    Column("attempt_id", String(ATTEMPT_ID_LENGTH), primary_key=True),
    Column("refund_id", ForeignKey("refunds.refund_id"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("instrument_id", String(ID_LENGTH), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("state", String(16), nullable=False),
    Column("gateway_reference", String(GATEWAY_TEXT_LENGTH), nullable=False),
    Column("failure_reason", String(40)),
    Column("gateway_failure_code", String(GATEWAY_TEXT_LENGTH), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    enum_check("state", AttemptState),
    enum_check("failure_reason", FailureReason),
    Index(
        "uq_payout_attempts_one_pending",
        "refund_id",
        unique=True,
        postgresql_where=text("state = 'PENDING'"),
        sqlite_where=text("state = 'PENDING'"),
    ),
    Index("ix_payout_attempts_state_started", "state", "started_at"),
)

gateway_cursors = Table(
    "gateway_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(GATEWAY_TEXT_LENGTH), nullable=False),
)

consumed_grants = define_consumed_grants_table(metadata)
idempotency_records = define_idempotency_table(metadata)
audit_log = define_audit_table(metadata)
