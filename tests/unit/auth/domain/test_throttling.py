"""Sign-in throttling: growing delays, temporary locks, a hard ceiling of 100 failures, and no
way for an attacker to lock the owner out for good."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.auth.domain.throttling import (
    PAIR_RULE,
    FailureCounter,
    SignInCounters,
    SignInThrottle,
)
from tests.support.profiles import examples
from walletcore.errors import FailedPrecondition, ResourceExhausted

pytestmark = pytest.mark.fuzz

THROTTLE = SignInThrottle()
HOME, ATTACKER = "192.0.2.10", "203.0.113.66"


class Accounts:
    """The persisted counters, as a repository would hand them out."""

    def __init__(self) -> None:
        self.rows: dict[str, FailureCounter] = {}

    def counters(self, subject: str, address: str) -> SignInCounters:
        return SignInCounters(
            self._row(FailureCounter.for_account(subject)),
            self._row(FailureCounter.for_pair(subject, address)),
            self._row(FailureCounter.for_address(address)),
        )

    def _row(self, fresh: FailureCounter) -> FailureCounter:
        return self.rows.setdefault(f"{fresh.scope}:{fresh.key}", fresh)


def fail(store: Accounts, address: str, now: datetime, subject: str = "acc-1") -> bool:
    counters = store.counters(subject, address)
    THROTTLE.decide(counters, now).raise_if_refused()
    return THROTTLE.record_failure(counters, now)


@pytest.mark.parametrize(
    ("failures", "seconds"),
    [(0, 0), (2, 0), (3, 1), (4, 2), (9, 64), (10, 900), (60, 900)],
)
def test_pair_delay_grows_then_locks_for_15_minutes(failures: int, seconds: int) -> None:
    assert PAIR_RULE.wait_after(failures) == timedelta(seconds=seconds)


def test_third_failure_makes_the_next_attempt_wait(now: datetime) -> None:
    store = Accounts()
    for _ in range(3):
        fail(store, ATTACKER, now)
    decision = THROTTLE.decide(store.counters("acc-1", ATTACKER), now)
    assert (decision.allowed, decision.retry_after) == (False, timedelta(seconds=1))
    with pytest.raises(ResourceExhausted) as caught:
        decision.raise_if_refused()
    assert (caught.value.reason, caught.value.retry_after_seconds) == ("SIGN_IN_THROTTLED", 1)
    assert THROTTLE.decide(store.counters("acc-1", ATTACKER), now + timedelta(seconds=1)).allowed


def test_tenth_failure_locks_the_pair_and_is_reported(now: datetime) -> None:
    store, at = Accounts(), now
    locked = []
    for _ in range(10):
        at += timedelta(minutes=2)
        locked.append(fail(store, ATTACKER, at))
    assert locked == [False] * 9 + [True]
    decision = THROTTLE.decide(store.counters("acc-1", ATTACKER), at)
    assert decision.retry_after == timedelta(minutes=15)


def test_owner_at_a_known_address_is_not_slowed_by_an_attack_elsewhere(now: datetime) -> None:
    store, at = Accounts(), now
    THROTTLE.record_success(store.counters("acc-1", HOME), at)
    for _ in range(30):
        at += timedelta(minutes=16)
        fail(store, ATTACKER, at)
    assert store.counters("acc-1", HOME).account.consecutive_failures == 30
    assert THROTTLE.decide(store.counters("acc-1", HOME), at).allowed
    assert not THROTTLE.decide(store.counters("acc-1", "198.51.100.1"), at).allowed


def test_failures_spread_over_addresses_slow_the_account(now: datetime) -> None:
    store = Accounts()
    for n in range(10):
        fail(store, f"198.51.100.{n}", now)
    decision = THROTTLE.decide(store.counters("acc-1", "198.51.100.99"), now)
    assert decision.retry_after == timedelta(seconds=1)


def test_one_address_spraying_accounts_is_slowed(now: datetime) -> None:
    store = Accounts()
    for n in range(20):
        fail(store, ATTACKER, now, subject=f"acc-{n}")
    decision = THROTTLE.decide(store.counters("acc-new", ATTACKER), now)
    assert decision.retry_after == timedelta(seconds=1)


@pytest.mark.parametrize(("quiet_hours", "count_after"), [(23, 11), (24, 1)])
def test_a_quiet_pair_is_forgotten_after_a_day(
    now: datetime, quiet_hours: int, count_after: int
) -> None:
    store, at = Accounts(), now
    for _ in range(10):
        at += timedelta(minutes=16)
        fail(store, ATTACKER, at)
    fail(store, ATTACKER, at + timedelta(hours=quiet_hours))
    assert store.counters("acc-1", ATTACKER).pair.consecutive_failures == count_after


def test_a_quiet_address_is_forgotten_after_an_hour(now: datetime) -> None:
    store = Accounts()
    for n in range(25):
        fail(store, ATTACKER, now + timedelta(seconds=20 * n), subject=f"acc-{n}")
    last = now + timedelta(seconds=20 * 24)
    assert not THROTTLE.decide(store.counters("acc-new", ATTACKER), last).allowed
    assert THROTTLE.decide(store.counters("acc-new", ATTACKER), last + timedelta(hours=1)).allowed


def test_success_resets_account_and_pair_but_not_address(now: datetime) -> None:
    store = Accounts()
    for n in range(3):
        fail(store, ATTACKER, now + timedelta(seconds=n * 10))
    counters = store.counters("acc-1", ATTACKER)
    THROTTLE.record_success(counters, now + timedelta(minutes=1))
    assert counters.account.consecutive_failures == counters.pair.consecutive_failures == 0
    assert counters.address.consecutive_failures == 3


def test_the_ceiling_requires_a_reset_which_clears_it(now: datetime) -> None:
    store, at = Accounts(), now
    THROTTLE.record_success(store.counters("acc-1", HOME), at)
    reached = False
    for n in range(100):
        at += timedelta(minutes=16)
        reached = fail(store, f"198.51.{n}.1", at)
    assert reached
    decision = THROTTLE.decide(store.counters("acc-1", HOME), at + timedelta(days=30))
    with pytest.raises(FailedPrecondition) as caught:
        decision.raise_if_refused()
    assert caught.value.reason == "CREDENTIAL_RESET_REQUIRED"
    home = store.counters("acc-1", HOME)
    THROTTLE.clear_after_credential_reset(home.account, [home.pair])
    assert THROTTLE.decide(home, at).allowed


attempt = st.tuples(
    st.integers(0, 2000),  # seconds since the previous attempt
    st.sampled_from([HOME, ATTACKER, "198.51.100.1", "198.51.100.2"]),
    st.integers(0, 30),  # 0: the password was right (it only ever is at HOME: the owner)
)


@settings(max_examples=examples(60))
@given(st.lists(attempt, max_size=300))
def test_never_more_than_100_consecutive_failures(attempts: list[tuple[int, str, int]]) -> None:
    store = Accounts()
    at = datetime.fromisoformat("2025-03-01T12:00:00+00:00")
    consecutive = 0
    for gap, address, luck in attempts:
        at += timedelta(seconds=gap)
        counters = store.counters("acc-1", address)
        if not THROTTLE.decide(counters, at).allowed:
            continue
        if luck == 0 and address == HOME:
            THROTTLE.record_success(counters, at)
            consecutive = 0
        else:
            THROTTLE.record_failure(counters, at)
            consecutive += 1
        assert consecutive <= 100
        assert counters.account.consecutive_failures == consecutive


@settings(max_examples=examples(60))
@given(st.lists(st.tuples(st.integers(0, 120), st.integers(0, 50)), max_size=200))
def test_an_attack_never_keeps_the_owner_at_a_known_address_out(
    attacks: list[tuple[int, int]],
) -> None:
    store = Accounts()
    at = datetime.fromisoformat("2025-03-01T12:00:00+00:00")
    THROTTLE.record_success(store.counters("acc-1", HOME), at)
    for gap, host in attacks:
        at += timedelta(seconds=gap)
        counters = store.counters("acc-1", f"203.0.113.{host}")
        if THROTTLE.decide(counters, at).allowed:
            THROTTLE.record_failure(counters, at)
    home = store.counters("acc-1", HOME)
    decision = THROTTLE.decide(home, at)
    if home.account.consecutive_failures < 100:
        assert decision.allowed
    else:
        THROTTLE.clear_after_credential_reset(home.account, [home.pair])
        assert THROTTLE.decide(home, at).allowed
