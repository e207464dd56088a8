"""What other services ask binding (`BindingQueryService`): instruments, refund holds and
the withdrawal cooling-off window."""

from __future__ import annotations

from dataclasses import dataclass

from services.binding.domain.cards import Card
from services.binding.domain.holds import HoldWindow, place_refund_hold, window_of
from services.binding.domain.reasons import instrument_not_found
from services.binding.service.cards import load_own_card
from services.binding.service.context import BindingContext
from services.binding.service.ports import BindingUnitOfWork


@dataclass(frozen=True, slots=True)
class Instrument:
    card: Card
    usable_for_refund: bool


async def get_instrument(
    uow: BindingUnitOfWork, ctx: BindingContext, *, account_id: str, instrument_id: str
) -> Instrument:
    """The account's card, unbound ones too; INSTRUMENT_NOT_FOUND otherwise."""
    card = await load_own_card(uow, instrument_id, account_id=account_id, for_update=False)
    if card is None:
        raise instrument_not_found()
    return Instrument(card=card, usable_for_refund=card.usable_for_refund(ctx.clock()))


async def place_hold(
    uow: BindingUnitOfWork,
    ctx: BindingContext,
    *,
    account_id: str,
    instrument_id: str,
    refund_id: str,
) -> None:
    """Holds the card for the refund (idempotent; moves the refund's hold from another card).
    The card is locked first, as an unbind locks it: of a hold and an unbind racing, the
    first to lock wins and the other is refused (INSTRUMENT_UNAVAILABLE or REFUND_IN_FLIGHT).
    """
    card = await load_own_card(uow, instrument_id, account_id=account_id, for_update=True)
    if card is None:
        raise instrument_not_found()
    existing = await uow.refund_holds.get(refund_id, for_update=True)
    hold = place_refund_hold(card, existing, refund_id=refund_id, now=ctx.clock())
    if hold is None:
        return
    if existing is None:
        await uow.refund_holds.add(hold)
    else:
        await uow.refund_holds.save(hold)


async def release_hold(uow: BindingUnitOfWork, *, refund_id: str) -> bool:
    """True when the refund held a card; releasing nothing succeeds too."""
    return await uow.refund_holds.remove(refund_id)


async def withdrawal_window(
    uow: BindingUnitOfWork, ctx: BindingContext, *, account_id: str
) -> HoldWindow:
    return window_of(await uow.withdrawal_holds.get(account_id), ctx.clock())
