"""Binding's `BindingQueryService` as refund's `InstrumentHolds` port, over walletcore's
internal channel (refund's service token, deadline, the remote's reasons as DomainErrors:
INSTRUMENT_NOT_FOUND, INSTRUMENT_UNAVAILABLE; unreachable is Unavailable).

    holds = BindingHolds(clients.channel(binding_target, reads=BINDING_READS))
"""

from __future__ import annotations

from typing import Final

from wallet.binding.v1 import binding_query_service_pb2 as query_pb
from wallet.binding.v1 import binding_query_service_pb2_grpc
from walletcore.grpc.clients import InternalChannel

BINDING_QUERY_SERVICE: Final = "wallet.binding.v1.BindingQueryService"
BINDING_READS: Final = ((BINDING_QUERY_SERVICE, "GetInstrument"),)
"""The read the channel may retry on UNAVAILABLE. The holds write, so they are not retried by
the channel; their request ids make the payout worker's next pass a safe retry."""


class BindingHolds:
    def __init__(self, channel: InternalChannel) -> None:
        self._channel = channel
        self._stub = binding_query_service_pb2_grpc.BindingQueryServiceStub(channel.channel)

    async def is_usable(self, *, account_id: str, instrument_id: str) -> bool:
        response: query_pb.GetInstrumentResponse = await self._channel.call(
            self._stub.GetInstrument,
            query_pb.GetInstrumentRequest(account_id=account_id, instrument_id=instrument_id),
        )
        return response.instrument.usable_for_refund

    async def place(
        self, *, request_id: str, account_id: str, instrument_id: str, refund_id: str
    ) -> None:
        await self._channel.call(
            self._stub.PlaceRefundHold,
            query_pb.PlaceRefundHoldRequest(
                request_id=request_id,
                account_id=account_id,
                instrument_id=instrument_id,
                refund_id=refund_id,
            ),
        )

    async def release(self, *, request_id: str, refund_id: str) -> None:
        await self._channel.call(
            self._stub.ReleaseRefundHold,
            query_pb.ReleaseRefundHoldRequest(request_id=request_id, refund_id=refund_id),
        )
