"""Code failure ledgers: one per kind of code and owner, so a stranger's wrong reset codes cool
down resets only, while each scope still stops guessing past its limit."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.auth.domain.ledger import (
    CodeFailureLedger,
    purpose_ledger_subject,
    second_factor_ledger_subject,
)
from services.auth.domain.proofs import ChallengePurpose
from walletcore.errors import ResourceExhausted

SCOPED_PURPOSES = [
    purpose for purpose in ChallengePurpose if purpose is not ChallengePurpose.SIGN_IN
]


def test_subjects_differ_by_scope_and_by_owner() -> None:
    owners = ("a", "b")
    subjects = {second_factor_ledger_subject(owner) for owner in owners} | {
        purpose_ledger_subject(purpose, owner) for purpose in SCOPED_PURPOSES for owner in owners
    }
    assert len(subjects) == 2 * (len(SCOPED_PURPOSES) + 1)


def test_a_sign_in_has_no_purpose_ledger_but_the_second_factor_one() -> None:
    with pytest.raises(ValueError, match="second-factor ledger"):
        purpose_ledger_subject(ChallengePurpose.SIGN_IN, "acc-1")


def test_a_ledger_refuses_failures_of_another_scope() -> None:
    ledger = CodeFailureLedger(purpose_ledger_subject(ChallengePurpose.CREDENTIAL_RESET, "acc-1"))
    with pytest.raises(ValueError, match="another subject"):
        ledger.require_subject(second_factor_ledger_subject("acc-1"))


def test_a_full_scope_cools_down_for_the_cooling_period(now: datetime) -> None:
    ledger = CodeFailureLedger(second_factor_ledger_subject("acc-1"))
    for _ in range(ledger.policy.limit - 1):
        ledger.record_failure(now)
    ledger.ensure_open(now)

    ledger.record_failure(now)

    with pytest.raises(ResourceExhausted) as caught:
        ledger.ensure_open(now + timedelta(minutes=59))
    assert caught.value.retry_after_seconds == 60
    ledger.ensure_open(now + ledger.policy.cooling_period)
