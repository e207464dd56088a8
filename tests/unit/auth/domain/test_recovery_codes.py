"""Recovery codes: 10 codes of 80 bits, forgiving input, stored hashed, each usable once."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.auth.domain.ledger import (
    CodeFailureLedger,
    CodeFailurePolicy,
    second_factor_ledger_subject,
)
from services.auth.domain.proofs import ChallengePurpose, FactorMethod
from services.auth.domain.recovery import RecoveryCodeSet, normalize_recovery_code
from walletcore.crypto import SecretHasher
from walletcore.errors import InvalidArgument

SIGN_IN = ChallengePurpose.SIGN_IN
LEDGER = second_factor_ledger_subject("acc-1")
FORMAT = re.compile(r"([0-9A-HJKMNP-TV-Z]{4}-){3}[0-9A-HJKMNP-TV-Z]{4}")


def generate(hasher: SecretHasher, now: datetime) -> tuple[RecoveryCodeSet, list[str]]:
    return RecoveryCodeSet.generate(id="set-1", account_id="acc-1", hasher=hasher, now=now)


def test_ten_distinct_80_bit_codes_are_shown_once_and_stored_hashed(
    hasher: SecretHasher, now: datetime
) -> None:
    codes, shown = generate(hasher, now)
    assert len(shown) == len(set(shown)) == 10
    assert all(FORMAT.fullmatch(code) for code in shown)
    stored = " ".join(code.code_hash for code in codes.codes)
    assert not any(code.replace("-", "") in stored for code in shown)
    assert codes.remaining == 10


def test_codes_encode_the_random_bytes_in_crockford_base32(
    hasher: SecretHasher, now: datetime
) -> None:
    sources = iter([bytes([i]) * 10 for i in range(9)] + [b"\xff" * 10])
    _, shown = RecoveryCodeSet.generate(
        id="set-1", account_id="acc-1", hasher=hasher, now=now, token_bytes=lambda n: next(sources)
    )
    assert shown[0] == "0000-0000-0000-0000"
    assert shown[-1] == "ZZZZ-ZZZZ-ZZZZ-ZZZZ"


def test_a_repeating_random_source_is_refused(hasher: SecretHasher, now: datetime) -> None:
    with pytest.raises(ValueError, match="repeated"):
        RecoveryCodeSet.generate(
            id="set-1", account_id="acc-1", hasher=hasher, now=now, token_bytes=bytes
        )


@pytest.mark.parametrize(
    "typed",
    ["abcd-efgh-jkmn-pqrs", "ABCD EFGH JKMN PQRS", "ABCDEFGHJKMNPQRS", " abcd-efgh-jkmn-pqrs "],
)
def test_case_dashes_and_spaces_are_ignored(typed: str) -> None:
    assert normalize_recovery_code(typed) == "ABCDEFGHJKMNPQRS"


def test_misread_letters_read_as_the_digits_they_resemble() -> None:
    assert normalize_recovery_code("IlO0-1111-0000-1111") == "1100111100001111"


@pytest.mark.parametrize(
    "typed", ["ABCD-EFGH-JKMN-PQR", "ABCD-EFGH-JKMN-PQRSZ", "UUUU-EFGH-JKMN-PQRS", ""]
)
def test_malformed_codes_are_invalid(typed: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_recovery_code(typed, field="second_factor.recovery_code")
    assert caught.value.reason == "CODE_INVALID"
    assert [v.field for v in caught.value.violations] == ["second_factor.recovery_code"]


def test_a_code_works_once(hasher: SecretHasher, now: datetime) -> None:
    codes, shown = generate(hasher, now)
    ledger = CodeFailureLedger(LEDGER)
    proof = codes.redeem(
        shown[3].lower(), purpose=SIGN_IN, hasher=hasher, ledger=ledger, now=now
    ).proof_or_raise()
    assert (proof.account_id, proof.method, proof.purpose) == (
        "acc-1",
        FactorMethod.RECOVERY_CODE,
        SIGN_IN,
    )
    assert codes.remaining == 9
    reuse = codes.redeem(shown[3], purpose=SIGN_IN, hasher=hasher, ledger=ledger, now=now)
    wrong = codes.redeem(
        "0000-0000-0000-0000", purpose=SIGN_IN, hasher=hasher, ledger=ledger, now=now
    )
    # A reused code is answered and counted exactly as a wrong one.
    assert isinstance(reuse.failure, InvalidArgument)
    assert isinstance(wrong.failure, InvalidArgument)
    assert (reuse.failure.reason, reuse.failure.message, reuse.failure.violations) == (
        wrong.failure.reason,
        wrong.failure.message,
        wrong.failure.violations,
    )
    assert ledger.recent_failures == [now, now]
    assert codes.remaining == 9


def test_a_wrong_code_counts_in_the_second_factor_ledger(
    hasher: SecretHasher, now: datetime
) -> None:
    codes, _ = generate(hasher, now)
    ledger = CodeFailureLedger(LEDGER)
    outcome = codes.redeem(
        "0000-0000-0000-0000", purpose=SIGN_IN, hasher=hasher, ledger=ledger, now=now
    )
    assert outcome.failure is not None
    assert outcome.failure.reason == "CODE_INVALID"
    assert ledger.recent_failures == [now]
    assert codes.remaining == 10


@given(st.permutations(range(10)))
def test_every_code_works_exactly_once_in_any_order(order: list[int]) -> None:
    hasher = SecretHasher.development(context="auth.domain-tests")
    now = datetime.fromisoformat("2025-03-01T12:00:00+00:00")
    codes, shown = generate(hasher, now)
    ledger = CodeFailureLedger(LEDGER, policy=CodeFailurePolicy(limit=1000))
    for index in order:
        assert codes.redeem(
            shown[index], purpose=SIGN_IN, hasher=hasher, ledger=ledger, now=now
        ).accepted
    assert codes.remaining == 0
    for code in shown:
        outcome = codes.redeem(code, purpose=SIGN_IN, hasher=hasher, ledger=ledger, now=now)
        assert outcome.failure is not None
        assert outcome.failure.reason == "CODE_INVALID"
