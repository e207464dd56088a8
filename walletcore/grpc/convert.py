"""Translations every service's api layer shares between protobuf and plain values: times,
paging, enums by name, issued ids (walletcore.validation), and running an idempotent mutation.

Bad request fields raise `InvalidArgument` naming the proto field path, so every RPC of every
service reports bad input alike.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from wallet.common.v1 import paging_pb2
from walletcore.errors import InvalidArgument
from walletcore.idempotency import IdempotencyKey
from walletcore.identity import CallerKind, current_caller
from walletcore.transactions import Transactions
from walletcore.validation import ISSUED_ID, PAGE_TOKEN, checked_token

if TYPE_CHECKING:
    # The stubs' generic name for what is EnumTypeWrapper at run time.
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

ANONYMOUS_OWNER: Final = "anonymous"
"""The idempotency owner of calls made before sign-in (no caller subject yet)."""

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 200

_Response = TypeVar("_Response", bound=Message)
_Uow = TypeVar("_Uow")
_DomainEnum = TypeVar("_DomainEnum", bound=enum.Enum)
_ProtoValue = TypeVar("_ProtoValue", bound=int)


async def idempotent(
    tx: Transactions[_Uow],
    request: Message,
    response_type: type[_Response],
    work: Callable[[_Uow], Awaitable[bytes]],
) -> _Response:
    """Runs `work` once per (RPC, caller, request_id) and returns its answer as `response_type`.

    The scope is the request's message type, which is unique per RPC (buf's
    RPC_REQUEST_RESPONSE_UNIQUE rule). The owner is the caller's subject, or ANONYMOUS_OWNER
    for signed-out calls. `work` returns the serialized response; a retry gets the stored
    bytes back without running it again.
    """
    caller = current_caller()
    owner = ANONYMOUS_OWNER if caller.kind is CallerKind.ANONYMOUS else caller.subject
    key = IdempotencyKey.for_request(request.DESCRIPTOR.full_name, owner, request)
    return response_type.FromString(await tx.run_idempotent(key, work))


# -- times -------------------------------------------------------------------------------------


def timestamp(moment: datetime) -> Timestamp:
    """A protobuf Timestamp of a timezone-aware datetime."""
    if moment.utcoffset() is None:
        raise ValueError("a timestamp needs a timezone-aware datetime")
    converted = Timestamp()
    converted.FromDatetime(moment.astimezone(UTC))
    return converted


def to_datetime(moment: Timestamp) -> datetime:
    """The timezone-aware UTC datetime of a protobuf Timestamp."""
    return moment.ToDatetime(tzinfo=UTC)


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
    """The page token spelled as the services spell them (or empty, for the first page)."""
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


# -- ids ---------------------------------------------------------------------------------------


def id_from(raw: str, field: str) -> str:
    """An id this service issued (uuid hex), from request field `field`; InvalidArgument
    otherwise. Anything else cannot name one of its rows and never reaches a query."""
    return checked_token(raw, field, ISSUED_ID)
