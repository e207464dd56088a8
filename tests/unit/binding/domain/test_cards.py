"""Expiry dates, holder names and a card's lifecycle: bound, unbound (soft delete), held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.binding.domain.cards import (
    Card,
    CardNumber,
    CardStatus,
    Expiry,
    parse_holder_name,
)
from walletcore.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2026, 5, 31, 23, 59, tzinfo=UTC)


LATER = Expiry(2028, 4)


def card(*, expiry: Expiry = LATER) -> Card:
    return Card.bind(
        id="card-1",
        account_id="acc-1",
        number=CardNumber.parse("4242424242424242"),
        token="tok-1",
        fingerprint="fp-1",
        expiry=expiry,
        holder_name="Test Holder",
        now=NOW,
    )


def test_a_card_expiring_this_month_is_still_valid_on_its_last_minute() -> None:
    assert Expiry.parse(5, 2026, now=NOW) == Expiry(2026, 5)
    assert Expiry(2026, 5).has_passed(NOW + timedelta(minutes=1))


def test_last_month_is_expired() -> None:
    with pytest.raises(InvalidArgument) as caught:
        Expiry.parse(4, 2026, now=NOW)

    assert caught.value.reason == "CARD_EXPIRED"
    assert {v.field for v in caught.value.violations} == {"expiry_month", "expiry_year"}


def test_december_of_last_year_is_expired() -> None:
    with pytest.raises(InvalidArgument, match="expired"):
        Expiry.parse(12, 2025, now=NOW)


@pytest.mark.parametrize(
    ("month", "year", "fields"),
    [
        (0, 2027, {"expiry_month"}),
        (13, 2027, {"expiry_month"}),
        (5, 27, {"expiry_year"}),
        (5, 2047, {"expiry_year"}),
        (-1, 99999, {"expiry_month", "expiry_year"}),
    ],
)
def test_impossible_expiry_dates_name_their_fields(month: int, year: int, fields: set[str]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Expiry.parse(month, year, now=NOW)

    assert caught.value.reason == "INVALID_ARGUMENT"
    assert {v.field for v in caught.value.violations} == fields


def test_twenty_years_ahead_is_the_furthest_expiry() -> None:
    assert Expiry.parse(12, 2046, now=NOW) == Expiry(2046, 12)


@pytest.mark.parametrize("raw", ["", "   ", "a" * 201, "Name\x00", "Name\nInjected"])
def test_bad_holder_names_are_invalid(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_holder_name(raw)

    assert caught.value.violations[0].field == "holder_name"


def test_holder_names_are_trimmed() -> None:
    assert parse_holder_name("  Li Lei ") == "Li Lei"


def test_a_bound_card_keeps_brand_last4_and_no_number() -> None:
    bound = card()

    assert (bound.status, bound.last4, bound.brand.value) == (CardStatus.ACTIVE, "4242", "VISA")
    assert "4242424242424242" not in repr(bound)


def test_an_expired_card_cannot_be_bound() -> None:
    with pytest.raises(ValueError, match="expired"):
        card(expiry=Expiry(2026, 4))


def test_unbinding_is_a_soft_delete() -> None:
    bound = card()
    later = NOW + timedelta(days=3)

    bound.unbind(later, refund_holds=0)

    assert (bound.status, bound.unbound_at, bound.bound_at) == (CardStatus.UNBOUND, later, NOW)
    assert not bound.usable_for_refund(later)


def test_a_held_card_cannot_be_unbound() -> None:
    bound = card()

    with pytest.raises(FailedPrecondition) as caught:
        bound.unbind(NOW, refund_holds=1)

    assert caught.value.reason == "REFUND_IN_FLIGHT"
    assert bound.is_active


def test_an_unbound_card_cannot_be_unbound_again() -> None:
    bound = card()
    bound.unbind(NOW, refund_holds=0)

    with pytest.raises(FailedPrecondition) as caught:
        bound.unbind(NOW, refund_holds=0)

    assert caught.value.reason == "CARD_NOT_ACTIVE"


def test_a_card_is_usable_for_refunds_until_its_expiry_month_ends() -> None:
    bound = card(expiry=Expiry(2026, 6))

    assert bound.usable_for_refund(datetime(2026, 6, 30, 23, 59, tzinfo=UTC))
    assert not bound.usable_for_refund(datetime(2026, 7, 1, tzinfo=UTC))
