"""Step-up: which methods prove which purpose, objects bound to grants, challenge lifetimes,
and grants checked for account, purpose and object."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.auth.domain.contacts import ContactKind
from services.auth.domain.proofs import ChallengePurpose, FactorMethod, VerifiedFactor
from services.auth.domain.stepup import (
    StepUpChallenge,
    StepUpGrant,
    StepUpPurpose,
    allowed_methods,
    normalize_object_id,
    require_grant,
)
from walletcore.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from walletcore.tokens import VerifiedGrant

P, E = ContactKind.PHONE, ContactKind.EMAIL
SMS, EMAIL, TOTP, RECOVERY = (
    FactorMethod.SMS,
    FactorMethod.EMAIL,
    FactorMethod.TOTP,
    FactorMethod.RECOVERY_CODE,
)


@pytest.mark.parametrize(
    ("purpose", "kinds", "totp", "expected"),
    [
        (StepUpPurpose.UNBIND_CARD, {P, E}, False, {SMS, EMAIL}),
        (StepUpPurpose.REFUND_ABOVE_THRESHOLD, {E}, False, {EMAIL}),
        # The grant for a contact change comes from the contact being replaced.
        (StepUpPurpose.CHANGE_PHONE, {P, E}, False, {SMS}),
        (StepUpPurpose.CHANGE_EMAIL, {P, E}, False, {EMAIL}),
        (StepUpPurpose.CHANGE_PHONE, {E}, False, {EMAIL}),
        (StepUpPurpose.CHANGE_EMAIL, {P}, False, {SMS}),
        (StepUpPurpose.DISABLE_TOTP, {P, E}, False, set()),
        (StepUpPurpose.REGENERATE_RECOVERY_CODES, {P}, False, set()),
        # With TOTP on, no SMS or email code is enough for anything.
        (StepUpPurpose.CHANGE_PHONE, {P, E}, True, {TOTP, RECOVERY}),
        (StepUpPurpose.UNBIND_CARD, {P}, True, {TOTP, RECOVERY}),
        (StepUpPurpose.DISABLE_TOTP, {P}, True, {TOTP, RECOVERY}),
    ],
)
def test_allowed_methods(
    purpose: StepUpPurpose, kinds: set[ContactKind], totp: bool, expected: set[FactorMethod]
) -> None:
    assert allowed_methods(purpose, contact_kinds=frozenset(kinds), totp_active=totp) == expected


def test_purposes_with_an_object_require_one() -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_object_id(StepUpPurpose.UNBIND_CARD, "")
    assert caught.value.reason == "OBJECT_REQUIRED"
    assert [v.field for v in caught.value.violations] == ["object_id"]


def test_purposes_without_an_object_refuse_one() -> None:
    with pytest.raises(InvalidArgument, match="invalid fields"):
        normalize_object_id(StepUpPurpose.DISABLE_TOTP, "card-1")
    assert normalize_object_id(StepUpPurpose.DISABLE_TOTP, "") is None


def test_new_contacts_are_bound_in_normalised_form() -> None:
    assert normalize_object_id(StepUpPurpose.CHANGE_PHONE, "+86 138 0013 8000") == "+8613800138000"
    assert normalize_object_id(StepUpPurpose.CHANGE_EMAIL, "Bo@EXAMPLE.com") == "Bo@example.com"
    with pytest.raises(InvalidArgument):
        normalize_object_id(StepUpPurpose.CHANGE_PHONE, "not a phone")


def test_object_ids_are_bounded() -> None:
    assert normalize_object_id(StepUpPurpose.UNBIND_CARD, "card-1") == "card-1"
    with pytest.raises(InvalidArgument):
        normalize_object_id(StepUpPurpose.UNBIND_CARD, "x" * 129)


def challenge(now: datetime, method: FactorMethod = SMS) -> StepUpChallenge:
    return StepUpChallenge.start(
        id="su-1",
        account_id="acc-1",
        purpose=StepUpPurpose.UNBIND_CARD,
        object_id="card-1",
        method=method,
        otp_challenge_id="otp-1" if method in (SMS, EMAIL) else None,
        now=now,
    )


def proof(now: datetime, **changes: Any) -> VerifiedFactor:
    sms_proof = VerifiedFactor(
        account_id="acc-1",
        method=SMS,
        purpose=ChallengePurpose.STEP_UP,
        verified_at=now,
        challenge_id="otp-1",
    )
    return dataclasses.replace(sms_proof, **changes)


def test_challenge_lives_as_long_as_its_code(now: datetime) -> None:
    assert challenge(now).expires_at == now + timedelta(minutes=10)
    assert challenge(now, TOTP).expires_at == now + timedelta(minutes=5)


def test_sent_code_methods_and_only_they_name_an_otp_challenge(now: datetime) -> None:
    with pytest.raises(ValueError, match="OTP challenge"):
        StepUpChallenge.start(
            id="su-1",
            account_id="acc-1",
            purpose=StepUpPurpose.UNBIND_CARD,
            object_id="card-1",
            method=TOTP,
            otp_challenge_id="otp-1",
            now=now,
        )


def test_challenge_completes_once_before_expiry(now: datetime) -> None:
    started = challenge(now)
    started.complete(proof(now), now)
    assert started.completed_at == now
    with pytest.raises(FailedPrecondition, match="no longer valid"):
        started.complete(proof(now), now)
    with pytest.raises(FailedPrecondition):
        challenge(now).complete(proof(now), now + timedelta(minutes=10))


@pytest.mark.parametrize(
    "changes",
    [
        {"account_id": "acc-2"},
        {"method": EMAIL},
        {"purpose": ChallengePurpose.CREDENTIAL_RESET},
        {"challenge_id": "otp-other"},
    ],
)
def test_challenge_needs_its_own_proof(now: datetime, changes: dict[str, Any]) -> None:
    started = challenge(now)
    with pytest.raises(ValueError, match="does not belong"):
        started.complete(proof(now, **changes), now)
    assert started.completed_at is None


def test_grants_live_at_most_five_minutes(now: datetime) -> None:
    with pytest.raises(ValueError, match="5 minutes"):
        StepUpGrant(
            "acc-1", StepUpPurpose.DISABLE_TOTP, None, TOTP, now, now + timedelta(minutes=6)
        )


GRANT = VerifiedGrant(
    jti="g-1",
    account_id="acc-1",
    purpose="UNBIND_CARD",
    object_id="card-1",
    expires_at=datetime.fromisoformat("2025-03-01T12:05:00+00:00"),
)


def test_a_verified_grant_authorises_its_own_action() -> None:
    require_grant(GRANT, account_id="acc-1", purpose=StepUpPurpose.UNBIND_CARD, object_id="card-1")


@pytest.mark.parametrize(
    ("account_id", "purpose", "object_id"),
    [
        ("acc-2", StepUpPurpose.UNBIND_CARD, "card-1"),
        ("acc-1", StepUpPurpose.REFUND_ABOVE_THRESHOLD, "card-1"),
        ("acc-1", StepUpPurpose.UNBIND_CARD, "card-2"),
    ],
)
def test_a_grant_authorises_nothing_else(
    account_id: str, purpose: StepUpPurpose, object_id: str
) -> None:
    with pytest.raises(PermissionDenied) as caught:
        require_grant(GRANT, account_id=account_id, purpose=purpose, object_id=object_id)
    assert caught.value.reason == "GRANT_INVALID"
