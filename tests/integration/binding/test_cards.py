"""Cards on SQL: binding, listing, unbinding with a grant, rebinding, one account per card."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from services.binding.domain.cards import Card, CardBrand, CardStatus
from services.binding.service import cards
from services.binding.service.ports import BindingUnitOfWork
from tests.integration.binding.conftest import ACCOUNT, HOLDERS, OTHER, Binding
from walletcore.errors import AlreadyExists, DomainError

NUMBER = "4242 4242 4242 4242"


async def bind(binding: Binding, account_id: str = ACCOUNT, number: str = NUMBER) -> Card:
    async def work(uow: BindingUnitOfWork) -> Card:
        return await cards.bind_card(
            uow,
            binding.ctx,
            account_id=account_id,
            card_number=number,
            expiry_month=12,
            expiry_year=2030,
            holder_name=HOLDERS[account_id],
        )

    return await binding.tx.run(work)


async def unbind(binding: Binding, card: Card, grant: str | None = None) -> Card:
    token = grant or binding.grant("UNBIND_CARD", card.id, card.account_id)
    return await binding.tx.run(
        lambda uow: cards.unbind_card(
            uow, binding.ctx, account_id=card.account_id, card_id=card.id, grant=token
        )
    )


async def listed(binding: Binding, account_id: str = ACCOUNT, **options: bool) -> list[Card]:
    include_unbound = options.get("include_unbound", False)
    return await binding.tx.run(
        lambda uow: cards.list_cards(uow, account_id=account_id, include_unbound=include_unbound)
    )


async def refusal(work_result: object) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await work_result  # type: ignore[misc]
    return caught.value


async def test_a_bound_card_reads_back_as_it_was_stored(binding: Binding) -> None:
    card = await bind(binding)

    [stored] = await listed(binding)

    assert stored == card
    assert (stored.brand, stored.last4, stored.holder_name) == (
        CardBrand.VISA,
        "4242",
        "Test Holder",
    )
    assert stored.token.startswith("vt_")


async def test_lists_are_newest_first_and_unbound_cards_only_on_request(
    binding: Binding,
) -> None:
    first = await bind(binding)
    binding.clock.advance(timedelta(minutes=1))
    second = await bind(binding, number="5555 5555 5555 4444")
    await unbind(binding, first)

    assert [card.id for card in await listed(binding)] == [second.id]
    everything = await listed(binding, include_unbound=True)
    assert [(card.id, card.status) for card in everything] == [
        (second.id, CardStatus.ACTIVE),
        (first.id, CardStatus.UNBOUND),
    ]


async def test_a_card_bound_to_one_account_is_refused_to_another(binding: Binding) -> None:
    await bind(binding)

    error = await refusal(bind(binding, OTHER))

    assert (type(error), error.reason) == (AlreadyExists, "CARD_ALREADY_BOUND")


async def test_rebinding_a_card_the_same_account_unbound_earlier_works(binding: Binding) -> None:
    card = await bind(binding)
    await unbind(binding, card)

    again = await bind(binding)

    assert again.id != card.id
    assert again.fingerprint == card.fingerprint
    statuses = {c.id: c.status for c in await listed(binding, include_unbound=True)}
    assert statuses == {card.id: CardStatus.UNBOUND, again.id: CardStatus.ACTIVE}


async def test_a_card_another_account_unbound_can_be_bound(binding: Binding) -> None:
    card = await bind(binding, OTHER)
    await unbind(binding, card)

    mine = await bind(binding)

    assert mine.account_id == ACCOUNT


async def test_the_unique_index_refuses_a_second_active_card_with_one_fingerprint(
    binding: Binding,
) -> None:
    # Past the use case's early lookup, as two racing binds are: the index has the last word,
    # and the transaction stays usable after the refusal (the insert ran in a savepoint).
    card = await bind(binding)
    twin = dataclasses.replace(card, id="card-twin", account_id=OTHER)

    async def work(uow: BindingUnitOfWork) -> list[Card]:
        with pytest.raises(AlreadyExists) as caught:
            await uow.cards.add(twin)
        assert caught.value.reason == "CARD_ALREADY_BOUND"
        return await uow.cards.list_for_account(ACCOUNT, include_unbound=False)

    assert [c.id for c in await binding.tx.run(work)] == [card.id]


async def test_unbinding_spends_the_grant_once(binding: Binding) -> None:
    card = await bind(binding)
    grant = binding.grant("UNBIND_CARD", card.id)
    await unbind(binding, card, grant)
    again = await bind(binding)

    error = await refusal(unbind(binding, again, grant))

    assert error.reason == "GRANT_INVALID"  # the grant names the first card, not this one
    error = await refusal(unbind(binding, card, grant))
    assert error.reason == "GRANT_ALREADY_USED"


@pytest.mark.parametrize(
    ("purpose", "object_of", "cause"),
    [
        ("CHANGE_PHONE", "card", "PURPOSE_MISMATCH"),
        ("UNBIND_CARD", "other card", "OBJECT_MISMATCH"),
    ],
)
async def test_unbinding_with_a_grant_for_something_else_is_refused(
    binding: Binding, purpose: str, object_of: str, cause: str
) -> None:
    card = await bind(binding)
    other = await bind(binding, number="5555 5555 5555 4444")
    grant = binding.grant(purpose, card.id if object_of == "card" else other.id)

    error = await refusal(unbind(binding, card, grant))

    assert (error.reason, error.metadata) == ("GRANT_INVALID", {"cause": cause})
    assert [c.status for c in await listed(binding)] == [CardStatus.ACTIVE] * 2
