"""Auth's database schema: one MetaData for the repositories and the Alembic migrations.

The domain objects are slotted dataclasses, so they are not ORM-mapped: the repositories read
and write these SQLAlchemy Core tables and map rows to domain objects explicitly.

What the schema itself guarantees, whatever code runs against it:

- A verified contact belongs to one account: `account_contacts` is UNIQUE on (kind,
  value_index), the keyed blind index of the normalised phone number or address. The value
  itself is stored only encrypted (as are pending contacts and step-up objects, which may be a
  new phone or email), so no table holds a contact in clear.
- An account has at most one contact of each kind, one TOTP factor and one set of recovery
  codes.
- Enumerated columns hold only their enum's values, and counters stay within the domain's
  limits (CHECK constraints).
- The audit log is append-only: the migration installs `walletcore.audit`'s guard triggers.

Secrets are stored as the domain hands them over: keyed hashes (codes, refresh tokens,
tickets, recovery codes), argon2id password hashes, and the TOTP secret already encrypted.
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
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from services.auth.domain.account import (
    MAX_FREEZE_REASON_LENGTH,
    MAX_TICKET_REF_LENGTH,
    AccountStatus,
)
from services.auth.domain.contacts import ContactKind
from services.auth.domain.events import (
    MAX_APP_VERSION_LENGTH,
    MAX_DEVICE_NAME_LENGTH,
    ActorKind,
    Platform,
    RevokeReason,
    SecurityEventType,
)
from services.auth.domain.otp import MAX_FAILED_ATTEMPTS_PER_CODE, OtpChannel, OtpState
from services.auth.domain.pending import PendingContactPurpose
from services.auth.domain.proofs import ChallengePurpose, FactorMethod
from services.auth.domain.stepup import StepUpPurpose
from services.auth.domain.throttling import MAX_CONSECUTIVE_FAILURES, CounterScope
from services.auth.domain.totp import MAX_FAILED_CONFIRMATIONS, TotpState
from walletcore.audit import define_audit_table
from walletcore.db import UTCDateTime, enum_check, make_metadata
from walletcore.grants import define_consumed_grants_table
from walletcore.idempotency import define_idempotency_table
from walletcore.outbox import define_outbox_table

ID_LENGTH: Final = 64
"""Ids are uuid4 hex from the service layer; the margin admits other opaque ids."""
ACTOR_ID_LENGTH: Final = 128
"""An account id, an operator id or a service name (as the audit log bounds actors)."""
HASH_LENGTH: Final = 128
"""A keyed hash as `walletcore.crypto.SecretHasher` stores it: `kid:` and 64 hex digits."""
CLIENT_ADDRESS_LENGTH: Final = 64
"""An IPv4 or IPv6 address as `walletcore.grpc.interceptors.client_address` gives it."""
DEVICE_ID_LENGTH: Final = 64

metadata = make_metadata()


_one_of = enum_check


def _primary_id() -> Column[str]:
    return Column("id", String(ID_LENGTH), primary_key=True)


def _account_ref(*, nullable: bool = False, index: bool = True) -> Column[str]:
    return Column(
        "account_id", String(ID_LENGTH), ForeignKey("accounts.id"), nullable=nullable, index=index
    )


def _origin_columns() -> list[Column[object]]:
    """Where a request came from (events.Origin): the address and the device, all optional."""
    return [
        Column("client_address", String(CLIENT_ADDRESS_LENGTH)),
        Column("device_id", String(DEVICE_ID_LENGTH)),
        Column("device_name", String(MAX_DEVICE_NAME_LENGTH)),
        Column("device_platform", String(16)),
        Column("device_app_version", String(MAX_APP_VERSION_LENGTH)),
    ]


def _origin_checks() -> list[CheckConstraint]:
    return [
        _one_of("device_platform", Platform),
        # A device is described in full or not at all.
        CheckConstraint(
            "(device_id IS NULL) = (device_name IS NULL) "
            "AND (device_id IS NULL) = (device_platform IS NULL) "
            "AND (device_id IS NULL) = (device_app_version IS NULL)",
            name="device_complete",
        ),
    ]


accounts = Table(
    "accounts",
    metadata,
    _primary_id(),
    Column("status", String(16), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_changed_at", UTCDateTime),
    # Optimistic concurrency: a save that did not lock the row fails instead of overwriting
    # a change committed after it was read.
    Column("version", Integer, nullable=False),
    _one_of("status", AccountStatus),
    CheckConstraint("version >= 1", name="version_positive"),
)

account_contacts = Table(
    "account_contacts",
    metadata,
    _primary_id(),
    _account_ref(index=False),  # UNIQUE (account_id, kind) serves as its index
    Column("kind", String(8), nullable=False),
    Column("value_index", String(64), nullable=False),
    Column("value_encrypted", LargeBinary, nullable=False),
    Column("verified_at", UTCDateTime, nullable=False),
    UniqueConstraint("kind", "value_index"),
    UniqueConstraint("account_id", "kind"),
    _one_of("kind", ContactKind),
)

freeze_history = Table(
    "freeze_history",
    metadata,
    Column("account_id", String(ID_LENGTH), ForeignKey("accounts.id"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("frozen", Boolean, nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(ACTOR_ID_LENGTH), nullable=False),
    Column("reason", String(MAX_FREEZE_REASON_LENGTH), nullable=False),
    Column("ticket_ref", String(MAX_TICKET_REF_LENGTH), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    _one_of("actor_kind", ActorKind),
    CheckConstraint("position >= 0", name="position_not_negative"),
)

totp_factors = Table(
    "totp_factors",
    metadata,
    Column("account_id", String(ID_LENGTH), ForeignKey("accounts.id"), primary_key=True),
    Column("id", String(ID_LENGTH), nullable=False, unique=True),
    Column("encrypted_secret", LargeBinary, nullable=False),
    Column("state", String(24), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime),
    Column("disabled_at", UTCDateTime),
    Column("last_accepted_step", BigInteger),
    Column("failed_confirmations", Integer, nullable=False),
    _one_of("state", TotpState),
    CheckConstraint(
        f"failed_confirmations BETWEEN 0 AND {MAX_FAILED_CONFIRMATIONS}",
        name="failed_confirmations_range",
    ),
)

recovery_code_sets = Table(
    "recovery_code_sets",
    metadata,
    _primary_id(),
    Column("account_id", String(ID_LENGTH), ForeignKey("accounts.id"), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("set_id", String(ID_LENGTH), ForeignKey("recovery_code_sets.id"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("code_hash", String(HASH_LENGTH), nullable=False),
    Column("used_at", UTCDateTime),
)

sessions = Table(
    "sessions",
    metadata,
    _primary_id(),
    _account_ref(index=False),  # ix_sessions_account_id_created_at serves as its index
    *_origin_columns(),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("revoke_reason", String(32)),
    Index("ix_sessions_account_id_created_at", "account_id", "created_at"),
    _one_of("revoke_reason", RevokeReason),
    *_origin_checks(),
    CheckConstraint("(revoked_at IS NULL) = (revoke_reason IS NULL)", name="revocation_complete"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    _primary_id(),
    Column("session_id", String(ID_LENGTH), ForeignKey("sessions.id"), nullable=False, index=True),
    Column("token_hash", String(HASH_LENGTH), nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
)

pending_sign_ins = Table(
    "pending_sign_ins",
    metadata,
    _primary_id(),
    _account_ref(),
    Column("ticket_hash", String(HASH_LENGTH), nullable=False),
    *_origin_columns(),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    *_origin_checks(),
)

otp_challenges = Table(
    "otp_challenges",
    metadata,
    _primary_id(),
    _account_ref(nullable=True),
    Column("purpose", String(32), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("destination_ref", String(HASH_LENGTH), nullable=False),
    Column("code_hash", String(HASH_LENGTH), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("used_at", UTCDateTime),
    Column("failed_attempts", Integer, nullable=False),
    _one_of("purpose", ChallengePurpose),
    _one_of("channel", OtpChannel),
    _one_of("state", OtpState),
    CheckConstraint(
        f"failed_attempts BETWEEN 0 AND {MAX_FAILED_ATTEMPTS_PER_CODE}",
        name="failed_attempts_range",
    ),
)

step_up_challenges = Table(
    "step_up_challenges",
    metadata,
    _primary_id(),
    _account_ref(),
    Column("purpose", String(32), nullable=False),
    # Encrypted: for CHANGE_PHONE and CHANGE_EMAIL the object is the new contact.
    Column("object_id_encrypted", LargeBinary),
    Column("method", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    # No foreign key: the use case may store the step-up and its OTP challenge in either order.
    Column("otp_challenge_id", String(ID_LENGTH)),
    Column("completed_at", UTCDateTime),
    _one_of("purpose", StepUpPurpose),
    _one_of("method", FactorMethod),
)

pending_contacts = Table(
    "pending_contacts",
    metadata,
    _primary_id(),
    Column("purpose", String(16), nullable=False),
    _account_ref(nullable=True),
    Column("contact_kind", String(8), nullable=False),
    Column("contact_encrypted", LargeBinary, nullable=False),
    # No foreign key: the use case may store the pending contact and its challenge in either
    # order.
    Column("challenge_id", String(ID_LENGTH), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("password_hash", String(255)),
    Column("requested_by_kind", String(16)),
    Column("requested_by_id", String(ACTOR_ID_LENGTH)),
    Column("completed_at", UTCDateTime),
    _one_of("purpose", PendingContactPurpose),
    _one_of("contact_kind", ContactKind),
    _one_of("requested_by_kind", ActorKind),
    # A registration has a password and no account yet; the other purposes the reverse.
    CheckConstraint(
        "(purpose = 'REGISTRATION') = (account_id IS NULL) "
        "AND (purpose = 'REGISTRATION') = (password_hash IS NOT NULL)",
        name="registration_shape",
    ),
    CheckConstraint(
        "(requested_by_kind IS NULL) = (requested_by_id IS NULL)", name="requested_by_complete"
    ),
)

code_failure_ledgers = Table(
    "code_failure_ledgers",
    metadata,
    Column("subject", String(HASH_LENGTH), primary_key=True),
    # A JSON array of ISO 8601 instants, oldest first; the policy keeps it short.
    Column("recent_failures", Text, nullable=False),
    Column("locked_until", UTCDateTime),
)

failure_counters = Table(
    "failure_counters",
    metadata,
    Column("scope", String(16), primary_key=True),
    # `subject|client address` for a pair: both parts bounded above.
    Column("key", String(255), primary_key=True),
    Column("consecutive_failures", Integer, nullable=False),
    Column("last_failure_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    _one_of("scope", CounterScope),
    CheckConstraint(
        f"consecutive_failures >= 0 AND (scope <> 'ACCOUNT' "
        f"OR consecutive_failures <= {MAX_CONSECUTIVE_FAILURES})",
        name="consecutive_failures_range",
    ),
)

security_events = Table(
    "security_events",
    metadata,
    # The order events were recorded in: it breaks ties between events of one instant.
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),  # SQLite numbers only INTEGER keys
        primary_key=True,
        autoincrement=True,
    ),
    Column("id", String(ID_LENGTH), nullable=False, unique=True),
    # No foreign key: the timeline is a log, and a use case may publish an account's first
    # event before it stores the account.
    Column("account_id", String(ID_LENGTH), nullable=False),
    Column("type", String(32), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(ACTOR_ID_LENGTH), nullable=False),
    *_origin_columns(),
    # A JSON object of strings; contacts in it are masked by the domain.
    Column("details", Text, nullable=False),
    # The timeline pages newest first by (occurred_at, seq); a B-tree reads it backwards.
    Index("ix_security_events_account_id_occurred_at", "account_id", "occurred_at", "seq"),
    _one_of("type", SecurityEventType),
    _one_of("actor_kind", ActorKind),
    *_origin_checks(),
)

used_grants = define_consumed_grants_table(metadata, name="used_grants")

outbox = define_outbox_table(metadata)
audit_log = define_audit_table(metadata)
idempotency_records = define_idempotency_table(metadata)
