"""Binding, listing and unbinding cards."""

from __future__ import annotations

from services.binding.domain.cards import (
    Card,
    CardNumber,
    Expiry,
    parse_holder_name,
)
from services.binding.domain.reasons import Reason, card_already_bound, card_not_found
from services.binding.service.context import BindingContext
from services.binding.service.ports import BindingReads, BindingUnitOfWork
from walletcore.errors import FailedPrecondition

UNBIND_CARD_PURPOSE = "UNBIND_CARD"


async def bind_card(
    uow: BindingUnitOfWork,
    ctx: BindingContext,
    *,
    account_id: str,
    card_number: str,
    expiry_month: int,
    expiry_year: int,
    holder_name: str,
) -> Card:
    """Checks the number, expiry and holder name (INVALID_ARGUMENT), the name against the
    approved KYC name (KYC_NOT_APPROVED, HOLDER_NAME_MISMATCH) and that no active card of any
    account has the number (CARD_ALREADY_BOUND); then the vault tokenises the number and the
    card is stored with its token, fingerprint, brand, last 4 and expiry."""
    now = ctx.clock()
    number = CardNumber.parse(card_number)
    expiry = Expiry.parse(expiry_month, expiry_year, now=now)
    name = parse_holder_name(holder_name)
    if not await ctx.kyc.match_verified_name(account_id, name):
        raise FailedPrecondition(
            "the holder name differs from the verified name",
            reason=Reason.HOLDER_NAME_MISMATCH,
        )
    # The early check saves a vault call; the unique index settles a race between two binds.
    if await uow.cards.find_active_by_fingerprint(ctx.fingerprints.candidates(number.digits)):
        raise card_already_bound()
    card = Card.bind(
        id=ctx.new_id(),
        account_id=account_id,
        number=number,
        token=await ctx.vault.tokenize(number),
        fingerprint=ctx.fingerprints.compute(number.digits),
        expiry=expiry,
        holder_name=name,
        now=now,
    )
    await uow.cards.add(card)
    return card


async def list_cards(reads: BindingReads, *, account_id: str, include_unbound: bool) -> list[Card]:
    return await reads.cards.list_for_account(account_id, include_unbound=include_unbound)


async def load_own_card(
    uow: BindingUnitOfWork, card_id: str, *, account_id: str, for_update: bool
) -> Card | None:
    """The card if it is `account_id`'s: another account's card is as unknown as none."""
    card = await uow.cards.get(card_id, for_update=for_update)
    return card if card is not None and card.account_id == account_id else None


async def unbind_card(
    uow: BindingUnitOfWork, ctx: BindingContext, *, account_id: str, card_id: str, grant: str
) -> Card:
    """CARD_NOT_FOUND, then the UNBIND_CARD grant for this card (consumed in this
    transaction, so a refusal below leaves it usable), then CARD_NOT_ACTIVE or
    REFUND_IN_FLIGHT; the card is locked first, so a concurrent refund hold waits or wins."""
    card = await load_own_card(uow, card_id, account_id=account_id, for_update=True)
    if card is None:
        raise card_not_found()
    await uow.grants.accept(
        grant, account_id=account_id, purpose=UNBIND_CARD_PURPOSE, object_id=card.id
    )
    card.unbind(ctx.clock(), refund_holds=await uow.refund_holds.count_for_card(card.id))
    await uow.cards.save(card)
    return card
