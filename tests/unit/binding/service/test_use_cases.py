"""Binding's use cases on the in-memory fakes: cards, refund holds, contact changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.binding.domain.cards import CardStatus
from services.binding.domain.contact_changes import ChangeState, ContactKind
from services.binding.service import cards, contacts, holds
from services.binding.service.fakes import BindingFakes
from services.binding.service.ports import NewContact
from walletcore.errors import DomainError

ACCOUNT, OTHER = "acc-1", "acc-2"
NUMBER = "4242 4242 4242 4242"
NEW_PHONE = NewContact(ContactKind.PHONE, "+8613800138001")


@pytest.fixture
def fakes() -> BindingFakes:
    fakes = BindingFakes.create()
    fakes.kyc.approve(ACCOUNT, "Test Holder")
    fakes.kyc.approve(OTHER, "Other Holder")
    return fakes


async def bind(fakes: BindingFakes, account: str = ACCOUNT, **overrides: object) -> str:
    args: dict[str, object] = {
        "account_id": account,
        "card_number": NUMBER,
        "expiry_month": 12,
        "expiry_year": 2030,
        "holder_name": "Test Holder" if account == ACCOUNT else "Other Holder",
    }
    args.update(overrides)
    card = await fakes.tx.run(lambda uow: cards.bind_card(uow, fakes.ctx, **args))  # type: ignore[arg-type]
    return card.id


async def refused(fakes: BindingFakes, work) -> DomainError:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as caught:
        await fakes.tx.run(work)
    return caught.value


def grant(fakes: BindingFakes, purpose: str, object_id: str, account: str = ACCOUNT) -> str:
    return fakes.store.issue_grant(
        account, purpose, object_id, fakes.clock() + timedelta(minutes=5)
    )


async def unbind(fakes: BindingFakes, card_id: str, token: str) -> object:
    return await fakes.tx.run(
        lambda uow: cards.unbind_card(
            uow, fakes.ctx, account_id=ACCOUNT, card_id=card_id, grant=token
        )
    )


# -- cards -------------------------------------------------------------------------------------


async def test_binding_stores_token_brand_last4_and_fingerprint_only(fakes: BindingFakes) -> None:
    card_id = await bind(fakes)

    stored = fakes.store.cards[card_id]
    assert (stored.brand.value, stored.last4, stored.status) == ("VISA", "4242", CardStatus.ACTIVE)
    assert fakes.vault.numbers[stored.token] == "4242424242424242"
    assert "4242424242424242" not in repr(stored)
    assert stored.fingerprint == fakes.ctx.fingerprints.compute("4242424242424242")


async def test_the_same_card_cannot_be_bound_to_another_account(fakes: BindingFakes) -> None:
    await bind(fakes)

    error = await refused(
        fakes,
        lambda uow: cards.bind_card(
            uow,
            fakes.ctx,
            account_id=OTHER,
            card_number="4242-4242-4242-4242",
            expiry_month=12,
            expiry_year=2030,
            holder_name="Other Holder",
        ),
    )

    assert error.reason == "CARD_ALREADY_BOUND"
    assert len(fakes.store.cards) == 1


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"card_number": "4242424242424241"}, "CARD_NUMBER_INVALID"),
        ({"card_number": "6011111111111117"}, "CARD_BRAND_UNSUPPORTED"),
        ({"expiry_month": 2, "expiry_year": 2025}, "CARD_EXPIRED"),
        ({"holder_name": "Someone Else"}, "HOLDER_NAME_MISMATCH"),
        ({"account_id": "acc-unverified"}, "KYC_NOT_APPROVED"),
    ],
)
async def test_refused_binds_store_and_tokenise_nothing(
    fakes: BindingFakes, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(DomainError) as caught:
        await bind(fakes, **overrides)

    assert caught.value.reason == reason
    assert fakes.store.cards == {}
    assert fakes.vault.numbers == {}


async def test_kyc_unreachable_is_unavailable_and_writes_nothing(fakes: BindingFakes) -> None:
    fakes.kyc.available = False

    with pytest.raises(DomainError) as caught:
        await bind(fakes)

    assert caught.value.reason == "UNAVAILABLE"
    assert fakes.store.cards == {}


async def test_unbinding_needs_the_cards_grant_once(fakes: BindingFakes) -> None:
    card_id = await bind(fakes)
    second_id = await bind(fakes, card_number="5555555555554444")
    token = grant(fakes, "UNBIND_CARD", card_id)

    for wrong in (
        grant(fakes, "UNBIND_CARD", second_id),
        grant(fakes, "CHANGE_PHONE", card_id),
        grant(fakes, "UNBIND_CARD", card_id, account=OTHER),
        "not-a-grant",
    ):
        with pytest.raises(DomainError) as caught:
            await unbind(fakes, card_id, wrong)
        assert caught.value.reason == "GRANT_INVALID"

    await unbind(fakes, card_id, token)
    assert fakes.store.cards[card_id].status is CardStatus.UNBOUND

    with pytest.raises(DomainError) as caught:
        await unbind(fakes, second_id, token)
    assert caught.value.reason == "GRANT_INVALID"
    with pytest.raises(DomainError) as caught:
        await unbind(fakes, card_id, token)
    assert caught.value.reason == "GRANT_ALREADY_USED"


async def test_an_expired_grant_is_refused(fakes: BindingFakes) -> None:
    card_id = await bind(fakes)
    token = grant(fakes, "UNBIND_CARD", card_id)
    fakes.clock.advance(timedelta(minutes=5))

    with pytest.raises(DomainError) as caught:
        await unbind(fakes, card_id, token)

    assert caught.value.reason == "GRANT_EXPIRED"


async def test_another_accounts_card_is_not_found(fakes: BindingFakes) -> None:
    card_id = await bind(fakes)

    error = await refused(
        fakes,
        lambda uow: cards.unbind_card(
            uow,
            fakes.ctx,
            account_id=OTHER,
            card_id=card_id,
            grant=grant(fakes, "UNBIND_CARD", card_id, account=OTHER),
        ),
    )

    assert error.reason == "CARD_NOT_FOUND"


async def test_an_unbound_card_can_be_bound_again_as_a_new_card(fakes: BindingFakes) -> None:
    first = await bind(fakes)
    await unbind(fakes, first, grant(fakes, "UNBIND_CARD", first))
    fakes.clock.advance(timedelta(seconds=1))

    second = await bind(fakes)

    listed = await fakes.tx.run(
        lambda uow: cards.list_cards(uow, account_id=ACCOUNT, include_unbound=True)
    )
    active = await fakes.tx.run(
        lambda uow: cards.list_cards(uow, account_id=ACCOUNT, include_unbound=False)
    )
    assert second != first
    assert [card.id for card in listed] == [second, first]
    assert [card.id for card in active] == [second]


# -- refund holds ------------------------------------------------------------------------------


async def place(fakes: BindingFakes, card_id: str, refund_id: str = "ref-1") -> None:
    await fakes.tx.run(
        lambda uow: holds.place_hold(
            uow, fakes.ctx, account_id=ACCOUNT, instrument_id=card_id, refund_id=refund_id
        )
    )


async def test_a_hold_blocks_unbinding_until_released(fakes: BindingFakes) -> None:
    card_id = await bind(fakes)
    await place(fakes, card_id)
    await place(fakes, card_id)  # idempotent per refund id
    token = grant(fakes, "UNBIND_CARD", card_id)

    with pytest.raises(DomainError) as caught:
        await unbind(fakes, card_id, token)
    assert caught.value.reason == "REFUND_IN_FLIGHT"
    assert fakes.store.used_grants == {}  # the refused unbind left the grant usable

    released = await fakes.tx.run(lambda uow: holds.release_hold(uow, refund_id="ref-1"))
    again = await fakes.tx.run(lambda uow: holds.release_hold(uow, refund_id="ref-1"))
    await unbind(fakes, card_id, token)

    assert (released, again) == (True, False)
    assert fakes.store.cards[card_id].status is CardStatus.UNBOUND


async def test_a_hold_moves_with_its_refund(fakes: BindingFakes) -> None:
    first = await bind(fakes)
    second = await bind(fakes, card_number="5555555555554444")
    await place(fakes, first)

    await place(fakes, second)

    assert fakes.store.refund_holds["ref-1"].card_id == second
    await unbind(fakes, first, grant(fakes, "UNBIND_CARD", first))


async def test_an_unbound_or_foreign_card_cannot_be_held(fakes: BindingFakes) -> None:
    card_id = await bind(fakes)
    other_card = await bind(fakes, OTHER, card_number="5555555555554444")
    await unbind(fakes, card_id, grant(fakes, "UNBIND_CARD", card_id))

    with pytest.raises(DomainError) as caught:
        await place(fakes, card_id)
    assert caught.value.reason == "INSTRUMENT_UNAVAILABLE"
    with pytest.raises(DomainError) as caught:
        await place(fakes, other_card)
    assert caught.value.reason == "INSTRUMENT_NOT_FOUND"

    instrument = await fakes.tx.run(
        lambda uow: holds.get_instrument(uow, fakes.ctx, account_id=ACCOUNT, instrument_id=card_id)
    )
    assert (instrument.card.status, instrument.usable_for_refund) == (CardStatus.UNBOUND, False)


# -- contact changes ---------------------------------------------------------------------------


async def start(fakes: BindingFakes, contact: NewContact = NEW_PHONE) -> str:
    token = grant(fakes, "CHANGE_PHONE", contact.value)
    started = await fakes.tx.run(
        lambda uow: contacts.start_contact_change(
            uow, fakes.ctx, account_id=ACCOUNT, new_contact=contact, grant=token
        )
    )
    return started.change_id


async def complete(fakes: BindingFakes, change_id: str, code: str, request_id: str = "r-1"):  # type: ignore[no-untyped-def]
    return await fakes.tx.run(
        lambda uow: contacts.complete_contact_change(
            uow,
            fakes.ctx,
            account_id=ACCOUNT,
            change_id=change_id,
            code=code,
            request_id=request_id,
        )
    )


async def window(fakes: BindingFakes):  # type: ignore[no-untyped-def]
    return await fakes.tx.run(
        lambda uow: holds.withdrawal_window(uow, fakes.ctx, account_id=ACCOUNT)
    )


async def test_a_phone_change_end_to_end_starts_the_withdrawal_hold(fakes: BindingFakes) -> None:
    assert not (await window(fakes)).in_window
    change_id = await start(fakes)

    completed = await complete(fakes, change_id, fakes.contacts.last_code(NEW_PHONE.value))

    until = completed.changed_at + timedelta(hours=24)
    assert fakes.contacts.contacts[(ACCOUNT, ContactKind.PHONE)] == NEW_PHONE.value
    assert fakes.store.contact_changes[change_id].state is ChangeState.COMPLETED
    assert (completed.withdrawal_hold.in_window, completed.withdrawal_hold.until) == (True, until)
    fakes.clock.advance(timedelta(hours=24) - timedelta(seconds=1))
    assert (await window(fakes)).in_window
    fakes.clock.advance(timedelta(seconds=1))
    assert (await window(fakes)).until == until
    assert not (await window(fakes)).in_window


async def test_a_further_change_restarts_the_hold(fakes: BindingFakes) -> None:
    first = await start(fakes)
    await complete(fakes, first, fakes.contacts.last_code(NEW_PHONE.value))
    fakes.clock.advance(timedelta(hours=20))
    email = NewContact(ContactKind.EMAIL, "new@example.com")
    token = grant(fakes, "CHANGE_EMAIL", email.value)
    started = await fakes.tx.run(
        lambda uow: contacts.start_contact_change(
            uow, fakes.ctx, account_id=ACCOUNT, new_contact=email, grant=token
        )
    )

    await complete(fakes, started.change_id, fakes.contacts.last_code(email.value))

    assert (await window(fakes)).until == fakes.clock() + timedelta(hours=24)


async def test_a_wrong_code_keeps_the_change_open(fakes: BindingFakes) -> None:
    change_id = await start(fakes)

    with pytest.raises(DomainError) as caught:
        await complete(fakes, change_id, "000000")

    assert caught.value.reason == "CODE_INVALID"
    await complete(fakes, change_id, fakes.contacts.last_code(NEW_PHONE.value), request_id="r-2")


async def test_a_contact_taken_meanwhile_closes_the_change(fakes: BindingFakes) -> None:
    change_id = await start(fakes)
    fakes.contacts.contacts[(OTHER, ContactKind.PHONE)] = NEW_PHONE.value

    for request_id in ("r-1", "r-2"):
        with pytest.raises(DomainError) as caught:
            await complete(fakes, change_id, fakes.contacts.last_code(NEW_PHONE.value), request_id)
        assert caught.value.reason == "CONTACT_IN_USE"

    assert fakes.store.contact_changes[change_id].state is ChangeState.ABANDONED
    assert (await window(fakes)).until is None


async def test_an_expired_code_closes_the_change_without_asking_auth(fakes: BindingFakes) -> None:
    change_id = await start(fakes)
    fakes.clock.advance(timedelta(minutes=5))
    fakes.contacts.available = False

    with pytest.raises(DomainError) as caught:
        await complete(fakes, change_id, fakes.contacts.last_code(NEW_PHONE.value))

    assert caught.value.reason == "CODE_EXPIRED"
    assert fakes.store.contact_changes[change_id].state is ChangeState.ABANDONED


async def test_a_contact_in_use_at_start_leaves_the_grant_usable(fakes: BindingFakes) -> None:
    fakes.contacts.contacts[(OTHER, ContactKind.PHONE)] = NEW_PHONE.value
    token = grant(fakes, "CHANGE_PHONE", NEW_PHONE.value)

    error = await refused(
        fakes,
        lambda uow: contacts.start_contact_change(
            uow, fakes.ctx, account_id=ACCOUNT, new_contact=NEW_PHONE, grant=token
        ),
    )

    assert error.reason == "CONTACT_IN_USE"
    assert fakes.store.used_grants == {}
    assert fakes.store.contact_changes == {}


async def test_the_grant_must_be_bound_to_the_new_contact(fakes: BindingFakes) -> None:
    token = grant(fakes, "CHANGE_PHONE", "+8613800138999")

    error = await refused(
        fakes,
        lambda uow: contacts.start_contact_change(
            uow, fakes.ctx, account_id=ACCOUNT, new_contact=NEW_PHONE, grant=token
        ),
    )

    assert error.reason == "GRANT_INVALID"
    assert fakes.contacts.sent_codes == []


async def test_a_user_cannot_complete_anothers_or_an_officers_change(fakes: BindingFakes) -> None:
    change_id = await start(fakes)

    error = await refused(
        fakes,
        lambda uow: contacts.complete_contact_change(
            uow, fakes.ctx, account_id=OTHER, change_id=change_id, code="x", request_id="r"
        ),
    )

    assert error.reason == "CHANGE_NOT_FOUND"


async def start_assisted(fakes: BindingFakes, account: str = ACCOUNT) -> str:
    started = await fakes.tx.run(
        lambda uow: contacts.start_assisted_contact_change(
            uow,
            fakes.ctx,
            operator_id="officer-1",
            account_id=account,
            new_contact=NEW_PHONE,
            reason="identity checked in branch",
            ticket_ref="SUP-1",
        )
    )
    return started.change_id


async def test_an_officer_assisted_change_is_audited_and_starts_the_hold(
    fakes: BindingFakes,
) -> None:
    change_id = await start_assisted(fakes)
    completed = await fakes.tx.run(
        lambda uow: contacts.complete_assisted_contact_change(
            uow,
            fakes.ctx,
            operator_id="officer-1",
            change_id=change_id,
            code=fakes.contacts.last_code(NEW_PHONE.value),
            request_id="r-1",
        )
    )

    actions = [(record.action, record.target) for record, _ in fakes.store.audit_records]
    assert actions == [
        ("START_ASSISTED_CONTACT_CHANGE", f"account:{ACCOUNT}"),
        ("COMPLETE_ASSISTED_CONTACT_CHANGE", f"account:{ACCOUNT}"),
    ]
    assert fakes.store.audit_records[0][0].details["ticket_ref"] == "SUP-1"
    assert fakes.contacts.requests[0][2] is not None
    assert completed.withdrawal_hold.in_window
    error = await refused(
        fakes,
        lambda uow: contacts.complete_contact_change(
            uow, fakes.ctx, account_id=ACCOUNT, change_id=change_id, code="x", request_id="r"
        ),
    )
    assert error.reason == "CHANGE_NOT_FOUND"


async def test_an_assisted_change_needs_approved_kyc_before_any_code(
    fakes: BindingFakes,
) -> None:
    with pytest.raises(DomainError) as caught:
        await start_assisted(fakes, account="acc-unverified")

    assert caught.value.reason == "KYC_NOT_APPROVED"
    assert fakes.contacts.sent_codes == []
    assert fakes.store.audit_records == []


async def test_auth_unreachable_is_unavailable_and_writes_nothing(fakes: BindingFakes) -> None:
    fakes.contacts.available = False

    with pytest.raises(DomainError) as caught:
        await start(fakes)

    assert caught.value.reason == "UNAVAILABLE"
    assert (fakes.store.contact_changes, fakes.store.used_grants) == ({}, {})


def test_completion_attempts_get_distinct_auth_request_ids() -> None:
    assert contacts.attempt_request_id("c", "1") == contacts.attempt_request_id("c", "1")
    assert contacts.attempt_request_id("c", "1") != contacts.attempt_request_id("c", "2")
    assert contacts.attempt_request_id("c1", "1") != contacts.attempt_request_id("c", "11")
