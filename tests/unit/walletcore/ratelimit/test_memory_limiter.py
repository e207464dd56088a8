"""The in-process limiter: exact sliding-window counting, all-or-none, and sensible retry-after."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.profiles import examples
from walletcore.errors import ResourceExhausted
from walletcore.ratelimit import Decision, Hit, InMemoryRateLimiter, Policy, enforce

pytestmark = pytest.mark.fuzz

SECOND_US = 1_000_000
PER_MINUTE = Policy("per_minute", 3, 60)
PER_HOUR = Policy("per_hour", 5, 3600)


class FakeClock:
    def __init__(self) -> None:
        self.now_us = 1_000 * SECOND_US

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += round(seconds * SECOND_US)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> InMemoryRateLimiter:
    return InMemoryRateLimiter(clock=clock)


async def admitted(limiter: InMemoryRateLimiter, hits: list[Hit], attempts: int) -> int:
    decisions = [await limiter.check(hits) for _ in range(attempts)]
    return sum(decision.allowed for decision in decisions)


async def test_a_burst_admits_exactly_the_limit(limiter: InMemoryRateLimiter) -> None:
    assert await admitted(limiter, [Hit(PER_MINUTE, "+14155550100")], 10) == 3


async def test_a_refusal_names_the_policy_and_waits_for_the_oldest_entry(
    limiter: InMemoryRateLimiter, clock: FakeClock
) -> None:
    hit = Hit(PER_MINUTE, "+14155550100")
    for _ in range(3):
        await limiter.check([hit])
        clock.advance(10)

    decision = await limiter.check([hit])

    assert decision == Decision(allowed=False, retry_after_seconds=30.0, exceeded=(PER_MINUTE,))


async def test_the_window_slides_instead_of_resetting(
    limiter: InMemoryRateLimiter, clock: FakeClock
) -> None:
    hit = Hit(Policy("two_per_minute", 2, 60), "10.0.0.1")
    assert (await limiter.check([hit])).allowed
    clock.advance(30)
    assert (await limiter.check([hit])).allowed
    clock.advance(29)
    assert (await limiter.check([hit])).retry_after_seconds == pytest.approx(1.0)
    clock.advance(1)
    assert (await limiter.check([hit])).allowed  # the first entry has left the window
    assert (await limiter.check([hit])).retry_after_seconds == pytest.approx(30.0)


async def test_subjects_are_counted_apart(limiter: InMemoryRateLimiter) -> None:
    assert await admitted(limiter, [Hit(PER_MINUTE, "alice@example.com")], 5) == 3
    assert await admitted(limiter, [Hit(PER_MINUTE, "bob@example.com")], 5) == 3


async def test_a_refused_call_counts_against_none_of_its_policies(
    limiter: InMemoryRateLimiter,
) -> None:
    address_hit = Hit(PER_MINUTE, "10.0.0.1")
    account_hit = Hit(PER_HOUR, "account-1")
    assert await admitted(limiter, [address_hit], 3) == 3

    for _ in range(10):
        assert not (await limiter.check([account_hit, address_hit])).allowed

    assert await admitted(limiter, [account_hit], 10) == 5


async def test_only_the_exceeded_policies_are_named_and_the_longest_wait_wins(
    limiter: InMemoryRateLimiter, clock: FakeClock
) -> None:
    minute, hour, day = Policy("m", 1, 60), Policy("h", 1, 3600), Policy("d", 5, 86400)
    await limiter.check([Hit(minute, "s"), Hit(hour, "s")])

    decision = await limiter.check([Hit(day, "s"), Hit(minute, "s"), Hit(hour, "s")])

    assert decision == Decision(allowed=False, retry_after_seconds=3600.0, exceeded=(minute, hour))
    clock.advance(60)
    assert (await limiter.check([Hit(minute, "s"), Hit(hour, "s")])).exceeded == (hour,)


async def test_hits_on_one_counter_in_one_call_add_up(limiter: InMemoryRateLimiter) -> None:
    hit = Hit(PER_MINUTE, "s")
    await limiter.check([hit, hit])

    assert not (await limiter.check([hit, hit])).allowed
    assert (await limiter.check([hit])).allowed


async def test_a_costly_hit_uses_several_units(limiter: InMemoryRateLimiter) -> None:
    assert (await limiter.check([Hit(PER_HOUR, "s", cost=4)])).allowed
    assert not (await limiter.check([Hit(PER_HOUR, "s", cost=2)])).allowed
    assert (await limiter.check([Hit(PER_HOUR, "s", cost=1)])).allowed


async def test_no_hits_is_admitted(limiter: InMemoryRateLimiter) -> None:
    assert (await limiter.check([])).allowed


@pytest.mark.parametrize(
    "hits",
    [
        [Hit(PER_MINUTE, "s", cost=0)],
        [Hit(PER_MINUTE, "s", cost=4)],
        [Hit(PER_MINUTE, "s", cost=2), Hit(PER_MINUTE, "s", cost=2)],
        [Hit(PER_MINUTE, "s"), Hit(Policy(PER_MINUTE.name, 9, 60), "t")],
    ],
    ids=["zero-cost", "cost-above-limit", "merged-cost-above-limit", "two-policies-one-name"],
)
async def test_hits_that_are_programming_errors_are_rejected(
    limiter: InMemoryRateLimiter, hits: list[Hit]
) -> None:
    with pytest.raises(ValueError, match="per_minute"):
        await limiter.check(hits)


async def test_counters_survive_the_periodic_cleanup(
    limiter: InMemoryRateLimiter, clock: FakeClock
) -> None:
    hit = Hit(Policy("two_per_day", 2, 86400), "s")
    assert await admitted(limiter, [hit], 2) == 2
    clock.advance(3600)  # long past the cleanup interval

    assert not (await limiter.check([hit])).allowed


async def test_concurrent_callers_get_exactly_the_limit() -> None:
    limiter = InMemoryRateLimiter()
    hit = Hit(Policy("burst", 37, 3600), "s")

    decisions = await asyncio.gather(*(limiter.check([hit]) for _ in range(200)))

    assert sum(decision.allowed for decision in decisions) == 37


# A reference model: a call is admitted exactly when, for each counter it charges, the units
# admitted within the last period plus its cost stay within the limit.
def used(admissions: list[tuple[int, int]], period_us: int, at_us: int) -> int:
    return sum(cost for time_us, cost in admissions if at_us - period_us < time_us <= at_us)


def earliest_wait_us(admissions: list[tuple[int, int]], policy: Policy, cost: int, now: int) -> int:
    period_us = policy.period_seconds * SECOND_US
    candidates = sorted(w for t, _ in admissions if (w := t + period_us - now) > 0)
    return next(
        w for w in candidates if used(admissions, period_us, now + w) + cost <= policy.limit
    )


steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3 * SECOND_US),  # time since the previous call
        st.sampled_from(["alice", "bob"]),  # subject of the per-subject policy
        st.integers(min_value=1, max_value=3),  # cost charged to both policies
    ),
    max_size=60,
)


@settings(max_examples=examples(150))
@given(
    per_subject_limit=st.integers(min_value=3, max_value=6),
    shared_limit=st.integers(min_value=3, max_value=9),
    steps=steps,
)
async def test_any_sequence_of_calls_matches_the_sliding_window_model(
    per_subject_limit: int, shared_limit: int, steps: list[tuple[int, str, int]]
) -> None:
    per_subject = Policy("per_subject", per_subject_limit, 2)
    shared = Policy("shared", shared_limit, 5)
    clock = FakeClock()
    limiter = InMemoryRateLimiter(clock=clock)
    admissions: dict[tuple[str, str], list[tuple[int, int]]] = {}

    for elapsed_us, subject, cost in steps:
        clock.now_us += elapsed_us
        now = clock.now_us
        charges = [(per_subject, subject), (shared, "all")]
        decision = await limiter.check([Hit(policy, who, cost) for policy, who in charges])

        over = [
            policy
            for policy, who in charges
            if used(admissions.get((policy.name, who), []), policy.period_seconds * SECOND_US, now)
            + cost
            > policy.limit
        ]
        assert decision.allowed == (not over)
        assert decision.exceeded == tuple(over)
        if over:
            waits = [
                earliest_wait_us(admissions[(policy.name, who)], policy, cost, now)
                for policy, who in charges
                if policy in over
            ]
            assert decision.retry_after_seconds == max(waits) / SECOND_US
        else:
            for policy, who in charges:
                admissions.setdefault((policy.name, who), []).append((now, cost))

    for (name, _), log in admissions.items():
        policy = per_subject if name == per_subject.name else shared
        period_us = policy.period_seconds * SECOND_US
        assert all(used(log, period_us, at) <= policy.limit for at, _ in log)


async def test_enforce_raises_resource_exhausted_naming_each_exceeded_policy() -> None:
    limiter = InMemoryRateLimiter()
    once_a_minute = Policy("codes_sent_per_destination_minute", 1, 60)
    await enforce(limiter, [Hit(once_a_minute, "+15550000001")])

    with pytest.raises(ResourceExhausted) as refused:
        await enforce(limiter, [Hit(once_a_minute, "+15550000001")])

    assert [v.subject for v in refused.value.violations] == ["codes_sent_per_destination_minute"]
    assert 0 < refused.value.retry_after_seconds <= 60
