"""Money and captured payments: exact minor units, ISO 4217 codes, the 365-day window, and
what a repeated report of a payment means."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.refund.domain.money import Money
from services.refund.domain.payments import CapturedPayment, reconcile_report
from services.refund.domain.reasons import Reason
from walletcore.errors import AlreadyExists, FailedPrecondition, InvalidArgument

CAPTURED_AT = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def payment(minor: int = 10_000, currency: str = "CNY") -> CapturedPayment:
    return CapturedPayment(
        payment_id="pay-1",
        account_id="acct-1",
        captured=Money(minor, currency),
        source_instrument_id="card-1",
        captured_at=CAPTURED_AT,
    )


@pytest.mark.parametrize("minor", [0, -1, 2**63])
def test_a_requested_amount_must_be_positive_and_fit_int64(minor: int) -> None:
    with pytest.raises(InvalidArgument) as raised:
        Money.parse(minor, "CNY", field="amount", positive=True)
    assert raised.value.reason == Reason.AMOUNT_INVALID
    assert [v.field for v in raised.value.violations] == ["amount.amount_minor"]


@pytest.mark.parametrize("currency", ["", "cny", "XTS", "XXX", "ABC", "US", "USDT"])
def test_a_currency_is_an_active_iso_4217_code(currency: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        Money.parse(100, currency, field="amount", positive=True)
    assert [v.field for v in raised.value.violations] == ["amount.currency"]


def test_yen_and_dollars_are_both_accepted_in_minor_units() -> None:
    assert Money.parse(500, "JPY", field="amount", positive=True) == Money(500, "JPY")
    assert Money.parse(1, "USD", field="amount", positive=True).minor == 1


def test_amounts_in_different_currencies_never_combine() -> None:
    with pytest.raises(ValueError, match="different currencies"):
        _ = Money(1, "USD") + Money(1, "EUR")


def test_the_window_closes_365_days_after_capture() -> None:
    paid = payment()
    assert paid.refundable(CAPTURED_AT + timedelta(days=365)) == Money(10_000, "CNY")
    late = CAPTURED_AT + timedelta(days=365, microseconds=1)
    assert not paid.within_window(late)
    assert paid.refundable(late) == Money(0, "CNY")


def test_reserving_past_the_captured_amount_is_refused_and_changes_nothing() -> None:
    paid = payment()
    paid.reserve(Money(6_000, "CNY"))
    with pytest.raises(FailedPrecondition) as raised:
        paid.reserve(Money(4_001, "CNY"))
    assert raised.value.reason == Reason.REFUND_EXCEEDS_CAPTURED
    assert raised.value.metadata == {"refundable_minor": "4000"}
    assert paid.reserved_minor == 6_000
    paid.reserve(Money(4_000, "CNY"))
    assert paid.refundable(CAPTURED_AT) == Money(0, "CNY")


def test_a_repeated_report_is_no_change_and_other_data_is_a_conflict() -> None:
    first = payment()
    assert reconcile_report(None, first) is True
    assert reconcile_report(first, payment()) is False
    for changed in (
        replace(first, account_id="acct-2"),
        replace(first, captured=Money(10_001, "CNY")),
        replace(first, captured=Money(10_000, "USD")),
        replace(first, source_instrument_id="card-2"),
        replace(first, captured_at=CAPTURED_AT + timedelta(seconds=1)),
    ):
        with pytest.raises(AlreadyExists) as raised:
            reconcile_report(first, changed)
        assert raised.value.reason == Reason.PAYMENT_CONFLICT


def test_the_reserved_total_is_not_part_of_the_report() -> None:
    first = payment()
    first.reserve(Money(100, "CNY"))
    assert reconcile_report(first, payment()) is False
