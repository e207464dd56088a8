"""Translations every service's api layer shares between protobuf and plain values: times,
and running an idempotent mutation.

    async def work(uow) -> bytes:
        card = await bind_card(uow, ctx, ...)
        return BindCardResponse(card=...).SerializeToString()

    return await idempotent(tx, request, BindCardResponse, work)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from walletcore.idempotency import IdempotencyKey
from walletcore.identity import CallerKind, current_caller
from walletcore.transactions import Transactions

ANONYMOUS_OWNER: Final = "anonymous"
"""The idempotency owner of calls made before sign-in (no caller subject yet)."""

_Response = TypeVar("_Response", bound=Message)
_Uow = TypeVar("_Uow")


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
