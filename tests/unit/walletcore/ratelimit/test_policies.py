"""The SPEC section 7 defaults: their numbers, and names that clients see in QuotaFailure."""

from __future__ import annotations

from walletcore.ratelimit import policies
from walletcore.ratelimit.base import Policy


def test_the_defaults_are_the_spec_limits_under_stable_names() -> None:
    defaults = {
        value.name: (value.limit, value.period_seconds)
        for value in vars(policies).values()
        if isinstance(value, Policy)
    }

    assert defaults == {
        "codes_sent_per_destination_minute": (1, 60),
        "codes_sent_per_destination_day": (10, 86400),
        "code_checks_per_account_hour": (20, 3600),
        "sign_in_per_client_address_minute": (30, 60),
        "sign_in_per_account_minute": (10, 60),
        "sign_in_per_device_token_minute": (10, 60),
        "sign_in_per_known_address_minute": (10, 60),
    }
