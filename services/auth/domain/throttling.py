"""Sign-in throttling: growing delays and temporary locks that cannot lock the owner out.

Three counters of consecutive password failures, each a persisted `FailureCounter` row:

- per (account, client address): after 3 failures each attempt waits 2^(n-3) seconds; from 10
  failures on, each attempt waits 15 minutes. Forgotten after 24 quiet hours. This is what
  stops one attacker, and it stops only that attacker: the lock is keyed by their address.
- per account, from every address: after 10 failures, 2^(n-10) seconds, at most 15 minutes.
  This slows an attack spread over many addresses.
- per client address, over every account: after 20 failures, 2^(n-20) seconds, at most 5
  minutes; forgotten after a quiet hour. This slows one address spraying many accounts.

Why the owner is never locked out for good:

- All delays and locks are temporary, and the ones keyed by the attacker's address touch the
  attacker only.
- An (account, address) pair that has signed in successfully before is "known": attempts from
  it skip the account-wide and address-wide delays, so an attack from elsewhere does not slow
  the owner at home.
- The hard ceiling: after 100 consecutive failures (the SPEC's maximum) the account refuses
  password sign-in (CREDENTIAL_RESET_REQUIRED) until the owner completes a credential reset,
  which needs a code sent to a verified contact (and the second factor where one is enabled)
  and clears the count. Reaching it takes an attacker about a day of account-wide delays, and
  the owner is notified (SIGN_IN_LOCKED) when it happens.
- A success from any address resets the account's and the pair's counts; it does not reset
  the address's count, or an attacker could clear it with an account of their own.
- A device token (`domain.device_tokens`) of the account stands in for the address: the pair
  is then (account, token), and a valid token is known by definition (only a right password
  earns one). Its failures delay and then lock that token the way a pair's lock an address.

Counters are keyed by an opaque subject, not necessarily an account id: for an identifier
that matches no account, the service layer uses a keyed hash of the identifier, so unknown and
existing accounts are throttled alike and answers reveal nothing about which exists.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from walletcore.errors import DomainError, FailedPrecondition, QuotaViolation, ResourceExhausted

from .reasons import Reason

MAX_CONSECUTIVE_FAILURES: Final = 100
KNOWN_PAIR_MEMORY: Final = timedelta(days=90)
"""How long a successful sign-in makes an (account, address) pair "known"."""


class CounterScope(enum.StrEnum):
    ACCOUNT = "ACCOUNT"
    ACCOUNT_ADDRESS = "ACCOUNT_ADDRESS"
    ADDRESS = "ADDRESS"


@dataclass(frozen=True, slots=True)
class BackoffRule:
    delays_from: int
    """The failure count at which waiting starts: 2^(n - delays_from) seconds after it."""
    max_delay: timedelta
    lock_after: int | None = None
    """From this many failures on, every attempt waits `lock_duration`."""
    lock_duration: timedelta = timedelta(0)
    forget_after: timedelta | None = None
    """Quiet time after which the count starts again from zero."""

    def __post_init__(self) -> None:
        if self.delays_from < 1 or self.max_delay <= timedelta(0):
            raise ValueError("a backoff rule needs a positive start and maximum delay")
        if self.lock_after is not None and (
            self.lock_after < self.delays_from or self.lock_duration <= timedelta(0)
        ):
            raise ValueError("a lock starts at or after the delays, and lasts")

    def wait_after(self, failures: int) -> timedelta:
        """How long after the last failure the next attempt must wait."""
        if failures < self.delays_from:
            return timedelta(0)
        if self.lock_after is not None and failures >= self.lock_after:
            return self.lock_duration
        # The exponent is capped first so the power never grows past what the cap allows.
        exponent = min(failures - self.delays_from, 32)
        return min(timedelta(seconds=2**exponent), self.max_delay)

    def live_failures(self, counter: FailureCounter, now: datetime) -> int:
        """The counter's failures, or 0 once it has been quiet for `forget_after`."""
        if (
            self.forget_after is not None
            and counter.last_failure_at is not None
            and now - counter.last_failure_at >= self.forget_after
        ):
            return 0
        return counter.consecutive_failures


PAIR_RULE: Final = BackoffRule(
    delays_from=3,
    max_delay=timedelta(minutes=15),
    lock_after=10,
    lock_duration=timedelta(minutes=15),
    forget_after=timedelta(hours=24),
)
ACCOUNT_RULE: Final = BackoffRule(delays_from=10, max_delay=timedelta(minutes=15))
ADDRESS_RULE: Final = BackoffRule(
    delays_from=20, max_delay=timedelta(minutes=5), forget_after=timedelta(hours=1)
)


