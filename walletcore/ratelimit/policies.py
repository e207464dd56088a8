"""The default rate-limit policies of SPEC section 7.

The names are stable: clients see them in QuotaFailure details and dashboards group by them, so
renaming one is an API change. Limits may be tuned; a policy with new numbers keeps its name.
"""

from __future__ import annotations

from walletcore.ratelimit.base import Policy

_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR


def codes_sent_per_destination(interval_seconds: int = _MINUTE) -> Policy:
    """One SMS or e-mail code per `interval_seconds` to one phone number or address (the
    resend interval, a setting); the name stays the same whatever the interval."""
    return Policy("codes_sent_per_destination_minute", 1, interval_seconds)


CODES_SENT_PER_DESTINATION_MINUTE = codes_sent_per_destination()
"""One SMS or e-mail code a minute to one phone number or address: the default."""

CODES_SENT_PER_DESTINATION_DAY = Policy("codes_sent_per_destination_day", 10, _DAY)
"""Ten codes a day to one destination: bounds SMS cost (SMS pumping) and message bombing."""

CODE_CHECKS_PER_ACCOUNT_HOUR = Policy("code_checks_per_account_hour", 20, _HOUR)
"""Twenty code checks an hour per account, across codes: a new code buys no new guesses.

A service may count each kind of code apart (auth does: a stranger's checks of reset codes
must not use up the owner's self-freeze or second-factor checks), so the subject names the
account and the kind of code."""

SIGN_IN_PER_CLIENT_ADDRESS_MINUTE = Policy("sign_in_per_client_address_minute", 30, _MINUTE)
"""Thirty sign-ins a minute from one client address: slows credential stuffing from one host."""

SIGN_IN_PER_ACCOUNT_MINUTE = Policy("sign_in_per_account_minute", 10, _MINUTE)
"""Ten sign-in attempts a minute per account, from any address.

It stops a distributed guesser from spending unbounded password-hashing CPU on one account,
while a person retyping a password never needs ten tries a minute. The period is short on
purpose: anyone can exhaust a per-account limit, and a short window means the owner gets back
in within a minute of the attack stopping, so it cannot become a lasting lock-out. Bounding the
total number of guesses is the job of auth's failure counter (at most 100 consecutive failures,
growing delays), not of this rate.
"""

SIGN_IN_PER_DEVICE_TOKEN_MINUTE = Policy("sign_in_per_device_token_minute", 10, _MINUTE)
"""Ten sign-in attempts a minute per device token, for attempts that present a valid one.

A device that signed in before is charged here instead of `sign_in_per_account_minute`, so a
stranger exhausting the identifier's limit does not lock the owner's devices out (OWASP's
device cookies; docs/decisions/sign-in-device-tokens.md). Only auth can issue a token, so only
someone who once knew the password has a bucket of their own.
"""

SIGN_IN_PER_KNOWN_ADDRESS_MINUTE = Policy("sign_in_per_known_address_minute", 10, _MINUTE)
"""Ten sign-in attempts a minute per (account, client address) that signed in before, for
attempts without a valid device token: the owner at an address they used keeps signing in
while a stranger elsewhere exhausts the identifier's limit (SPEC section 3). A stranger who
shares that address shares this limit, as they share the per-address one.
"""
