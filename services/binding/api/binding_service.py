"""`BindingService` on the public port: the caller's cards and contact changes.

The port's verifier (walletcore.users.ActiveUserVerifier) has already checked the access token
with auth's keys and asked auth that the account is active and the session alive, so the
caller's subject is the account every use case acts for. Each mutation runs once per
request_id (walletcore.grpc.convert.idempotent) in one unit of work.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.binding.api.convert import (
    card_to_proto,
    code_from,
    grant_from,
    id_from,
    new_contact_from,
    window_to_proto,
)
from services.binding.service import cards, contacts, holds
from services.binding.service.context import BindingContext
from services.binding.service.ports import BindingReads, BindingUnitOfWork
from wallet.binding.v1 import binding_service_pb2 as pb
from wallet.binding.v1 import binding_service_pb2_grpc
from walletcore.grpc.convert import idempotent, timestamp
from walletcore.identity import current_caller
from walletcore.transactions import Transactions

Context = grpc.aio.ServicerContext[Any, Any]


class BindingServicer(binding_service_pb2_grpc.BindingServiceServicer):
    def __init__(
        self, ctx: BindingContext, tx: Transactions[BindingUnitOfWork], reads: BindingReads
    ) -> None:
        self.ctx = ctx
        self.tx = tx
        self.reads = reads

    async def BindCard(self, request: pb.BindCardRequest, context: Context) -> pb.BindCardResponse:
        account_id = current_caller().subject

        async def work(uow: BindingUnitOfWork) -> bytes:
            card = await cards.bind_card(
                uow,
                self.ctx,
                account_id=account_id,
                card_number=request.card_number,
                expiry_month=request.expiry_month,
                expiry_year=request.expiry_year,
                holder_name=request.holder_name,
            )
            return pb.BindCardResponse(card=card_to_proto(card)).SerializeToString()

        return await idempotent(self.tx, request, pb.BindCardResponse, work)

    async def ListCards(
        self, request: pb.ListCardsRequest, context: Context
    ) -> pb.ListCardsResponse:
        account_id = current_caller().subject
        # A read of one statement, outside any transaction (the hot path under load).
        listed = await cards.list_cards(
            self.reads, account_id=account_id, include_unbound=request.include_unbound
        )
        return pb.ListCardsResponse(cards=[card_to_proto(card) for card in listed])

    async def UnbindCard(
        self, request: pb.UnbindCardRequest, context: Context
    ) -> pb.UnbindCardResponse:
        account_id = current_caller().subject
        card_id = id_from(request.card_id, "card_id")
        grant = grant_from(request.grant)

        async def work(uow: BindingUnitOfWork) -> bytes:
            card = await cards.unbind_card(
                uow, self.ctx, account_id=account_id, card_id=card_id, grant=grant
            )
            return pb.UnbindCardResponse(card=card_to_proto(card)).SerializeToString()

        return await idempotent(self.tx, request, pb.UnbindCardResponse, work)

    async def StartContactChange(
        self, request: pb.StartContactChangeRequest, context: Context
    ) -> pb.StartContactChangeResponse:
        account_id = current_caller().subject
        new_contact = new_contact_from(request.new_contact)
        grant = grant_from(request.grant)

        async def work(uow: BindingUnitOfWork) -> bytes:
            started = await contacts.start_contact_change(
                uow, self.ctx, account_id=account_id, new_contact=new_contact, grant=grant
            )
            return pb.StartContactChangeResponse(
                change_id=started.change_id,
                masked_destination=started.masked_destination,
                expires_at=timestamp(started.expires_at),
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.StartContactChangeResponse, work)

    async def CompleteContactChange(
        self, request: pb.CompleteContactChangeRequest, context: Context
    ) -> pb.CompleteContactChangeResponse:
        account_id = current_caller().subject
        change_id = id_from(request.change_id, "change_id")
        code = code_from(request.code)

        async def work(uow: BindingUnitOfWork) -> bytes:
            completed = await contacts.complete_contact_change(
                uow,
                self.ctx,
                account_id=account_id,
                change_id=change_id,
                code=code,
                request_id=request.request_id,
            )
            return pb.CompleteContactChangeResponse(
                changed_at=timestamp(completed.changed_at),
                withdrawal_hold=window_to_proto(completed.withdrawal_hold),
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.CompleteContactChangeResponse, work)

    async def GetWithdrawalHold(
        self, request: pb.GetWithdrawalHoldRequest, context: Context
    ) -> pb.GetWithdrawalHoldResponse:
        account_id = current_caller().subject
        window = await self.tx.run(
            lambda uow: holds.withdrawal_window(uow, self.ctx, account_id=account_id)
        )
        return pb.GetWithdrawalHoldResponse(withdrawal_hold=window_to_proto(window))
