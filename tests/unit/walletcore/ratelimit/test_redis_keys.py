"""Redis key layout: no personal data in clear, one Cluster slot per limiter (no I/O here)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.crc import key_slot

from walletcore.ratelimit import Policy, RedisRateLimiter
from walletcore.ratelimit.policies import (
    CODES_SENT_PER_DESTINATION_DAY,
    SIGN_IN_PER_CLIENT_ADDRESS_MINUTE,
)

SUBJECTS = ["+8613800138000", "alice@example.com", "203.0.113.7", "2001:db8::1", "account-42"]


@pytest.fixture
async def limiter() -> AsyncIterator[RedisRateLimiter]:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", namespace="auth")  # never connects
    yield limiter
    await limiter.close()


async def test_keys_name_the_policy_but_never_the_subject(limiter: RedisRateLimiter) -> None:
    for subject in SUBJECTS:
        key = limiter.key_for(CODES_SENT_PER_DESTINATION_DAY, subject)
        assert key.startswith("{auth}:codes_sent_per_destination_day:")
        assert subject not in key


async def test_every_key_of_a_limiter_lands_in_one_cluster_slot(limiter: RedisRateLimiter) -> None:
    keys = [
        limiter.key_for(policy, subject)
        for policy in (CODES_SENT_PER_DESTINATION_DAY, SIGN_IN_PER_CLIENT_ADDRESS_MINUTE)
        for subject in SUBJECTS
    ]

    assert len(set(keys)) == len(keys)
    assert {key_slot(key.encode()) for key in keys} == {key_slot(b"{auth}")}


async def test_a_subject_key_changes_every_digest(limiter: RedisRateLimiter) -> None:
    keyed = RedisRateLimiter("redis://127.0.0.1:1/0", namespace="auth", subject_key=b"k" * 32)
    policy = Policy("p", 1, 1)
    try:
        for subject in SUBJECTS:
            assert keyed.key_for(policy, subject) != limiter.key_for(policy, subject)
    finally:
        await keyed.close()


@pytest.mark.parametrize("namespace", ["", "{auth}", "a}b"])
def test_a_namespace_that_would_break_the_hash_tag_is_refused(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        RedisRateLimiter("redis://127.0.0.1:1/0", namespace=namespace)
