"""One-time codes: keyed-hashed, short-lived, single-use, 5 tries each, and a failure ledger
per purpose and account that a new code does not reset, whose cooling never refuses a
self-freeze code's first try."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.auth.domain.ledger import (
    CodeFailureLedger,
    CodeFailurePolicy,
    purpose_ledger_subject,
)
from services.auth.domain.otp import (
    OtpChallenge,
    OtpChannel,
    OtpLifetimes,
    OtpState,
)
from services.auth.domain.proofs import ChallengePurpose, FactorMethod
from walletcore.crypto import SecretHasher
from walletcore.errors import DomainError, FailedPrecondition, InvalidArgument, ResourceExhausted

CODE = "042917"
RESET = ChallengePurpose.CREDENTIAL_RESET
FREEZE = ChallengePurpose.SELF_FREEZE
RESET_LEDGER = purpose_ledger_subject(ChallengePurpose.CREDENTIAL_RESET, "acc-1")
FREEZE_LEDGER = purpose_ledger_subject(ChallengePurpose.SELF_FREEZE, "acc-1")


def issue(
    hasher: SecretHasher,
    now: datetime,
    *,
    channel: OtpChannel = OtpChannel.SMS,
    challenge_id: str = "otp-1",
    account_id: str | None = "acc-1",
    code: str = CODE,
    purpose: ChallengePurpose = RESET,
) -> OtpChallenge:
    return OtpChallenge.issue(
        id=challenge_id,
        account_id=account_id,
        purpose=purpose,
        channel=channel,
        destination_ref="c-phone",
        code=code,
        hasher=hasher,
        now=now,
    )


def wrong_code(
    challenge: OtpChallenge, ledger: CodeFailureLedger, hasher: SecretHasher, now: datetime
) -> DomainError:
    outcome = challenge.check(
        "000000", purpose=challenge.purpose, hasher=hasher, ledger=ledger, now=now
    )
    assert outcome.failure is not None
    return outcome.failure


def test_code_is_stored_only_as_keyed_hash(hasher: SecretHasher, now: datetime) -> None:
    challenge = issue(hasher, now)
    assert CODE not in challenge.code_hash
    assert hasher.verify(CODE, challenge.code_hash)


def test_sms_codes_live_10_minutes_and_email_codes_15_by_default(
    hasher: SecretHasher, now: datetime
) -> None:
    assert issue(hasher, now).expires_at == now + timedelta(minutes=10)
    assert issue(hasher, now, channel=OtpChannel.EMAIL).expires_at == now + timedelta(minutes=15)


@pytest.mark.parametrize(
    "lifetimes",
    [{"sms": timedelta(minutes=11)}, {"email": timedelta(minutes=61)}, {"sms": timedelta(0)}],
)
def test_lifetimes_are_configurable_only_within_the_caps(lifetimes: dict[str, timedelta]) -> None:
    with pytest.raises(ValueError, match="at most"):
        OtpLifetimes(**lifetimes)


def test_email_lifetime_may_be_raised_to_an_hour(hasher: SecretHasher, now: datetime) -> None:
    challenge = OtpChallenge.issue(
        id="otp-1",
        account_id="acc-1",
        purpose=RESET,
        channel=OtpChannel.EMAIL,
        destination_ref="c-email",
        code=CODE,
        hasher=hasher,
        now=now,
        lifetimes=OtpLifetimes(email=timedelta(minutes=60)),
    )
    assert challenge.expires_at == now + timedelta(minutes=60)


def test_sent_codes_cannot_serve_authenticator_purposes(
    hasher: SecretHasher, now: datetime
) -> None:
    with pytest.raises(ValueError, match="SIGN_IN"):
        OtpChallenge.issue(
            id="otp-1",
            account_id="acc-1",
            purpose=ChallengePurpose.SIGN_IN,
            channel=OtpChannel.SMS,
            destination_ref="c-phone",
            code=CODE,
            hasher=hasher,
            now=now,
        )


def test_right_code_proves_the_purpose_once(hasher: SecretHasher, now: datetime) -> None:
    challenge, ledger = issue(hasher, now), CodeFailureLedger(RESET_LEDGER)
    later = now + timedelta(minutes=3)
    proof = challenge.check(
        "042 917", purpose=RESET, hasher=hasher, ledger=ledger, now=later
    ).proof_or_raise()
    assert (proof.account_id, proof.method, proof.purpose) == ("acc-1", FactorMethod.SMS, RESET)
    assert (proof.challenge_id, proof.destination_ref, proof.verified_at) == (
        "otp-1",
        "c-phone",
        later,
    )
    assert (challenge.state, challenge.used_at) == (OtpState.USED, later)
    with pytest.raises(FailedPrecondition) as caught:
        challenge.check(CODE, purpose=RESET, hasher=hasher, ledger=ledger, now=later)
    assert caught.value.reason == "CODE_EXPIRED"


def test_malformed_code_is_invalid_and_costs_no_attempt(
    hasher: SecretHasher, now: datetime
) -> None:
    challenge, ledger = issue(hasher, now), CodeFailureLedger(RESET_LEDGER)
    for malformed in ["12a456", "12345", "1234567", "١٢٣٤٥٦"]:
        with pytest.raises(InvalidArgument) as caught:
            challenge.check(malformed, purpose=RESET, hasher=hasher, ledger=ledger, now=now)
        assert caught.value.reason == "CODE_INVALID"
    assert challenge.failed_attempts == 0
    assert ledger.recent_failures == []


def test_code_of_another_purpose_is_invalid_and_costs_no_attempt(
    hasher: SecretHasher, now: datetime
) -> None:
    challenge, ledger = issue(hasher, now), CodeFailureLedger(RESET_LEDGER)
    with pytest.raises(InvalidArgument):
        challenge.check(
            CODE, purpose=ChallengePurpose.SELF_FREEZE, hasher=hasher, ledger=ledger, now=now
        )
    assert challenge.state is OtpState.PENDING


def test_wrong_codes_count_down_then_exhaust_the_challenge(
    hasher: SecretHasher, now: datetime
) -> None:
    challenge, ledger = issue(hasher, now), CodeFailureLedger(RESET_LEDGER)
    for attempts_left in [4, 3, 2, 1]:
        failure = wrong_code(challenge, ledger, hasher, now)
        assert isinstance(failure, InvalidArgument)
        assert failure.reason == "CODE_INVALID"
        assert failure.metadata == {"attempts_left": str(attempts_left)}
    failure = wrong_code(challenge, ledger, hasher, now)
    assert (type(failure), failure.reason) == (FailedPrecondition, "TOO_MANY_ATTEMPTS")
    assert challenge.state is OtpState.EXHAUSTED
    with pytest.raises(FailedPrecondition) as caught:
        challenge.check(CODE, purpose=RESET, hasher=hasher, ledger=ledger, now=now)
    assert caught.value.reason == "TOO_MANY_ATTEMPTS"


def test_code_expires_at_its_expiry_time(hasher: SecretHasher, now: datetime) -> None:
    challenge, ledger = issue(hasher, now), CodeFailureLedger(RESET_LEDGER)
    outcome = challenge.check(
        CODE, purpose=RESET, hasher=hasher, ledger=ledger, now=challenge.expires_at
    )
    assert outcome.failure is not None
    assert outcome.failure.reason == "CODE_EXPIRED"
    assert challenge.state is OtpState.EXPIRED


def test_new_code_does_not_reset_the_account_failure_count(
    hasher: SecretHasher, now: datetime
) -> None:
    ledger = CodeFailureLedger(RESET_LEDGER)
    first, second, third = (issue(hasher, now, challenge_id=f"otp-{i}") for i in range(3))
    for _ in range(5):
        wrong_code(first, ledger, hasher, now)
    for _ in range(5):
        wrong_code(second, ledger, hasher, now)
    with pytest.raises(ResourceExhausted) as caught:
        third.check(CODE, purpose=RESET, hasher=hasher, ledger=ledger, now=now)
    assert caught.value.retry_after_seconds == 3600
    assert third.state is OtpState.PENDING
    after_cooling = now + timedelta(hours=1)
    fourth = issue(hasher, after_cooling, challenge_id="otp-4")
    assert fourth.check(
        CODE, purpose=RESET, hasher=hasher, ledger=ledger, now=after_cooling
    ).accepted


def test_each_purpose_counts_in_a_ledger_of_its_own(hasher: SecretHasher, now: datetime) -> None:
    subjects = {
        issue(hasher, now, purpose=purpose).ledger_subject
        for purpose in (RESET, FREEZE, ChallengePurpose.STEP_UP, ChallengePurpose.CONTACT_CHANGE)
    }
    assert len(subjects) == 4
    freeze = issue(hasher, now, purpose=FREEZE)
    assert freeze.ledger_subject == FREEZE_LEDGER
    with pytest.raises(ValueError, match="another subject"):
        freeze.check(
            CODE, purpose=FREEZE, hasher=hasher, ledger=CodeFailureLedger(RESET_LEDGER), now=now
        )


def test_a_cooling_self_freeze_ledger_refuses_retries_but_never_a_first_try(
    hasher: SecretHasher, now: datetime
) -> None:
    ledger = CodeFailureLedger(FREEZE_LEDGER)
    strangers = [issue(hasher, now, challenge_id=f"otp-{i}", purpose=FREEZE) for i in range(2)]
    for challenge in strangers:
        for _ in range(5):
            wrong_code(challenge, ledger, hasher, now)
    assert ledger.locked_until == now + timedelta(hours=1)
    owners = issue(hasher, now, challenge_id="otp-owner", purpose=FREEZE)

    assert owners.is_untried_self_freeze
    assert owners.check(CODE, purpose=FREEZE, hasher=hasher, ledger=ledger, now=now).accepted


def test_while_cooling_a_self_freeze_code_gets_one_counted_try(
    hasher: SecretHasher, now: datetime
) -> None:
    ledger = CodeFailureLedger(FREEZE_LEDGER, locked_until=now + timedelta(hours=1))
    challenge = issue(hasher, now, purpose=FREEZE)

    first = wrong_code(challenge, ledger, hasher, now)
    with pytest.raises(ResourceExhausted):
        challenge.check(CODE, purpose=FREEZE, hasher=hasher, ledger=ledger, now=now)

    assert first.reason == "CODE_INVALID"
    assert ledger.recent_failures == [now]
    assert not challenge.is_untried_self_freeze
    assert challenge.state is OtpState.PENDING


def test_a_cooling_reset_ledger_refuses_even_a_fresh_right_code(
    hasher: SecretHasher, now: datetime
) -> None:
    ledger = CodeFailureLedger(RESET_LEDGER, locked_until=now + timedelta(hours=1))
    fresh = issue(hasher, now)
    assert not fresh.is_untried_self_freeze
    with pytest.raises(ResourceExhausted):
        fresh.check(CODE, purpose=RESET, hasher=hasher, ledger=ledger, now=now)


@pytest.mark.parametrize(("tenth_failure_minute", "locked"), [(59, True), (61, False)])
def test_failures_age_out_of_the_rolling_window(
    now: datetime, tenth_failure_minute: int, locked: bool
) -> None:
    ledger = CodeFailureLedger(RESET_LEDGER)
    for _ in range(9):
        ledger.record_failure(now)
    at = now + timedelta(minutes=tenth_failure_minute)
    ledger.record_failure(at)
    assert (ledger.locked_until is not None) is locked
    if not locked:
        ledger.ensure_open(at)


def test_failures_without_an_account_count_against_the_destination(
    hasher: SecretHasher, now: datetime
) -> None:
    challenge = issue(hasher, now, account_id=None)
    assert challenge.ledger_subject == purpose_ledger_subject(
        ChallengePurpose.CREDENTIAL_RESET, "c-phone"
    )
    with pytest.raises(ValueError, match="another subject"):
        challenge.check(CODE, purpose=RESET, hasher=hasher, ledger=CodeFailureLedger("x"), now=now)


@given(
    attempts=st.lists(st.sampled_from(["000000", "999999", CODE]), min_size=1, max_size=12),
    minutes=st.lists(st.integers(0, 9), min_size=12, max_size=12),
)
def test_no_code_is_accepted_after_five_failures(attempts: list[str], minutes: list[int]) -> None:
    hasher = SecretHasher.development(context="auth.domain-tests")
    start = datetime.fromisoformat("2025-03-01T12:00:00+00:00")
    challenge = issue(hasher, start)
    ledger = CodeFailureLedger(RESET_LEDGER, policy=CodeFailurePolicy(limit=1000))
    wrong_so_far = 0
    for code, minute in zip(attempts, minutes, strict=False):
        try:
            outcome = challenge.check(
                code,
                purpose=RESET,
                hasher=hasher,
                ledger=ledger,
                now=start + timedelta(minutes=minute),
            )
        except DomainError:
            continue
        if outcome.accepted:
            assert wrong_so_far < 5
            assert code == CODE
        else:
            wrong_so_far += 1
    assert challenge.failed_attempts <= 5
