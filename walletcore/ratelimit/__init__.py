"""Rate limiting (SPEC section 7): the contract, the Redis and in-process limiters, the defaults."""

from walletcore.ratelimit.base import Decision, Hit, Policy, RateLimiter
from walletcore.ratelimit.enforce import enforce, refusal
from walletcore.ratelimit.memory import InMemoryRateLimiter
from walletcore.ratelimit.policies import (
    CODE_CHECKS_PER_ACCOUNT_HOUR,
    CODES_SENT_PER_DESTINATION_DAY,
    CODES_SENT_PER_DESTINATION_MINUTE,
    SIGN_IN_PER_ACCOUNT_MINUTE,
    SIGN_IN_PER_CLIENT_ADDRESS_MINUTE,
    SIGN_IN_PER_DEVICE_TOKEN_MINUTE,
    SIGN_IN_PER_KNOWN_ADDRESS_MINUTE,
)
from walletcore.ratelimit.redis import RedisRateLimiter

__all__ = [
    "CODES_SENT_PER_DESTINATION_DAY",
    "CODES_SENT_PER_DESTINATION_MINUTE",
    "CODE_CHECKS_PER_ACCOUNT_HOUR",
    "SIGN_IN_PER_ACCOUNT_MINUTE",
    "SIGN_IN_PER_CLIENT_ADDRESS_MINUTE",
    "SIGN_IN_PER_DEVICE_TOKEN_MINUTE",
    "SIGN_IN_PER_KNOWN_ADDRESS_MINUTE",
    "Decision",
    "Hit",
    "InMemoryRateLimiter",
    "Policy",
    "RateLimiter",
    "RedisRateLimiter",
    "enforce",
    "refusal",
]
