"""Refund holds, withdrawal holds and contact changes on SQL, through the use cases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.binding.adapters import tables
from services.binding.domain.contact_changes import ChangeState, ContactKind
from services.binding.service import contacts, holds
from services.binding.service.ports import NewContact
from tests.integration.binding.conftest import ACCOUNT, Binding
from tests.integration.binding.test_cards import bind, refusal, unbind
from walletcore import audit
from walletcore.errors import DomainError

NEW_PHONE = NewContact(ContactKind.PHONE, "+8613800138001")


async def place(binding: Binding, card_id: str, refund_id: str = "refund-1") -> None:
    await binding.tx.run(
        lambda uow: holds.place_hold(
            uow, binding.ctx, account_id=ACCOUNT, instrument_id=card_id, refund_id=refund_id
        )
    )


async def release(binding: Binding, refund_id: str = "refund-1") -> bool:
    return await binding.tx.run(lambda uow: holds.release_hold(uow, refund_id=refund_id))


async def test_a_hold_blocks_the_unbind_until_it_is_released(binding: Binding) -> None:
    card = await bind(binding)
    await place(binding, card.id)
    await place(binding, card.id)  # refund repeated the call: still one hold
    grant = binding.grant("UNBIND_CARD", card.id)

    error = await refusal(unbind(binding, card, grant))

    assert error.reason == "REFUND_IN_FLIGHT"
    assert await release(binding) is True
    assert await release(binding) is False
    # The refused unbind rolled back, and its grant with it: the same grant works now.
    assert (await unbind(binding, card, grant)).unbound_at is not None


async def test_a_hold_moves_to_the_card_the_refund_names_now(binding: Binding) -> None:
    first = await bind(binding)
    second = await bind(binding, number="5555 5555 5555 4444")
    await place(binding, first.id)
    await place(binding, second.id)

    await unbind(binding, first)
    error = await refusal(unbind(binding, second))

    assert error.reason == "REFUND_IN_FLIGHT"


async def test_an_unbound_card_cannot_be_held_but_its_instrument_stays_readable(
    binding: Binding,
) -> None:
    card = await bind(binding)
    await unbind(binding, card)

    error = await refusal(place(binding, card.id))
    instrument = await binding.tx.run(
        lambda uow: holds.get_instrument(
            uow, binding.ctx, account_id=ACCOUNT, instrument_id=card.id
        )
    )

    assert error.reason == "INSTRUMENT_UNAVAILABLE"
    assert (instrument.card.last4, instrument.usable_for_refund) == ("4242", False)


async def test_the_withdrawal_window_restarts_and_never_shrinks(binding: Binding) -> None:
    start = binding.clock.now

    async def restart(at_minutes: int) -> None:
        await binding.tx.run(
            lambda uow: uow.withdrawal_holds.restart(ACCOUNT, start + timedelta(minutes=at_minutes))
        )

    async def window() -> tuple[bool, object]:
        answer = await binding.tx.run(
            lambda uow: holds.withdrawal_window(uow, binding.ctx, account_id=ACCOUNT)
        )
        return answer.in_window, answer.until

    assert await window() == (False, None)
    await restart(0)
    await restart(30)
    await restart(10)  # a late report of an older change
    assert await window() == (True, start + timedelta(hours=24, minutes=30))
    binding.clock.advance(timedelta(hours=24, minutes=30))
    assert await window() == (False, start + timedelta(hours=24, minutes=30))


async def test_a_user_contact_change_completes_and_starts_the_withdrawal_hold(
    binding: Binding,
) -> None:
    grant = binding.grant("CHANGE_PHONE", NEW_PHONE.value)
    started = await binding.tx.run(
        lambda uow: contacts.start_contact_change(
            uow, binding.ctx, account_id=ACCOUNT, new_contact=NEW_PHONE, grant=grant
        )
    )
    code = binding.contacts.last_code(NEW_PHONE.value)

    completed = await binding.tx.run(
        lambda uow: contacts.complete_contact_change(
            uow,
            binding.ctx,
            account_id=ACCOUNT,
            change_id=started.change_id,
            code=code,
            request_id="attempt-1",
        )
    )

    stored = await binding.tx.run(lambda uow: uow.contact_changes.get(started.change_id))
    assert stored is not None
    assert (stored.state, stored.kind, stored.assistance) == (
        ChangeState.COMPLETED,
        ContactKind.PHONE,
        None,
    )
    assert completed.withdrawal_hold.in_window


async def test_an_expired_change_is_closed_for_good_and_audited_when_assisted(
    binding: Binding, engine: AsyncEngine
) -> None:
    started = await binding.tx.run(
        lambda uow: contacts.start_assisted_contact_change(
            uow,
            binding.ctx,
            operator_id="officer-7",
            account_id=ACCOUNT,
            new_contact=NEW_PHONE,
            reason="lost phone, identity checked by video call",
            ticket_ref="SUP-1234",
        )
    )
    binding.clock.advance(timedelta(minutes=6))

    with pytest.raises(DomainError) as caught:
        await binding.tx.run(
            lambda uow: contacts.complete_assisted_contact_change(
                uow,
                binding.ctx,
                operator_id="officer-7",
                change_id=started.change_id,
                code="000000",
                request_id="attempt-1",
            )
        )

    assert caught.value.reason == "CODE_EXPIRED"
    stored = await binding.tx.run(lambda uow: uow.contact_changes.get(started.change_id))
    assert stored is not None
    assert stored.state is ChangeState.ABANDONED
    assert stored.assistance is not None
    assert (stored.assistance.operator_id, stored.assistance.ticket_ref) == (
        "officer-7",
        "SUP-1234",
    )
    async with engine.connect() as connection:
        verification = await audit.verify(connection, tables.audit_log)
    assert (verification.ok, verification.entries_checked) == (True, 1)
