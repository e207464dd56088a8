"""The contact-change workflow: who may complete a change, what closes it, what KYC gates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.binding.domain.contact_changes import (
    AbandonReason,
    Assistance,
    ChangeState,
    ContactChange,
    ContactKind,
    parse_assistance,
)
from walletcore.errors import DomainError, FailedPrecondition, InvalidArgument

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=5)


def user_change() -> ContactChange:
    return ContactChange.start_by_user(
        id="chg-1",
        account_id="acc-1",
        kind=ContactKind.PHONE,
        verification_id="ver-1",
        now=NOW,
        expires_at=EXPIRES,
    )


def assisted_change(*, kyc_approved: bool = True) -> ContactChange:
    return ContactChange.start_assisted(
        id="chg-2",
        account_id="acc-1",
        kind=ContactKind.EMAIL,
        verification_id="ver-2",
        now=NOW,
        expires_at=EXPIRES,
        assistance=Assistance("officer-1", "TICKET-1"),
        kyc_approved=kyc_approved,
    )


def test_a_user_change_is_completed_by_its_account_only() -> None:
    change = user_change()

    assert change.visible_to_user("acc-1")
    assert not change.visible_to_user("acc-2")


def test_an_assisted_change_is_not_the_users_to_complete() -> None:
    change = assisted_change()

    assert change.is_assisted
    assert not change.visible_to_user("acc-1")


def test_an_assisted_change_needs_approved_kyc() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        assisted_change(kyc_approved=False)

    assert caught.value.reason == "KYC_NOT_APPROVED"


def test_an_open_change_before_expiry_may_complete() -> None:
    change = user_change()

    assert change.require_open(EXPIRES - timedelta(seconds=1)) is None

    change.complete(EXPIRES - timedelta(seconds=1))
    assert (change.state, change.closed_at) == (
        ChangeState.COMPLETED,
        EXPIRES - timedelta(seconds=1),
    )


def test_an_expired_change_is_due_for_abandoning() -> None:
    assert user_change().require_open(EXPIRES) is AbandonReason.CODE_EXPIRED


@pytest.mark.parametrize(
    ("reason", "answer"),
    [
        (AbandonReason.CODE_EXPIRED, "CODE_EXPIRED"),
        (AbandonReason.TOO_MANY_ATTEMPTS, "TOO_MANY_ATTEMPTS"),
        (AbandonReason.CONTACT_IN_USE, "CONTACT_IN_USE"),
        (AbandonReason.VERIFICATION_LOST, "CHANGE_NOT_FOUND"),
    ],
)
def test_an_abandoned_change_keeps_answering_what_closed_it(
    reason: AbandonReason, answer: str
) -> None:
    change = user_change()
    change.abandon(reason, NOW)

    for _ in range(2):
        with pytest.raises(DomainError) as caught:
            change.require_open(NOW)
        assert caught.value.reason == answer


def test_a_completed_change_is_no_longer_in_progress() -> None:
    change = user_change()
    change.complete(NOW)

    with pytest.raises(DomainError) as caught:
        change.require_open(NOW)

    assert caught.value.reason == "CHANGE_NOT_FOUND"


def test_a_closed_change_cannot_change_state_again() -> None:
    change = user_change()
    change.complete(NOW)

    with pytest.raises(ValueError, match="COMPLETED"):
        change.abandon(AbandonReason.CODE_EXPIRED, NOW)


def test_assistance_needs_a_reason_and_a_ticket() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_assistance("officer-1", reason=" ", ticket_ref="T" * 65)

    assert caught.value.violations[0].field == "reason"
    with pytest.raises(InvalidArgument) as caught:
        parse_assistance("officer-1", reason="identity checked by video", ticket_ref="T" * 65)
    assert caught.value.violations[0].field == "ticket_ref"

    assistance, reason = parse_assistance(
        "officer-1", reason=" identity checked by video ", ticket_ref="T-1"
    )
    assert (assistance, reason) == (Assistance("officer-1", "T-1"), "identity checked by video")
