"""Binding's database schema: one MetaData for the repositories and the Alembic migrations.

The domain objects are slotted dataclasses, so they are not ORM-mapped: the repositories read
and write these SQLAlchemy Core tables and map rows to domain objects explicitly.

What the schema itself guarantees, whatever code runs against it:

- The same card is bound to at most one account at a time: a partial UNIQUE index on the
  keyed fingerprint among ACTIVE cards (`uq_cards_active_fingerprint`). Unbound cards stay
  (refund history names them) and do not count, so a card unbound earlier can be bound again.
- No card number: a card row holds the card vault's token, the brand, the last 4 digits, the
  expiry and the fingerprint; the holder name is stored encrypted (the card id as associated
  data). Numbers live in the card vault only (`services.binding.adapters.vault`: a database
  of its own, numbers encrypted under the vault's own key ring, as a tokenisation provider
  keeps them).
- A refund holds at most one card (`refund_holds` keyed by refund id) and a card with a hold
  cannot be deleted from under it (foreign key).
- A step-up grant is spent once (`consumed_grants`, walletcore.grants) and the admin audit
  log is append-only (the migration installs walletcore.audit's guard triggers).
- Enumerated columns hold only their enum's values (CHECK constraints).
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
    text,
)

from services.binding.domain.cards import CardBrand, CardStatus
from services.binding.domain.contact_changes import (
    MAX_TICKET_REF_LENGTH,
    AbandonReason,
    ChangeState,
    ContactKind,
)
from walletcore.audit import define_audit_table
from walletcore.db import UTCDateTime, enum_check, make_metadata
from walletcore.grants import define_consumed_grants_table
from walletcore.idempotency import define_idempotency_table

ID_LENGTH: Final = 64
"""Binding's own ids (uuid4 hex) and auth's account ids."""
EXTERNAL_ID_LENGTH: Final = 128
"""Ids other services choose (refund ids, auth's verification ids, operator ids)."""
VAULT_TOKEN_LENGTH: Final = 128
"""`CardVault.tokenize` returns at most 128 characters."""
FINGERPRINT_LENGTH: Final = 64
"""HMAC-SHA256 in hex (walletcore.crypto.BlindIndex)."""

metadata = make_metadata()


_ACTIVE: Final = f"status = '{CardStatus.ACTIVE.value}'"

cards = Table(
    "cards",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("account_id", String(ID_LENGTH), nullable=False, index=True),
    Column("token", String(VAULT_TOKEN_LENGTH), nullable=False),
    Column("fingerprint", String(FINGERPRINT_LENGTH), nullable=False),
    Column("brand", String(32), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("expiry_year", Integer, nullable=False),
    Column("expiry_month", Integer, nullable=False),
    # AES-256-GCM under binding's key ring, associated data "binding.card:<id>:holder_name".
    Column("holder_name", LargeBinary, nullable=False),
    Column("bound_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("unbound_at", UTCDateTime),
    # The last word on "one account per card": two binds racing past the early lookup meet
    # here, and the second one's insert fails (on PostgreSQL it first waits for the first).
    Index(
        "uq_cards_active_fingerprint",
        "fingerprint",
        unique=True,
        postgresql_where=text(_ACTIVE),
        sqlite_where=text(_ACTIVE),
    ),
    enum_check("status", CardStatus),
    enum_check("brand", CardBrand),
    CheckConstraint("expiry_month BETWEEN 1 AND 12", name="expiry_month_valid"),
    CheckConstraint("(status = 'UNBOUND') = (unbound_at IS NOT NULL)", name="unbound_at_set"),
)

refund_holds = Table(
    "refund_holds",
    metadata,
    Column("refund_id", String(EXTERNAL_ID_LENGTH), primary_key=True),
    Column("card_id", String(ID_LENGTH), ForeignKey("cards.id"), nullable=False, index=True),
    Column("placed_at", UTCDateTime, nullable=False),
)

contact_changes = Table(
    "contact_changes",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("account_id", String(ID_LENGTH), nullable=False, index=True),
    Column("kind", String(8), nullable=False),
    Column("verification_id", String(EXTERNAL_ID_LENGTH), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("operator_id", String(EXTERNAL_ID_LENGTH)),
    Column("ticket_ref", String(MAX_TICKET_REF_LENGTH)),
    Column("state", String(16), nullable=False),
    Column("closed_at", UTCDateTime),
    Column("abandon_reason", String(32)),
    enum_check("kind", ContactKind),
    enum_check("state", ChangeState),
    enum_check("abandon_reason", AbandonReason),
    CheckConstraint("(operator_id IS NULL) = (ticket_ref IS NULL)", name="assistance_complete"),
    CheckConstraint(
        "(state = 'STARTED') = (closed_at IS NULL) "
        "AND (state = 'ABANDONED') = (abandon_reason IS NOT NULL)",
        name="closed_consistently",
    ),
)

withdrawal_holds = Table(
    "withdrawal_holds",
    metadata,
    Column("account_id", String(ID_LENGTH), primary_key=True),
    Column("last_change_at", UTCDateTime, nullable=False),
)

consumed_grants = define_consumed_grants_table(metadata)
audit_log = define_audit_table(metadata)
idempotency_records = define_idempotency_table(metadata)
