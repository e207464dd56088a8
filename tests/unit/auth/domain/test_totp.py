"""TOTP through pyotp: RFC 6238 vectors, enrolment, drift of one step, and replay refusal."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.auth.domain.ledger import (
    CodeFailureLedger,
    CodeFailurePolicy,
    purpose_ledger_subject,
    second_factor_ledger_subject,
)
from services.auth.domain.proofs import ChallengePurpose, CheckOutcome, FactorMethod
from services.auth.domain.totp import (
    TotpFactor,
    TotpParameters,
    TotpState,
    generate_totp_secret,
)
from walletcore.errors import FailedPrecondition, InvalidArgument

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
# RFC 6238 Appendix B, SHA-1 column.
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]
SIX_DIGITS = TotpParameters()
SIGN_IN = ChallengePurpose.SIGN_IN
# Fixed, so that which codes collide inside a drift window is the same on every run.
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
ENROLMENT_LEDGER = purpose_ledger_subject(ChallengePurpose.TOTP_ENROLLMENT, "acc-1")
SECOND_FACTOR_LEDGER = second_factor_ledger_subject("acc-1")


def at(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


def code_at(moment: datetime, secret: str = SECRET) -> str:
    return str(SIX_DIGITS.generator(secret).at(moment))


def failure_reason(outcome: CheckOutcome) -> str:
    assert outcome.failure is not None
    return outcome.failure.reason


def answer(error: InvalidArgument) -> tuple[object, ...]:
    """What a client sees of a refusal."""
    return (type(error), error.reason, error.message, error.violations, error.metadata)


def active_factor(now: datetime) -> TotpFactor:
    factor = TotpFactor.start_enrollment(
        id="totp-1", account_id="acc-1", encrypted_secret=b"sealed", now=now
    )
    factor.confirm(code_at(now), secret=SECRET, ledger=CodeFailureLedger(ENROLMENT_LEDGER), now=now)
    return factor


@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_rfc6238_sha1_vectors_with_eight_digits(unix_time: int, expected: str) -> None:
    eight_digits = TotpParameters(digits=8)
    assert eight_digits.generator(RFC_SECRET).at(unix_time) == expected
    assert eight_digits.matching_step(RFC_SECRET, expected, at(unix_time)) == unix_time // 30


@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_six_digit_codes_are_the_last_six_digits(unix_time: int, expected: str) -> None:
    assert SIX_DIGITS.matching_step(RFC_SECRET, expected[-6:], at(unix_time)) == unix_time // 30


def test_secret_has_160_bits() -> None:
    assert len(base64.b32decode(generate_totp_secret())) == 20
    assert generate_totp_secret() != generate_totp_secret()


def test_provisioning_uri_names_issuer_label_and_parameters(now: datetime) -> None:
    factor = TotpFactor.start_enrollment(
        id="totp-1", account_id="acc-1", encrypted_secret=b"sealed", now=now
    )
    uri = urlparse(
        factor.provisioning_uri(SECRET, issuer="Wallet", account_label="a***@example.com")
    )
    query = parse_qs(uri.query)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert "Wallet" in uri.path
    assert query["secret"] == [SECRET]
    assert query["issuer"] == ["Wallet"]


def test_enrolment_is_confirmed_by_a_first_code(now: datetime) -> None:
    factor = TotpFactor.start_enrollment(
        id="totp-1", account_id="acc-1", encrypted_secret=b"sealed", now=now
    )
    assert factor.state is TotpState.PENDING_CONFIRMATION
    proof = factor.confirm(
        code_at(now), secret=SECRET, ledger=CodeFailureLedger(ENROLMENT_LEDGER), now=now
    ).proof_or_raise()
    assert (proof.method, proof.purpose) == (FactorMethod.TOTP, ChallengePurpose.TOTP_ENROLLMENT)
    assert (factor.state, factor.confirmed_at) == (TotpState.ACTIVE, now)
    with pytest.raises(FailedPrecondition) as caught:
        factor.confirm(
            code_at(now), secret=SECRET, ledger=CodeFailureLedger(ENROLMENT_LEDGER), now=now
        )
    assert caught.value.reason == "TOTP_ALREADY_ENABLED"


def test_enrolment_expires_after_ten_minutes(now: datetime) -> None:
    factor = TotpFactor.start_enrollment(
        id="totp-1", account_id="acc-1", encrypted_secret=b"sealed", now=now
    )
    late = now + timedelta(minutes=10)
    with pytest.raises(FailedPrecondition) as caught:
        factor.confirm(
            code_at(late), secret=SECRET, ledger=CodeFailureLedger(ENROLMENT_LEDGER), now=late
        )
    assert caught.value.reason == "CODE_EXPIRED"


def test_five_wrong_confirmations_end_the_enrolment(now: datetime) -> None:
    factor = TotpFactor.start_enrollment(
        id="totp-1", account_id="acc-1", encrypted_secret=b"sealed", now=now
    )
    ledger = CodeFailureLedger(ENROLMENT_LEDGER, policy=CodeFailurePolicy(limit=100))
    wrong = str((int(code_at(now)) + 500_000) % 1_000_000).zfill(6)
    reasons = [
        failure_reason(factor.confirm(wrong, secret=SECRET, ledger=ledger, now=now))
        for _ in range(5)
    ]
    assert reasons == ["CODE_INVALID"] * 4 + ["TOO_MANY_ATTEMPTS"]
    assert len(ledger.recent_failures) == 5
    with pytest.raises(FailedPrecondition, match="too many"):
        factor.confirm(code_at(now), secret=SECRET, ledger=ledger, now=now)


@pytest.mark.parametrize("steps", [-1, 1])
def test_one_step_of_drift_either_way_is_accepted(now: datetime, steps: int) -> None:
    factor = active_factor(now - timedelta(minutes=5))
    drifted = code_at(now + timedelta(seconds=30 * steps))
    outcome = factor.check(
        drifted,
        secret=SECRET,
        purpose=SIGN_IN,
        ledger=CodeFailureLedger(SECOND_FACTOR_LEDGER),
        now=now,
    )
    assert outcome.proof_or_raise().purpose is SIGN_IN


@pytest.mark.parametrize("steps", [-2, 2])
def test_two_steps_of_drift_are_rejected_and_counted(now: datetime, steps: int) -> None:
    factor = active_factor(now - timedelta(minutes=5))
    ledger = CodeFailureLedger(SECOND_FACTOR_LEDGER)
    drifted = code_at(now + timedelta(seconds=30 * steps))
    outcome = factor.check(drifted, secret=SECRET, purpose=SIGN_IN, ledger=ledger, now=now)
    assert isinstance(outcome.failure, InvalidArgument)
    assert outcome.failure.reason == "CODE_INVALID"
    assert ledger.recent_failures == [now]


def test_a_code_is_accepted_at_most_once_and_a_replay_counts_as_a_wrong_code(
    now: datetime,
) -> None:
    factor = active_factor(now - timedelta(minutes=5))
    ledger = CodeFailureLedger(SECOND_FACTOR_LEDGER)
    code = code_at(now)
    assert factor.check(code, secret=SECRET, purpose=SIGN_IN, ledger=ledger, now=now).accepted
    later = now + timedelta(seconds=10)
    replay = factor.check(code, secret=SECRET, purpose=SIGN_IN, ledger=ledger, now=later)
    wrong = str((int(code) + 500_000) % 1_000_000).zfill(6)
    wrong_outcome = factor.check(wrong, secret=SECRET, purpose=SIGN_IN, ledger=ledger, now=later)
    assert isinstance(replay.failure, InvalidArgument)
    assert isinstance(wrong_outcome.failure, InvalidArgument)
    assert answer(replay.failure) == answer(wrong_outcome.failure)
    assert ledger.recent_failures == [later, later]


def test_an_older_step_is_refused_after_a_newer_one(now: datetime) -> None:
    factor = active_factor(now - timedelta(minutes=5))
    ledger = CodeFailureLedger(SECOND_FACTOR_LEDGER)
    newer = code_at(now + timedelta(seconds=30))
    assert factor.check(newer, secret=SECRET, purpose=SIGN_IN, ledger=ledger, now=now).accepted
    older = factor.check(code_at(now), secret=SECRET, purpose=SIGN_IN, ledger=ledger, now=now)
    assert failure_reason(older) == "CODE_INVALID"
    newer_step = SIX_DIGITS.generator(SECRET).timecode(now + timedelta(seconds=30))
    assert factor.last_accepted_step == newer_step
    assert ledger.recent_failures == [now]


def test_factor_failures_count_in_the_second_factor_ledger_only(now: datetime) -> None:
    factor = active_factor(now)
    with pytest.raises(ValueError, match="another subject"):
        factor.check(
            code_at(now), secret=SECRET, purpose=SIGN_IN, ledger=CodeFailureLedger("acc-1"), now=now
        )
    pending = TotpFactor.start_enrollment(
        id="totp-2", account_id="acc-1", encrypted_secret=b"sealed", now=now
    )
    with pytest.raises(ValueError, match="another subject"):
        pending.confirm(
            code_at(now), secret=SECRET, ledger=CodeFailureLedger(SECOND_FACTOR_LEDGER), now=now
        )


def test_pending_and_disabled_factors_check_nothing(now: datetime) -> None:
    pending = TotpFactor.start_enrollment(
        id="totp-1", account_id="acc-1", encrypted_secret=b"sealed", now=now
    )
    disabled = active_factor(now)
    disabled.disable(now)
    assert (disabled.state, disabled.disabled_at) == (TotpState.DISABLED, now)
    for factor in (pending, disabled):
        with pytest.raises(FailedPrecondition) as caught:
            factor.check(
                code_at(now),
                secret=SECRET,
                purpose=SIGN_IN,
                ledger=CodeFailureLedger(SECOND_FACTOR_LEDGER),
                now=now,
            )
        assert caught.value.reason == "TOTP_NOT_ENABLED"


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(-1, 1)), min_size=1, max_size=15))
def test_accepted_steps_only_ever_increase(presentations: list[tuple[int, int]]) -> None:
    start = at(1_740_000_000)
    factor = active_factor(start)
    ledger = CodeFailureLedger(SECOND_FACTOR_LEDGER, policy=CodeFailurePolicy(limit=1000))
    elapsed = 0
    assert factor.last_accepted_step is not None
    accepted_steps = [factor.last_accepted_step]
    refusals: set[str] = set()
    for advance_seconds, offset in presentations:
        elapsed += advance_seconds
        now = start + timedelta(seconds=elapsed)
        code = code_at(now + timedelta(seconds=30 * offset))
        try:
            outcome = factor.check(code, secret=SECRET, purpose=SIGN_IN, ledger=ledger, now=now)
        except FailedPrecondition as refused:
            refusals.add(refused.reason)
            continue
        if outcome.failure is not None:
            refusals.add(outcome.failure.reason)
        if outcome.accepted:
            assert factor.last_accepted_step is not None
            accepted_steps.append(factor.last_accepted_step)
    assert accepted_steps == sorted(set(accepted_steps))
    # A replayed or older step is refused as a wrong code.
    assert refusals <= {"CODE_INVALID"}
