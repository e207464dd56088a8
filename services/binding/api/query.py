"""`BindingQueryService` on the internal port: what refund asks binding about instruments,
refund holds and withdrawal windows (service identities only, by the port's policy)."""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.binding.api.convert import (
    brand_to_proto,
    id_from,
    status_to_proto,
    window_to_proto,
)
from services.binding.service import holds
from services.binding.service.context import BindingContext
from services.binding.service.ports import BindingUnitOfWork
from wallet.binding.v1 import binding_query_service_pb2 as pb
from wallet.binding.v1 import binding_query_service_pb2_grpc
from walletcore.grpc.convert import idempotent
from walletcore.transactions import Transactions

Context = grpc.aio.ServicerContext[Any, Any]


class BindingQueryServicer(binding_query_service_pb2_grpc.BindingQueryServiceServicer):
    def __init__(self, ctx: BindingContext, tx: Transactions[BindingUnitOfWork]) -> None:
        self.ctx = ctx
        self.tx = tx

    async def GetInstrument(
        self, request: pb.GetInstrumentRequest, context: Context
    ) -> pb.GetInstrumentResponse:
        account_id = id_from(request.account_id, "account_id")
        instrument_id = id_from(request.instrument_id, "instrument_id")
        instrument = await self.tx.run(
            lambda uow: holds.get_instrument(
                uow, self.ctx, account_id=account_id, instrument_id=instrument_id
            )
        )
        card = instrument.card
        return pb.GetInstrumentResponse(
            instrument=pb.Instrument(
                instrument_id=card.id,
                status=status_to_proto(card.status),
                brand=brand_to_proto(card.brand),
                last4=card.last4,
                expiry_month=card.expiry.month,
                expiry_year=card.expiry.year,
                usable_for_refund=instrument.usable_for_refund,
            )
        )

    async def GetWithdrawalHold(
        self, request: pb.BindingQueryServiceGetWithdrawalHoldRequest, context: Context
    ) -> pb.BindingQueryServiceGetWithdrawalHoldResponse:
        account_id = id_from(request.account_id, "account_id")
        window = await self.tx.run(
            lambda uow: holds.withdrawal_window(uow, self.ctx, account_id=account_id)
        )
        return pb.BindingQueryServiceGetWithdrawalHoldResponse(
            withdrawal_hold=window_to_proto(window)
        )

    async def PlaceRefundHold(
        self, request: pb.PlaceRefundHoldRequest, context: Context
    ) -> pb.PlaceRefundHoldResponse:
        account_id = id_from(request.account_id, "account_id")
        instrument_id = id_from(request.instrument_id, "instrument_id")
        refund_id = id_from(request.refund_id, "refund_id")

        async def work(uow: BindingUnitOfWork) -> bytes:
            await holds.place_hold(
                uow,
                self.ctx,
                account_id=account_id,
                instrument_id=instrument_id,
                refund_id=refund_id,
            )
            return pb.PlaceRefundHoldResponse().SerializeToString()

        return await idempotent(self.tx, request, pb.PlaceRefundHoldResponse, work)

    async def ReleaseRefundHold(
        self, request: pb.ReleaseRefundHoldRequest, context: Context
    ) -> pb.ReleaseRefundHoldResponse:
        refund_id = id_from(request.refund_id, "refund_id")

        async def work(uow: BindingUnitOfWork) -> bytes:
            released = await holds.release_hold(uow, refund_id=refund_id)
            return pb.ReleaseRefundHoldResponse(released=released).SerializeToString()

        return await idempotent(self.tx, request, pb.ReleaseRefundHoldResponse, work)
