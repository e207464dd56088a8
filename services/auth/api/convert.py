"""Translations between auth's protobuf messages and its domain, shared by every servicer.

Request fields are validated here or by the domain parsers they call, and a bad one raises
`InvalidArgument` naming the proto field path (`contact.phone`, `client.device_id`,
`page.page_size`), so every RPC reports bad input alike. Nothing here decides a rule of the
product: that is the use cases' and the domain's job.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from google.protobuf.message import Message

from services.auth.domain.account import MAX_FREEZE_REASON_LENGTH, MAX_TICKET_REF_LENGTH
from services.auth.domain.contacts import (
    MAX_EMAIL_LENGTH,
    Contact,
    ContactKind,
    Email,
    Phone,
    VerifiedContact,
)
from services.auth.domain.device_tokens import MAX_DEVICE_TOKEN_LENGTH
from services.auth.domain.events import (
    Actor,
    ActorKind,
    Device,
    Origin,
    Platform,
    SecurityEvent,
    SecurityEventType,
)
from services.auth.domain.otp import OtpChannel
from services.auth.domain.passwords import MAX_PASSWORD_LENGTH
from services.auth.domain.proofs import FactorMethod
from services.auth.service.ports import StoredSecurityEvent
from wallet.auth.v1 import types_pb2
from wallet.common.v1 import client_pb2, contact_pb2, paging_pb2
from walletcore.errors import InvalidArgument
from walletcore.grpc.convert import ANONYMOUS_OWNER as ANONYMOUS_OWNER
from walletcore.grpc.convert import idempotent as idempotent
from walletcore.grpc.convert import timestamp as timestamp
from walletcore.grpc.convert import to_datetime as to_datetime
from walletcore.grpc.interceptors import UNKNOWN_ADDRESS, current_client_address
from walletcore.validation import (
    BEARER_SECRET,
    COMPACT_JWS,
    ISSUED_ID,
    PAGE_TOKEN,
    checked_text,
    checked_token,
)

if TYPE_CHECKING:
    # The stubs' generic name for what is EnumTypeWrapper at run time.
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 200

_Response = TypeVar("_Response", bound=Message)
_DomainEnum = TypeVar("_DomainEnum", bound=enum.Enum)
_ProtoValue = TypeVar("_ProtoValue", bound=int)

_PLATFORMS: Final = {
    client_pb2.PLATFORM_UNSPECIFIED: Platform.UNSPECIFIED,
    client_pb2.PLATFORM_IOS: Platform.IOS,
    client_pb2.PLATFORM_ANDROID: Platform.ANDROID,
    client_pb2.PLATFORM_WEB: Platform.WEB,
}
_PROTO_PLATFORMS: Final = {platform: number for number, platform in _PLATFORMS.items()}
_CONTACT_KINDS: Final = {
    ContactKind.PHONE: contact_pb2.CONTACT_KIND_PHONE,
    ContactKind.EMAIL: contact_pb2.CONTACT_KIND_EMAIL,
}
# IPv6 keeps its first 48 bits (the routing prefix), as the API documents.
_IPV6_SHOWN_GROUPS: Final = 3


# -- contacts and where a request came from ----------------------------------------------------


def contact_from(contact: contact_pb2.Contact, field: str) -> Contact:
    """The domain contact of a `wallet.common.v1.Contact` found at proto path `field`."""
    which = contact.WhichOneof("value")
    if which == "phone":
        phone = checked_text(contact.phone, f"{field}.phone", max_length=MAX_CONTACT_LENGTH)
        return Phone.parse(phone, field=f"{field}.phone")
    if which == "email":
        email = checked_text(contact.email, f"{field}.email", max_length=MAX_CONTACT_LENGTH)
        return Email.parse(email, field=f"{field}.email")
    raise InvalidArgument.field(field, "must hold a phone or an email")


def masked_contact(contact: VerifiedContact) -> types_pb2.MaskedContact:
    return types_pb2.MaskedContact(
        kind=_CONTACT_KINDS[contact.kind],
        masked_value=contact.value.masked(),
        verified_at=timestamp(contact.verified_at),
    )


def origin_of(client: client_pb2.ClientContext | None = None, field: str = "client") -> Origin:
    """The connection's client address with the device the app describes in `client` (at proto
    path `field`); an absent or empty ClientContext says nothing about the device."""
    return Origin(client_address=current_client_address(), device=device_from(client, field))


def device_from(client: client_pb2.ClientContext | None, field: str = "client") -> Device | None:
    if client is None or client.ByteSize() == 0:
        return None
    platform = _PLATFORMS.get(client.platform)
    if platform is None:
        raise InvalidArgument.field(f"{field}.platform", "is not a known platform")
    return Device.parse(
        device_id=client.device_id,
        device_name=client.device_name,
        platform=platform,
        app_version=client.app_version,
        field_prefix=field,
    )


def client_context(device: Device | None) -> client_pb2.ClientContext | None:
    """The device as the API shows it back; None when no client was involved."""
    if device is None:
        return None
    return client_pb2.ClientContext(
        device_id=device.device_id,
        device_name=device.device_name,
        platform=_PROTO_PLATFORMS[device.platform],
        app_version=device.app_version,
    )


def mask_client_address(address: str | None) -> str:
    """`203.0.113.7` -> `203.0.113.*`; IPv6 keeps its first 48 bits, e.g. `2001:db8:1:*`.
    Empty when no client was involved; a non-IP marker such as `unknown` is returned as is."""
    if not address:
        return ""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address if address in {UNKNOWN_ADDRESS, "unix"} else ""
    if isinstance(parsed, ipaddress.IPv4Address):
        return address.rpartition(".")[0] + ".*"
    groups = parsed.exploded.split(":")[:_IPV6_SHOWN_GROUPS]
    return ":".join(format(int(group, 16), "x") for group in groups) + ":*"


# -- paging ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageSpec:
    size: int
    token: str


def page_of(page: paging_pb2.PageRequest, field: str = "page") -> PageSpec:
    """wallet.common.v1.PageRequest as documented there: 0 means DEFAULT_PAGE_SIZE, sizes above
    MAX_PAGE_SIZE are lowered to it, a negative size is InvalidArgument on `page.page_size`.
    The token is opaque here; the repository that issued it judges it."""
    if page.page_size < 0:
        raise InvalidArgument.field(f"{field}.page_size", "must not be negative")
    size = min(page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return PageSpec(size=size, token=page_token_from(page, field))


def page_token_from(page: paging_pb2.PageRequest, field: str = "page") -> str:
    """The page token spelled as this service spells them (or empty, for the first page)."""
    return checked_token(page.page_token, f"{field}.page_token", PAGE_TOKEN, required=False)


def page_response(next_page_token: str) -> paging_pb2.PageResponse:
    return paging_pb2.PageResponse(next_page_token=next_page_token)


# -- enums -------------------------------------------------------------------------------------


def enum_from_proto(
    proto_enum: _EnumTypeWrapper[Any], number: int, domain_enum: type[_DomainEnum], field: str
) -> _DomainEnum:
    """The domain member whose NAME is the proto value's name without the enum's prefix, e.g.
    DELIVERY_CHANNEL_SMS -> OtpChannel.SMS. UNSPECIFIED and unknown numbers are
    InvalidArgument on `field`."""
    prefix = _prefix_of(proto_enum)
    names = {value: name for name, value in proto_enum.items()}
    member = domain_enum.__members__.get(names.get(number, "").removeprefix(prefix))
    if member is None:
        allowed = ", ".join(f"{prefix}{name}" for name in domain_enum.__members__)
        raise InvalidArgument.field(field, f"must be one of {allowed}")
    return member


def enum_to_proto(proto_enum: _EnumTypeWrapper[_ProtoValue], member: enum.Enum) -> _ProtoValue:
    """The proto number of a domain member (the inverse of `enum_from_proto`)."""
    return proto_enum.Value(_prefix_of(proto_enum) + member.name)


def _prefix_of(proto_enum: _EnumTypeWrapper[Any]) -> str:
    # buf's ENUM_ZERO_VALUE_SUFFIX rule: every enum's zero value is <PREFIX>UNSPECIFIED.
    return proto_enum.Name(proto_enum.values()[0]).removesuffix("UNSPECIFIED")


def channel_from(number: int, field: str = "channel") -> OtpChannel:
    return enum_from_proto(types_pb2.DeliveryChannel, number, OtpChannel, field)


@dataclass(frozen=True, slots=True)
class SecondFactorCode:
    method: FactorMethod
    code: str
    field: str
    """The proto path of the code, for errors about it."""


def second_factor_from(
    second_factor: types_pb2.SecondFactor, field: str = "second_factor"
) -> SecondFactorCode | None:
    """The TOTP or recovery code of a SecondFactor; None when neither is set."""
    which = second_factor.WhichOneof("code")
    if which == "totp_code":
        path = f"{field}.totp_code"
        return SecondFactorCode(FactorMethod.TOTP, code_from(second_factor.totp_code, path), path)
    if which == "recovery_code":
        path = f"{field}.recovery_code"
        return SecondFactorCode(
            FactorMethod.RECOVERY_CODE, code_from(second_factor.recovery_code, path), path
        )
    return None


# -- security events ---------------------------------------------------------------------------


_SUMMARIES: Final = {
    SecurityEventType.ACCOUNT_CREATED: "Account created",
    SecurityEventType.SIGN_IN: "Signed in",
    SecurityEventType.SIGN_IN_FAILED: "Sign-in failed",
    SecurityEventType.SIGN_IN_LOCKED: "Sign-in locked after repeated failures",
    SecurityEventType.SIGN_OUT: "Signed out",
    SecurityEventType.SESSION_REVOKED: "Session revoked",
    SecurityEventType.REFRESH_TOKEN_REUSED: "Session ended: a used refresh token came back",
    SecurityEventType.CREDENTIAL_RESET: "Password reset",
    SecurityEventType.TOTP_ENABLED: "Authenticator app enabled",
    SecurityEventType.TOTP_DISABLED: "Authenticator app disabled",
    SecurityEventType.RECOVERY_CODES_REGENERATED: "Recovery codes replaced",
    SecurityEventType.RECOVERY_CODE_USED: "Recovery code used",
    SecurityEventType.ACCOUNT_FROZEN: "Account frozen",
    SecurityEventType.ACCOUNT_UNFROZEN: "Account unfrozen",
    SecurityEventType.CONTACT_ADDED: "Contact added",
    SecurityEventType.CONTACT_CHANGED: "Contact changed",
    SecurityEventType.STEP_UP_GRANTED: "Identity confirmed for a sensitive action",
}
_METHOD_NAMES: Final = {
    FactorMethod.SMS.value: "an SMS code",
    FactorMethod.EMAIL.value: "an email code",
    FactorMethod.TOTP.value: "the authenticator app",
    FactorMethod.RECOVERY_CODE.value: "a recovery code",
}


def event_summary(event: SecurityEvent) -> str:
    """One human-readable line built from the type and the (already masked) details."""
    summary = _SUMMARIES[event.type]
    method = _METHOD_NAMES.get(event.details.get("method", ""))
    if method is not None:
        summary += f" with {method}"
    if event.type is SecurityEventType.ACCOUNT_FROZEN and event.actor.kind is ActorKind.USER:
        summary += " by its holder"
    elif event.actor.kind is ActorKind.OPERATOR:
        summary += " by a security officer"
    return summary


def security_event_to_proto(
    stored: StoredSecurityEvent, *, officer_view: bool
) -> types_pb2.SecurityEvent:
    """An event as its viewer may see it: the account holder gets the client address masked
    and operators unnamed; a security officer sees both in full."""
    event = stored.event
    address = event.origin.client_address
    return types_pb2.SecurityEvent(
        event_id=stored.id,
        type=enum_to_proto(types_pb2.SecurityEventType, event.type),
        occurred_at=timestamp(event.occurred_at),
        actor=actor_to_proto(event.actor, officer_view=officer_view),
        client_address=(address or "") if officer_view else mask_client_address(address),
        device=client_context(event.origin.device),
        summary=event_summary(event),
        details=dict(event.details),
    )


def actor_to_proto(actor: Actor, *, officer_view: bool) -> types_pb2.Actor:
    hidden = actor.kind is ActorKind.OPERATOR and not officer_view
    return types_pb2.Actor(
        kind=enum_to_proto(types_pb2.ActorKind, actor.kind), id="" if hidden else actor.id
    )


def security_event_types_from(
    numbers: Iterable[int], field: str = "types"
) -> frozenset[SecurityEventType]:
    """The types a timeline request filters by; empty means every type."""
    return frozenset(
        enum_from_proto(types_pb2.SecurityEventType, number, SecurityEventType, field)
        for number in numbers
    )


# -- strings of a request ----------------------------------------------------------------------
# Every string field of every request passes one of these (or a domain parser) before the use
# case runs: nothing a client sends reaches a query or a row unchecked (walletcore.validation).

MAX_CONTACT_LENGTH: Final = MAX_EMAIL_LENGTH
"""No phone spelling or email address is longer (the domain parsers judge the rest)."""
MAX_CODE_LENGTH: Final = 64
"""Far above any code's length (a recovery code is 19 characters with its dashes), so a
mistyped code still reaches the check that counts it."""
MAX_RAW_PASSWORD_LENGTH: Final = 4 * MAX_PASSWORD_LENGTH
"""The most a password can be before normalisation (the domain judges the normalised one)."""
MAX_OPERATOR_ID_LENGTH: Final = 128


def id_from(raw: str, field: str) -> str:
    """An id this service issued (uuid hex), from request field `field`; InvalidArgument
    otherwise. Anything else cannot name one of its rows and never reaches a query."""
    return checked_token(raw, field, ISSUED_ID)


def object_id_from(raw: str, field: str = "object_id") -> str:
    """What a step-up grant binds: another service's id, or a new phone or email; the domain
    judges which its purpose needs."""
    return checked_text(raw, field, max_length=MAX_CONTACT_LENGTH)


def bearer_secret_from(raw: str, field: str) -> str:
    """A `<id>.<secret>` token this service issued (refresh token, sign-in ticket)."""
    return checked_token(raw, field, BEARER_SECRET)


def grant_from(raw: str, field: str = "grant") -> str:
    """A step-up grant token: a compact JWS from CompleteStepUp."""
    if not raw:
        raise InvalidArgument.field(field, "is required: a grant token from CompleteStepUp")
    return checked_token(raw, field, COMPACT_JWS)


def code_from(raw: str, field: str = "code") -> str:
    """A one-time, TOTP or recovery code as typed: text, judged by the use case (a wrong one
    counts against its limit, so only what no code can be is refused here)."""
    return checked_text(raw, field, max_length=MAX_CODE_LENGTH)


def password_from(raw: str, field: str) -> str:
    """A password as typed (required); the domain's policy judges it where one is set."""
    return checked_text(raw, field, max_length=MAX_RAW_PASSWORD_LENGTH, required=True)


def device_token_from(raw: str, field: str = "device_token") -> str:
    """A device token as the client kept it (optional). Only its spelling is checked here: a
    well-spelled token that auth did not sign, or that has expired, counts as no token."""
    return checked_text(raw, field, max_length=MAX_DEVICE_TOKEN_LENGTH)


def reason_from(raw: str, field: str = "reason") -> str:
    """An officer's free-text reason; the use case decides whether one is required."""
    return checked_text(raw, field, max_length=MAX_FREEZE_REASON_LENGTH)


def ticket_ref_from(raw: str, field: str = "ticket_ref") -> str:
    return checked_text(raw, field, max_length=MAX_TICKET_REF_LENGTH)


def operator_id_from(raw: str, field: str) -> str:
    """An operator id from the identity provider (its format is the provider's: any text)."""
    return checked_text(raw, field, max_length=MAX_OPERATOR_ID_LENGTH)