@dataclass(slots=True)
class FailureCounter:
    """One row: consecutive failures of one scope and key."""

    scope: CounterScope
    key: str
    consecutive_failures: int = 0
    last_failure_at: datetime | None = None
    last_success_at: datetime | None = None
    """Pairs only: when this account last signed in from this address."""

    @classmethod
    def for_account(cls, subject: str) -> FailureCounter:
        return cls(CounterScope.ACCOUNT, subject)

    @classmethod
    def for_pair(cls, subject: str, client_address: str) -> FailureCounter:
        return cls(CounterScope.ACCOUNT_ADDRESS, f"{subject}|{client_address}")

    @classmethod
    def for_address(cls, client_address: str) -> FailureCounter:
        return cls(CounterScope.ADDRESS, client_address)

    @classmethod
    def for_device(cls, subject: str, token_id: str) -> FailureCounter:
        """The pair of an account and a device token: it plays the (account, address) pair's
        role when the attempt presents the token (no address is spelled `device:...`)."""
        return cls(CounterScope.ACCOUNT_ADDRESS, f"{subject}|device:{token_id}")

    def is_known_pair(self, now: datetime) -> bool:
        return self.last_success_at is not None and now - self.last_success_at < KNOWN_PAIR_MEMORY


@dataclass(frozen=True, slots=True)
class SignInCounters:
    """The three counters one sign-in attempt is subject to."""

    account: FailureCounter
    pair: FailureCounter
    address: FailureCounter
    vouched: bool = False
    """The pair is a valid device token's: known, whatever its last success."""

    def __post_init__(self) -> None:
        scopes = (self.account.scope, self.pair.scope, self.address.scope)
        if scopes != (CounterScope.ACCOUNT, CounterScope.ACCOUNT_ADDRESS, CounterScope.ADDRESS):
            raise ValueError("counters given in the wrong scopes")


@dataclass(frozen=True, slots=True)
class ThrottleDecision:
    allowed: bool
    retry_after: timedelta = timedelta(0)
    reset_required: bool = False
    """The account reached the ceiling: only a credential reset lets it sign in again."""

    def raise_if_refused(self) -> None:
        if error := self.refusal():
            raise error

    def refusal(self) -> DomainError | None:
        if self.reset_required:
            return FailedPrecondition(
                "too many failed sign-ins: reset your password to sign in again",
                reason=Reason.CREDENTIAL_RESET_REQUIRED,
            )
        if self.allowed:
            return None
        return ResourceExhausted(
            "too many failed sign-ins: try again later",
            retry_after_seconds=self.retry_after.total_seconds(),
            violations=[QuotaViolation("sign_in_failures", "growing delay after failed sign-ins")],
            reason=Reason.SIGN_IN_THROTTLED,
        )


ALLOWED: Final = ThrottleDecision(allowed=True)


@dataclass(frozen=True, slots=True)
class SignInThrottle:
    pair_rule: BackoffRule = PAIR_RULE
    account_rule: BackoffRule = ACCOUNT_RULE
    address_rule: BackoffRule = ADDRESS_RULE
    ceiling: int = MAX_CONSECUTIVE_FAILURES

    def decide(self, counters: SignInCounters, now: datetime) -> ThrottleDecision:
        """Whether a password may be checked now. Check before verifying the password."""
        if counters.account.consecutive_failures >= self.ceiling:
            return ThrottleDecision(allowed=False, reset_required=True)
        waits = [_remaining_wait(self.pair_rule, counters.pair, now)]
        if not (counters.vouched or counters.pair.is_known_pair(now)):
            waits.append(_remaining_wait(self.account_rule, counters.account, now))
            waits.append(_remaining_wait(self.address_rule, counters.address, now))
        retry_after = max(waits)
        if retry_after > timedelta(0):
            return ThrottleDecision(allowed=False, retry_after=retry_after)
        return ALLOWED

    def record_failure(self, counters: SignInCounters, now: datetime) -> bool:
        """Counts a wrong password; True when this failure locked the pair or brought the
        account to the ceiling (a SIGN_IN_LOCKED event for the account)."""
        for counter, rule in (
            (counters.pair, self.pair_rule),
            (counters.account, self.account_rule),
            (counters.address, self.address_rule),
        ):
            counter.consecutive_failures = rule.live_failures(counter, now) + 1
            counter.last_failure_at = now
        counters.account.consecutive_failures = min(
            counters.account.consecutive_failures, self.ceiling
        )
        return (
            counters.pair.consecutive_failures == self.pair_rule.lock_after
            or counters.account.consecutive_failures == self.ceiling
        )

    def record_success(self, counters: SignInCounters, now: datetime) -> None:
        counters.account.consecutive_failures = 0
        counters.pair.consecutive_failures = 0
        counters.pair.last_success_at = now

    def clear_after_credential_reset(
        self, account: FailureCounter, pairs: Iterable[FailureCounter]
    ) -> None:
        """The owner proved themselves with a code: every lock of the account ends. (Each
        pair's known status stays: it was earned by a successful sign-in.)"""
        for counter in (account, *pairs):
            counter.consecutive_failures = 0


def _remaining_wait(rule: BackoffRule, counter: FailureCounter, now: datetime) -> timedelta:
    failures = rule.live_failures(counter, now)
    if failures == 0 or counter.last_failure_at is None:
        return timedelta(0)
    ready_at = counter.last_failure_at + rule.wait_after(failures)
    return max(ready_at - now, timedelta(0))
