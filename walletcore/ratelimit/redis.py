"""The Redis rate limiter: all hits of a call checked and counted by one Lua script, one trip.

Each (policy, subject) counter is a sliding-window log: a Redis list of admission times in
microseconds, newest first, trimmed to the policy's limit. The script reads the clock of the
Redis server (`TIME`), so application hosts with skewed clocks still agree. It first checks every
counter and only when all have room records the call in all of them (all-or-none).

Keys are `{<namespace>}:<policy name>:<hashed subject>`. Subjects are phone numbers, e-mail
addresses and client addresses, so they are hashed; the shared hash tag puts every key of one
limiter in one Redis Cluster slot, which a multi-key script requires (see
docs/decisions/rate-limiter.md for the trade-off).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Sequence

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from walletcore.errors import Unavailable
from walletcore.ratelimit.base import Decision, Hit, Policy
from walletcore.ratelimit.charges import combine, refusal

_log = logging.getLogger(__name__)

# KEYS[i]: one counter per charge. ARGV: limit, period (microseconds), cost; three per key.
# Returns {1, 0} after recording every charge, or {0, longest wait in microseconds, 1-based
# positions of the refused charges...} having recorded nothing.
_CHECK_AND_RECORD = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local longest_wait = 0
local refused = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 2])
  local period = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  -- The charge fits unless the entry it would push out of the newest `limit` is still in the
  -- window; that entry's age also says how long until it fits.
  local blocking = redis.call('LINDEX', key, limit - cost)
  if blocking then
    local wait = tonumber(blocking) + period - now
    if wait > 0 then
      refused[#refused + 1] = i
      if wait > longest_wait then
        longest_wait = wait
      end
    end
  end
end
if #refused > 0 then
  return {0, longest_wait, unpack(refused)}
end
local stamp = string.format('%d', now)
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 2])
  local period = tonumber(ARGV[3 * i - 1])
  for _ = 1, tonumber(ARGV[3 * i]) do
    redis.call('LPUSH', key, stamp)
  end
  redis.call('LTRIM', key, 0, limit - 1)
  -- The newest entry leaves the window after one period, and the whole counter with it.
  redis.call('PEXPIRE', key, string.format('%d', period / 1000))
end
return {1, 0}
"""

_SUBJECT_DIGEST_HEX_CHARS = 32
"""128 bits of the subject's hash: collisions between subjects stay negligible."""


class RedisRateLimiter:
    """A `RateLimiter` on Redis (standalone or Cluster), failing closed.

    `redis` is a URL (standalone Redis, or any node of a cluster with `cluster=True`) or a
    client (a `RedisCluster` for a cluster). From a URL
    the limiter builds a client whose socket reads time out after `timeout` seconds and connects
    after `connect_timeout`, retrying once at once on a broken connection (a pooled connection
    the server closed) but never on a timeout, and closes it in `close()`. A client passed in
    keeps its own settings and owner. Either way a check that takes longer than `timeout`
    raises `Unavailable`, as does any Redis error.

    With `subject_key`, subjects are hashed with HMAC-SHA-256 under that key instead of plain
    SHA-256, so someone who can read Redis cannot confirm a guessed phone number by hashing it.
    """

    def __init__(
        self,
        redis: str | Redis | RedisCluster,
        *,
        namespace: str,
        timeout: float = 0.25,
        connect_timeout: float = 0.25,
        subject_key: bytes | None = None,
        cluster: bool = False,
    ) -> None:
        if not namespace or "{" in namespace or "}" in namespace:
            raise ValueError("the namespace must be non-empty and free of braces")
        self._redis: Redis | RedisCluster
        if isinstance(redis, str) and cluster:
            # The URL names any node; the client discovers the others and follows the slot
            # map (all of one limiter's keys share a slot, so each check is one trip).
            self._redis = RedisCluster.from_url(
                redis, socket_timeout=timeout, socket_connect_timeout=connect_timeout
            )
            self._owns_client = True
        elif isinstance(redis, str):
            self._redis = Redis.from_url(
                redis,
                socket_timeout=timeout,
                socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
            )
            self._owns_client = True
        else:
            self._redis = redis
            self._owns_client = False
        self._hash_tag = "{" + namespace + "}"
        self._timeout = timeout
        self._subject_key = subject_key
        self._script = self._redis.register_script(_CHECK_AND_RECORD)

    def key_for(self, policy: Policy, subject: str) -> str:
        """The Redis key counting `subject` under `policy`; it never contains the subject."""
        data = subject.encode()
        if self._subject_key is None:
            digest = hashlib.sha256(data).hexdigest()
        else:
            digest = hmac.new(self._subject_key, data, hashlib.sha256).hexdigest()
        return f"{self._hash_tag}:{policy.name}:{digest[:_SUBJECT_DIGEST_HEX_CHARS]}"

    async def check(self, hits: Sequence[Hit]) -> Decision:
        charges = combine(hits)
        if not charges:
            return Decision(allowed=True)
        keys = [self.key_for(charge.policy, charge.subject) for charge in charges]
        args: list[int] = []
        for charge in charges:
            args += (charge.policy.limit, charge.period_us, charge.cost)
        try:
            async with asyncio.timeout(self._timeout):
                reply: list[int] = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            # Security RPCs fail closed: without the counters nothing is admitted.
            _log.warning("rate limit store unreachable (%s)", type(exc).__name__)
            raise Unavailable("the service is temporarily unavailable; retry later") from exc
        allowed, wait_us, *refused_positions = reply
        if allowed:
            return Decision(allowed=True)
        return refusal(charges, [position - 1 for position in refused_positions], wait_us)

    async def close(self) -> None:
        if self._owns_client:
            await self._redis.aclose()
