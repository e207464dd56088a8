"""Refund holds (one per refund, movable, only on a usable card) and the withdrawal window
(24 hours after the latest contact change)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.binding.domain.cards import Card, CardNumber, Expiry
from services.binding.domain.holds import (
    NO_WINDOW,
    RefundHold,
    WithdrawalHold,
    place_refund_hold,
    window_of,
)
from walletcore.errors import FailedPrecondition

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


LATER = Expiry(2028, 1)


def card(card_id: str, *, expiry: Expiry = LATER) -> Card:
    return Card.bind(
        id=card_id,
        account_id="acc-1",
        number=CardNumber.parse("4242424242424242"),
        token=f"tok-{card_id}",
        fingerprint=f"fp-{card_id}",
        expiry=expiry,
        holder_name="Test Holder",
        now=NOW,
    )


def test_a_first_hold_is_new() -> None:
    hold = place_refund_hold(card("c1"), None, refund_id="r1", now=NOW)

    assert hold == RefundHold(refund_id="r1", card_id="c1", placed_at=NOW)


def test_placing_it_again_on_the_same_card_changes_nothing() -> None:
    existing = RefundHold("r1", "c1", NOW)

    assert place_refund_hold(card("c1"), existing, refund_id="r1", now=NOW + timedelta(1)) is None
    assert existing == RefundHold("r1", "c1", NOW)


def test_placing_it_on_another_card_moves_it() -> None:
    existing = RefundHold("r1", "c1", NOW)
    later = NOW + timedelta(hours=1)

    moved = place_refund_hold(card("c2"), existing, refund_id="r1", now=later)

    assert moved == RefundHold("r1", "c2", later)


def test_an_unbound_card_cannot_be_held() -> None:
    unbound = card("c1")
    unbound.unbind(NOW, refund_holds=0)

    with pytest.raises(FailedPrecondition) as caught:
        place_refund_hold(unbound, None, refund_id="r1", now=NOW)

    assert caught.value.reason == "INSTRUMENT_UNAVAILABLE"


def test_an_expired_card_cannot_be_held_even_by_its_own_refund() -> None:
    expired = card("c1", expiry=Expiry(2026, 3))
    existing = RefundHold("r1", "c1", NOW)

    with pytest.raises(FailedPrecondition, match="unbound or expired"):
        place_refund_hold(expired, existing, refund_id="r1", now=datetime(2026, 4, 1, tzinfo=UTC))


def test_a_hold_of_another_refund_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="another refund"):
        place_refund_hold(card("c1"), RefundHold("r2", "c1", NOW), refund_id="r1", now=NOW)


def test_no_change_no_window() -> None:
    assert window_of(None, NOW) == NO_WINDOW


def test_the_window_lasts_24_hours_from_the_change() -> None:
    hold = WithdrawalHold("acc-1", NOW)
    until = NOW + timedelta(hours=24)

    assert hold.window(NOW + timedelta(hours=23, minutes=59)).in_window
    assert hold.window(until).until == until
    assert not hold.window(until).in_window


def test_a_further_change_restarts_the_window() -> None:
    hold = WithdrawalHold("acc-1", NOW)
    second = NOW + timedelta(hours=20)

    hold.restart(second)

    assert hold.until == second + timedelta(hours=24)
    assert hold.window(NOW + timedelta(hours=30)).in_window


def test_an_older_change_never_shortens_the_window() -> None:
    hold = WithdrawalHold("acc-1", NOW)

    hold.restart(NOW - timedelta(hours=5))

    assert hold.until == NOW + timedelta(hours=24)
