"""Security events, who caused them, from where, and which of them the user is told about.

Domain methods return these events instead of performing effects. The service layer stores
every `SecurityEvent` (the user's and security officers' timeline), writes each
`NotificationRequested` to the outbox in the same transaction, and revokes sessions for
`AccountSessionsRevoked`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from walletcore.errors import FieldViolation, InvalidArgument

from .contacts import Contact

_DEVICE_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_DEVICE_NAME_LENGTH: Final = 64
MAX_APP_VERSION_LENGTH: Final = 32
# Detail keys that would hold a secret: a guard against a caller copying request fields.
_SECRET_DETAIL_KEYS: Final = frozenset(
    {"code", "password", "new_password", "secret", "token", "refresh_token", "recovery_code"}
)


class ActorKind(enum.StrEnum):
    USER = "user"
    OPERATOR = "operator"
    """A security officer; the service layer has checked the role before building one."""
    SYSTEM = "system"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    id: str
    """Account id, operator id or service name; empty for the system."""

    @classmethod
    def user(cls, account_id: str) -> Actor:
        return cls(ActorKind.USER, account_id)

    @classmethod
    def security_officer(cls, operator_id: str) -> Actor:
        return cls(ActorKind.OPERATOR, operator_id)

    @classmethod
    def system(cls) -> Actor:
        return cls(ActorKind.SYSTEM, "")

    @classmethod
    def service(cls, name: str) -> Actor:
        return cls(ActorKind.SERVICE, name)


class Platform(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    IOS = "ios"
    ANDROID = "android"
    WEB = "web"


@dataclass(frozen=True, slots=True)
class Device:
    """What the app says about the device: shown back to the user, never trusted."""

    device_id: str
    device_name: str = ""
    platform: Platform = Platform.UNSPECIFIED
    app_version: str = ""

    @classmethod
    def parse(
        cls,
        *,
        device_id: str,
        device_name: str = "",
        platform: Platform = Platform.UNSPECIFIED,
        app_version: str = "",
        field_prefix: str = "device",
    ) -> Device:
        """Raises InvalidArgument naming every bad field (e.g. `device.device_id`)."""
        violations = []
        if not _DEVICE_ID.fullmatch(device_id):
            violations.append(
                FieldViolation(f"{field_prefix}.device_id", "must be 1 to 64 of A-Z a-z 0-9 _ -")
            )
        if len(device_name) > MAX_DEVICE_NAME_LENGTH or not device_name.isprintable():
            violations.append(
                FieldViolation(
                    f"{field_prefix}.device_name",
                    f"must be at most {MAX_DEVICE_NAME_LENGTH} printable characters",
                )
            )
        if len(app_version) > MAX_APP_VERSION_LENGTH or not app_version.isprintable():
            violations.append(
                FieldViolation(
                    f"{field_prefix}.app_version",
                    f"must be at most {MAX_APP_VERSION_LENGTH} printable characters",
                )
            )
        if violations:
            raise InvalidArgument(violations)
        return cls(device_id, device_name, platform, app_version)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from: the connection's address (never a message field) and the
    app's device description. Both are None when no client was involved."""

    client_address: str | None = None
    device: Device | None = None


NO_CLIENT: Final = Origin()


class SecurityEventType(enum.StrEnum):
    """Every event of SPEC section 3, as wallet.auth.v1.SecurityEventType lists them."""

    ACCOUNT_CREATED = "ACCOUNT_CREATED"
    SIGN_IN = "SIGN_IN"
    SIGN_IN_FAILED = "SIGN_IN_FAILED"
    SIGN_IN_LOCKED = "SIGN_IN_LOCKED"
    SIGN_OUT = "SIGN_OUT"
    SESSION_REVOKED = "SESSION_REVOKED"
    REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"  # noqa: S105 (a name, not a password)
    CREDENTIAL_RESET = "CREDENTIAL_RESET"
    TOTP_ENABLED = "TOTP_ENABLED"
    TOTP_DISABLED = "TOTP_DISABLED"
    RECOVERY_CODES_REGENERATED = "RECOVERY_CODES_REGENERATED"
    RECOVERY_CODE_USED = "RECOVERY_CODE_USED"
    ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
    ACCOUNT_UNFROZEN = "ACCOUNT_UNFROZEN"
    CONTACT_ADDED = "CONTACT_ADDED"
    CONTACT_CHANGED = "CONTACT_CHANGED"
    STEP_UP_GRANTED = "STEP_UP_GRANTED"


NOTIFIED_EVENT_TYPES: Final = frozenset(
    {
        # Changes to how the account is protected or reached: the user must hear of them on
        # every verified contact, because the one an attacker controls may be the only one
        # they are watching.
        SecurityEventType.CREDENTIAL_RESET,
        SecurityEventType.TOTP_ENABLED,
        SecurityEventType.TOTP_DISABLED,
        SecurityEventType.RECOVERY_CODES_REGENERATED,
        SecurityEventType.RECOVERY_CODE_USED,
        SecurityEventType.ACCOUNT_FROZEN,
        SecurityEventType.ACCOUNT_UNFROZEN,
        SecurityEventType.CONTACT_ADDED,
        SecurityEventType.CONTACT_CHANGED,
        # Signs of an attack in progress.
        SecurityEventType.SIGN_IN_LOCKED,
        SecurityEventType.REFRESH_TOKEN_REUSED,
    }
)
"""Events every verified contact is notified of. A sign-in is notified only from a device the
account has not used before (see `Account.record_sign_in`); the rest stay in the timeline."""


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    type: SecurityEventType
    account_id: str
    occurred_at: datetime
    actor: Actor
    origin: Origin = NO_CLIENT
    details: Mapping[str, str] = field(default_factory=dict)
    """Facts such as session_id, method, channel, reason, ticket_ref; contacts only masked."""

    def __post_init__(self) -> None:
        if leaked := _SECRET_DETAIL_KEYS.intersection(self.details):
            raise ValueError(f"security event details must not hold secrets: {sorted(leaked)}")


@dataclass(frozen=True, slots=True)
class NotificationRequested:
    """Tell the user about `event` at each of `recipients` (through the outbox)."""

    event: SecurityEvent
    recipients: tuple[Contact, ...]


class RevokeReason(enum.StrEnum):
    SIGN_OUT = "SIGN_OUT"
    REVOKED_BY_USER = "REVOKED_BY_USER"
    REVOKED_BY_OFFICER = "REVOKED_BY_OFFICER"
    CREDENTIAL_RESET = "CREDENTIAL_RESET"
    ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
    REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"  # noqa: S105 (a name, not a password)


@dataclass(frozen=True, slots=True)
class AccountSessionsRevoked:
    """Revoke every session and refresh token of the account, effective at once."""

    account_id: str
    reason: RevokeReason
    occurred_at: datetime


DomainEvent = SecurityEvent | NotificationRequested | AccountSessionsRevoked


def recorded(
    event: SecurityEvent,
    contacts: Iterable[Contact],
    *,
    notify: bool | None = None,
    also_notify: Iterable[Contact] = (),
) -> tuple[DomainEvent, ...]:
    """The event, plus a notification to `contacts` (and `also_notify`, e.g. a replaced
    contact) when `notify` says so or, by default, when its type is in NOTIFIED_EVENT_TYPES."""
    if notify is None:
        notify = event.type in NOTIFIED_EVENT_TYPES
    recipients = tuple(dict.fromkeys([*contacts, *also_notify]))
    if not (notify and recipients):
        return (event,)
    return (event, NotificationRequested(event, recipients))
