"""Device tokens: only auth can make one, it names one account, and it ends."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.auth.domain.device_tokens import (
    DEVICE_TOKEN_LIFETIME,
    MAX_DEVICE_TOKEN_LENGTH,
    DeviceToken,
    read_device_token,
)
from services.auth.domain.throttling import FailureCounter, SignInCounters, SignInThrottle
from tests.support.device_tokens import tampered_device_tokens
from walletcore.crypto import SecretHasher
from walletcore.keys import generate_key

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN_ID = "d3v1ce-t0ken-1d_abcdefghijklmnopqrstu"


def issued(now: datetime, lifetime: timedelta = DEVICE_TOKEN_LIFETIME) -> DeviceToken:
    return DeviceToken.issue(account_id=ACCOUNT, token_id=TOKEN_ID, now=now, lifetime=lifetime)


def test_a_signed_token_reads_back_as_the_device_and_account_it_names(
    hasher: SecretHasher, now: datetime
) -> None:
    token = issued(now)

    read = read_device_token(token.signed(hasher), hasher, now)

    assert read == token
    assert read is not None
    assert read.is_for(ACCOUNT)
    assert not read.is_for("another-account")


def test_a_token_is_good_until_it_expires(hasher: SecretHasher, now: datetime) -> None:
    text = issued(now).signed(hasher)

    assert read_device_token(text, hasher, now + DEVICE_TOKEN_LIFETIME - timedelta(seconds=1))
    assert read_device_token(text, hasher, now + DEVICE_TOKEN_LIFETIME) is None


def test_a_renewed_token_keeps_its_id_and_gets_a_new_expiry(now: datetime) -> None:
    later = now + timedelta(days=30)

    renewed = issued(now).renewed(later)

    assert (renewed.account_id, renewed.token_id) == (ACCOUNT, TOKEN_ID)
    assert renewed.expires_at == (later + DEVICE_TOKEN_LIFETIME).replace(microsecond=0)


def test_a_tampered_malformed_or_empty_token_reads_as_none(
    hasher: SecretHasher, now: datetime
) -> None:
    for text in tampered_device_tokens(
        issued(now).signed(hasher), max_length=MAX_DEVICE_TOKEN_LENGTH
    ):
        assert read_device_token(text, hasher, now) is None, text


def test_a_token_of_another_key_reads_as_none_and_a_rotation_keeps_old_tokens(
    now: datetime,
) -> None:
    old, new = generate_key("old"), generate_key("new")
    before = SecretHasher([old], context="auth.device_tokens")
    text = issued(now).signed(before)

    assert read_device_token(text, SecretHasher([new], context="auth.device_tokens"), now) is None
    assert read_device_token(text, SecretHasher([new, old], context="auth.device_tokens"), now)


def test_ids_that_cannot_be_read_back_are_never_issued(now: datetime) -> None:
    with pytest.raises(ValueError, match="url-safe"):
        DeviceToken.issue(account_id=ACCOUNT, token_id="has.a.dot.in.it.xxxxxxxx", now=now)


def test_a_vouched_pair_skips_the_account_wide_delay_but_not_its_own(now: datetime) -> None:
    """A stranger's failures slow the account everywhere, but not a device that presents its
    token; the token's own failures still delay and then lock it."""
    throttle = SignInThrottle()
    account = FailureCounter.for_account(ACCOUNT)
    account.consecutive_failures, account.last_failure_at = 40, now
    device = FailureCounter.for_device(ACCOUNT, TOKEN_ID)
    address = FailureCounter.for_address("198.51.100.20")

    strangers_view = throttle.decide(SignInCounters(account, device, address), now)
    devices_view = throttle.decide(SignInCounters(account, device, address, vouched=True), now)
    device.consecutive_failures, device.last_failure_at = 10, now
    locked = throttle.decide(SignInCounters(account, device, address, vouched=True), now)

    assert not strangers_view.allowed
    assert devices_view.allowed
    assert (locked.allowed, locked.retry_after) == (False, timedelta(minutes=15))
