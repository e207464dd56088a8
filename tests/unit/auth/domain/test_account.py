"""The account aggregate: freezing, credential reset, TOTP and recovery codes, contacts,
sessions and step-up, with the security events and notifications each one causes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.auth.domain.account import Account, AccountStatus
from services.auth.domain.contacts import ContactKind, Email, Phone, VerifiedContact
from services.auth.domain.events import (
    AccountSessionsRevoked,
    Actor,
    DomainEvent,
    NotificationRequested,
    Origin,
    RevokeReason,
    SecurityEvent,
    SecurityEventType,
)
from services.auth.domain.ledger import (
    CodeFailureLedger,
    purpose_ledger_subject,
    second_factor_ledger_subject,
)
from services.auth.domain.proofs import ChallengePurpose, FactorMethod, VerifiedFactor
from services.auth.domain.recovery import RecoveryCodeSet
from services.auth.domain.sessions import Session
from services.auth.domain.stepup import StepUpPurpose
from services.auth.domain.totp import TotpParameters, TotpState
from walletcore.crypto import SecretHasher
from walletcore.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from walletcore.tokens import VerifiedGrant

MakeAccount = Callable[..., Account]
OFFICER = Actor.security_officer("officer-7")
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def proof(
    now: datetime,
    purpose: ChallengePurpose,
    method: FactorMethod = FactorMethod.SMS,
    account_id: str = "acc-1",
) -> VerifiedFactor:
    return VerifiedFactor(account_id=account_id, method=method, purpose=purpose, verified_at=now)


def security_events(events: tuple[DomainEvent, ...]) -> list[SecurityEventType]:
    return [event.type for event in events if isinstance(event, SecurityEvent)]


def notified(events: tuple[DomainEvent, ...]) -> dict[SecurityEventType, tuple[object, ...]]:
    return {
        event.event.type: event.recipients
        for event in events
        if isinstance(event, NotificationRequested)
    }


def grant(purpose: StepUpPurpose, account_id: str = "acc-1") -> VerifiedGrant:
    return VerifiedGrant(
        jti="g-1",
        account_id=account_id,
        purpose=purpose.value,
        object_id=None,
        expires_at=datetime.fromisoformat("2030-01-01T00:00:00+00:00"),
    )


def with_totp(account: Account, hasher: SecretHasher, now: datetime) -> list[str]:
    """Enrols TOTP and returns the recovery codes shown to the user."""
    account.start_totp_enrollment(factor_id="totp-1", encrypted_secret=b"sealed", now=now)
    codes, shown = RecoveryCodeSet.generate(
        id="set-1", account_id=account.id, hasher=hasher, now=now
    )
    account.confirm_totp_enrollment(
        TotpParameters().generator(SECRET).at(now),
        secret=SECRET,
        recovery_codes=codes,
        ledger=CodeFailureLedger(
            purpose_ledger_subject(ChallengePurpose.TOTP_ENROLLMENT, account.id)
        ),
        origin=Origin(),
        now=now,
    ).proof_or_raise()
    return shown


# -- invariants and registration -----------------------------------------------------------


def test_an_account_has_one_to_two_contacts_of_distinct_kinds(now: datetime) -> None:
    phone = VerifiedContact("c-1", Phone.parse("+8613800138000"), now)
    other_phone = VerifiedContact("c-2", Phone.parse("+8613900139000"), now)
    with pytest.raises(ValueError, match="at least one"):
        Account(id="a", password_hash="h", contacts=[], created_at=now)
    with pytest.raises(ValueError, match="at most one"):
        Account(id="a", password_hash="h", contacts=[phone, other_phone], created_at=now)


def test_registration_records_the_creation_quietly(now: datetime, origin: Origin) -> None:
    contact = VerifiedContact("c-1", Email.parse("li@example.com"), now)
    account, events = Account.register(
        id="acc-9", password_hash="h", contact=contact, origin=origin, now=now
    )
    assert (account.status, account.contacts, account.created_at) == (
        AccountStatus.ACTIVE,
        [contact],
        now,
    )
    (event,) = events
    assert isinstance(event, SecurityEvent)
    assert (event.type, event.actor, event.origin) == (
        SecurityEventType.ACCOUNT_CREATED,
        Actor.user("acc-9"),
        origin,
    )


# -- freezing -----------------------------------------------------------------------------


def test_officer_freeze_revokes_sessions_and_notifies_every_contact(
    make_account: MakeAccount, now: datetime, origin: Origin
) -> None:
    account = make_account()
    events = account.freeze_by_officer(
        officer=OFFICER, reason=" stolen phone ", ticket_ref="SEC-42", origin=origin, now=now
    )
    assert account.is_frozen
    assert account.frozen_at == now
    record = account.freeze_history[-1]
    assert (record.frozen, record.actor, record.reason, record.ticket_ref) == (
        True,
        OFFICER,
        "stolen phone",
        "SEC-42",
    )
    assert AccountSessionsRevoked("acc-1", RevokeReason.ACCOUNT_FROZEN, now) in events
    assert security_events(events) == [SecurityEventType.ACCOUNT_FROZEN]
    assert notified(events)[SecurityEventType.ACCOUNT_FROZEN] == account.contact_values
    assert (
        account.freeze_by_officer(
            officer=OFFICER, reason="again", ticket_ref="SEC-43", origin=origin, now=now
        )
        == ()
    )


def test_only_security_officers_freeze_with_a_reason_and_ticket(
    make_account: MakeAccount, now: datetime, origin: Origin
) -> None:
    account = make_account()
    with pytest.raises(PermissionDenied):
        account.freeze_by_officer(
            officer=Actor.user("acc-1"), reason="r", ticket_ref="t", origin=origin, now=now
        )
    with pytest.raises(InvalidArgument) as caught:
        account.freeze_by_officer(
            officer=OFFICER, reason=" ", ticket_ref="", origin=origin, now=now
        )
    assert [v.field for v in caught.value.violations] == ["reason", "ticket_ref"]
    assert not account.is_frozen


def test_self_freeze_needs_only_a_sent_code(
    make_account: MakeAccount, now: datetime, origin: Origin
) -> None:
    account = make_account()
    events = account.freeze_by_self(
        proof=proof(now, ChallengePurpose.SELF_FREEZE), origin=origin, now=now
    )
    record = account.freeze_history[-1]
    assert (record.actor, record.reason, record.ticket_ref) == (Actor.user("acc-1"), "", "")
    assert AccountSessionsRevoked("acc-1", RevokeReason.ACCOUNT_FROZEN, now) in events
    assert (
        account.freeze_by_self(
            proof=proof(now, ChallengePurpose.SELF_FREEZE), origin=origin, now=now
        )
        == ()
    )


@pytest.mark.parametrize(
    "wrong",
    [
        {"purpose": ChallengePurpose.CREDENTIAL_RESET},
        {"purpose": ChallengePurpose.SELF_FREEZE, "method": FactorMethod.TOTP},
        {"purpose": ChallengePurpose.SELF_FREEZE, "account_id": "acc-2"},
    ],
)
def test_self_freeze_refuses_any_other_proof(
    make_account: MakeAccount, now: datetime, origin: Origin, wrong: dict[str, Any]
) -> None:
    account = make_account()
    wrong_proof = dataclasses.replace(proof(now, ChallengePurpose.SELF_FREEZE), **wrong)
    with pytest.raises(ValueError, match="SELF_FREEZE"):
        account.freeze_by_self(proof=wrong_proof, origin=origin, now=now)
    assert not account.is_frozen


def test_unfreezing_is_a_security_officers_act_alone(
    make_account: MakeAccount, now: datetime, origin: Origin
) -> None:
    account = make_account()
    account.freeze_by_self(proof=proof(now, ChallengePurpose.SELF_FREEZE), origin=origin, now=now)
    with pytest.raises(PermissionDenied):
        account.unfreeze(
            officer=Actor.user("acc-1"), reason="mine", ticket_ref="-", origin=origin, now=now
        )
    later = now + timedelta(days=1)
    events = account.unfreeze(
        officer=OFFICER, reason="owner verified", ticket_ref="SEC-9", origin=origin, now=later
    )
    assert account.status is AccountStatus.ACTIVE
    assert account.frozen_at is None
    assert [record.frozen for record in account.freeze_history] == [True, False]
    assert SecurityEventType.ACCOUNT_UNFROZEN in notified(events)
    assert (
        account.unfreeze(
            officer=OFFICER, reason="again", ticket_ref="SEC-9", origin=origin, now=later
        )
        == ()
    )


def test_a_frozen_account_cannot_sign_in_reset_or_step_up(
    make_account: MakeAccount, hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    account = make_account()
    step_up = account.start_step_up(
        challenge_id="su-1",
        purpose=StepUpPurpose.UNBIND_CARD,
        object_id="card-1",
        method=FactorMethod.SMS,
        otp_challenge_id="otp-1",
        now=now,
    )
    account.freeze_by_officer(officer=OFFICER, reason="r", ticket_ref="t", origin=origin, now=now)
    attempts: list[Callable[[], object]] = [
        lambda: account.record_sign_in(
            session_id="s", second_factor=None, new_device=False, origin=origin, now=now
        ),
        lambda: account.complete_credential_reset(
            code_proof=proof(now, ChallengePurpose.CREDENTIAL_RESET),
            second_factor=None,
            new_password_hash="new",
            origin=origin,
            now=now,
        ),
        lambda: account.start_step_up(
            challenge_id="su-2",
            purpose=StepUpPurpose.UNBIND_CARD,
            object_id="card-1",
            method=FactorMethod.SMS,
            otp_challenge_id="otp-2",
            now=now,
        ),
        lambda: account.complete_step_up(
            step_up, proof=proof(now, ChallengePurpose.STEP_UP), origin=origin, now=now
        ),
    ]
    for attempt in attempts:
        with pytest.raises(FailedPrecondition) as caught:
            attempt()
        assert caught.value.reason == "ACCOUNT_FROZEN"
    assert account.password_hash == "$argon2id$x"


# -- credential reset and sign-in ---------------------------------------------------------


def test_reset_revokes_every_session_and_notifies_every_contact(
    make_account: MakeAccount, now: datetime, origin: Origin
) -> None:
    account = make_account()
    events = account.complete_credential_reset(
        code_proof=proof(now, ChallengePurpose.CREDENTIAL_RESET, FactorMethod.EMAIL),
        second_factor=None,
        new_password_hash="new-hash",
        origin=origin,
        now=now,
    )
    assert (account.password_hash, account.password_changed_at) == ("new-hash", now)
    assert AccountSessionsRevoked("acc-1", RevokeReason.CREDENTIAL_RESET, now) in events
    assert notified(events)[SecurityEventType.CREDENTIAL_RESET] == account.contact_values


def test_reset_does_not_bypass_totp(
    make_account: MakeAccount, hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    account = make_account()
    with_totp(account, hasher, now)
    code_proof = proof(now, ChallengePurpose.CREDENTIAL_RESET)
    with pytest.raises(FailedPrecondition) as caught:
        account.complete_credential_reset(
            code_proof=code_proof,
            second_factor=None,
            new_password_hash="new",
            origin=origin,
            now=now,
        )
    assert caught.value.reason == "SECOND_FACTOR_REQUIRED"
    with pytest.raises(ValueError, match="CREDENTIAL_RESET"):
        account.complete_credential_reset(
            code_proof=code_proof,
            second_factor=proof(now, ChallengePurpose.SIGN_IN, FactorMethod.TOTP),
            new_password_hash="new",
            origin=origin,
            now=now,
        )
    assert account.password_hash == "$argon2id$x"
    account.complete_credential_reset(
        code_proof=code_proof,
        second_factor=proof(now, ChallengePurpose.CREDENTIAL_RESET, FactorMethod.RECOVERY_CODE),
        new_password_hash="new",
        origin=origin,
        now=now,
    )
    assert account.password_hash == "new"


@pytest.mark.parametrize(("new_device", "notifies"), [(True, True), (False, False)])
def test_sign_in_is_notified_only_from_a_new_device(
    make_account: MakeAccount, now: datetime, origin: Origin, new_device: bool, notifies: bool
) -> None:
    events = make_account().record_sign_in(
        session_id="s-1",
        second_factor=FactorMethod.TOTP,
        new_device=new_device,
        origin=origin,
        now=now,
    )
    event = events[0]
    assert isinstance(event, SecurityEvent)
    assert event.details == {"session_id": "s-1", "method": "TOTP"}
    assert (SecurityEventType.SIGN_IN in notified(events)) is notifies


def test_a_lock_is_recorded_and_notified(
    make_account: MakeAccount, now: datetime, origin: Origin
) -> None:
    account = make_account()
    assert notified(account.record_failed_sign_in(locked=False, origin=origin, now=now)) == {}
    events = account.record_failed_sign_in(locked=True, origin=origin, now=now)
    assert security_events(events) == [
        SecurityEventType.SIGN_IN_FAILED,
        SecurityEventType.SIGN_IN_LOCKED,
    ]
    assert list(notified(events)) == [SecurityEventType.SIGN_IN_LOCKED]


# -- TOTP and recovery codes --------------------------------------------------------------


def test_enrolment_enables_totp_with_recovery_codes(
    make_account: MakeAccount, hasher: SecretHasher, now: datetime
) -> None:
    account = make_account()
    with pytest.raises(NotFound):
        account.confirm_totp_enrollment(
            "123456",
            secret=SECRET,
            recovery_codes=RecoveryCodeSet("set-0", "acc-1", now),
            ledger=CodeFailureLedger(
                purpose_ledger_subject(ChallengePurpose.TOTP_ENROLLMENT, "acc-1")
            ),
            origin=Origin(),
            now=now,
        )
    with_totp(account, hasher, now)
    assert account.totp_active
    assert account.recovery_codes is not None
    assert account.recovery_codes.remaining == 10
    with pytest.raises(FailedPrecondition) as caught:
        account.start_totp_enrollment(factor_id="totp-2", encrypted_secret=b"x", now=now)
    assert caught.value.reason == "TOTP_ALREADY_ENABLED"


def test_a_wrong_enrolment_code_installs_nothing(
    make_account: MakeAccount, hasher: SecretHasher, now: datetime
) -> None:
    account = make_account()
    account.start_totp_enrollment(factor_id="totp-1", encrypted_secret=b"sealed", now=now)
    codes, _ = RecoveryCodeSet.generate(id="set-1", account_id="acc-1", hasher=hasher, now=now)
    right = int(TotpParameters().generator(SECRET).at(now))
    outcome = account.confirm_totp_enrollment(
        f"{(right + 500_000) % 1_000_000:06d}",
        secret=SECRET,
        recovery_codes=codes,
        ledger=CodeFailureLedger(purpose_ledger_subject(ChallengePurpose.TOTP_ENROLLMENT, "acc-1")),
        origin=Origin(),
        now=now,
    )
    assert not outcome.accepted
    assert outcome.events == ()
    assert account.recovery_codes is None
    assert not account.totp_active


def test_using_a_recovery_code_is_notified_with_the_count_left(
    make_account: MakeAccount, hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    account = make_account()
    shown = with_totp(account, hasher, now)
    outcome = account.redeem_recovery_code(
        shown[0],
        purpose=ChallengePurpose.SIGN_IN,
        hasher=hasher,
        ledger=CodeFailureLedger(second_factor_ledger_subject("acc-1")),
        origin=origin,
        now=now,
    )
    assert outcome.proof_or_raise().method is FactorMethod.RECOVERY_CODE
    event = outcome.events[0]
    assert isinstance(event, SecurityEvent)
    assert event.type is SecurityEventType.RECOVERY_CODE_USED
    assert event.details["remaining"] == "9"
    assert SecurityEventType.RECOVERY_CODE_USED in notified(outcome.events)


def test_disabling_totp_needs_its_grant_and_deletes_recovery_codes(
    make_account: MakeAccount, hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    account = make_account()
    with_totp(account, hasher, now)
    for wrong in (
        grant(StepUpPurpose.REGENERATE_RECOVERY_CODES),
        grant(StepUpPurpose.DISABLE_TOTP, "acc-2"),
    ):
        with pytest.raises(PermissionDenied):
            account.disable_totp(grant=wrong, origin=origin, now=now)
    events = account.disable_totp(grant=grant(StepUpPurpose.DISABLE_TOTP), origin=origin, now=now)
    assert account.totp is not None
    assert account.totp.state is TotpState.DISABLED
    assert account.recovery_codes is None
    assert SecurityEventType.TOTP_DISABLED in notified(events)


def test_regenerating_replaces_every_recovery_code(
    make_account: MakeAccount, hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    account = make_account()
    old_codes = with_totp(account, hasher, now)
    new_set, new_codes = RecoveryCodeSet.generate(
        id="set-2", account_id="acc-1", hasher=hasher, now=now
    )
    with pytest.raises(PermissionDenied):
        account.regenerate_recovery_codes(
            grant=grant(StepUpPurpose.DISABLE_TOTP), new_codes=new_set, origin=origin, now=now
        )
    events = account.regenerate_recovery_codes(
        grant=grant(StepUpPurpose.REGENERATE_RECOVERY_CODES),
        new_codes=new_set,
        origin=origin,
        now=now,
    )
    assert SecurityEventType.RECOVERY_CODES_REGENERATED in notified(events)
    ledger = CodeFailureLedger(second_factor_ledger_subject("acc-1"))

    def redeem(code: str) -> bool:
        return account.redeem_recovery_code(
            code,
            purpose=ChallengePurpose.SIGN_IN,
            hasher=hasher,
            ledger=ledger,
            origin=origin,
            now=now,
        ).accepted

    assert not redeem(old_codes[0])
    assert redeem(new_codes[0])


# -- contacts -----------------------------------------------------------------------------


def test_adding_the_missing_contact_kind_notifies_both(
    make_account: MakeAccount, now: datetime, origin: Origin
) -> None:
    account = make_account(with_email=False)
    email = VerifiedContact("c-email", Email.parse("li@example.com"), now)
    events = account.add_contact(
        email,
        proof=proof(now, ChallengePurpose.CONTACT_VERIFICATION, FactorMethod.EMAIL),
        origin=origin,
        now=now,
    )
    assert account.contact_of_kind(ContactKind.EMAIL) == email
    assert len(notified(events)[SecurityEventType.CONTACT_ADDED]) == 2
    with pytest.raises(FailedPrecondition) as caught:
        account.add_contact(
            email, proof=proof(now, ChallengePurpose.CONTACT_VERIFICATION), origin=origin, now=now
        )
    assert caught.value.reason == "CONTACT_KIND_ALREADY_VERIFIED"


def test_replacing_a_contact_notifies_the_old_one_too_and_logs_only_masks(
    make_account: MakeAccount, now: datetime, origin: Origin
) -> None:
    account = make_account()
    old_phone = account.contact_values[0]
    new_phone = VerifiedContact("c-new", Phone.parse("+8613900139000"), now)
    events = account.replace_contact(
        new_phone, actor=Actor.service("binding"), origin=origin, now=now
    )
    assert account.contact_of_kind(ContactKind.PHONE) == new_phone
    recipients = notified(events)[SecurityEventType.CONTACT_CHANGED]
    assert set(recipients) == {new_phone.value, account.contact_values[1], old_phone}
    event = events[0]
    assert isinstance(event, SecurityEvent)
    assert event.details["old_contact"] == "+86 *** **** 8000"
    assert "+8613900139000" not in str(event.details)


# -- sessions and step-up -----------------------------------------------------------------


def test_sign_out_and_revocation_are_recorded_once(
    make_account: MakeAccount, hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    account = make_account()
    session, _ = Session.start(
        id="s-1",
        account_id="acc-1",
        origin=origin,
        first_token_id="rt",
        first_token="tok",
        hasher=hasher,
        now=now,
    )
    events = account.revoke_session(
        session, reason=RevokeReason.REVOKED_BY_OFFICER, actor=OFFICER, origin=origin, now=now
    )
    assert security_events(events) == [SecurityEventType.SESSION_REVOKED]
    assert (
        account.revoke_session(
            session, reason=RevokeReason.SIGN_OUT, actor=Actor.user("acc-1"), origin=origin, now=now
        )
        == ()
    )


def test_a_frozen_account_cannot_refresh(
    make_account: MakeAccount, hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    account = make_account()
    session, token = Session.start(
        id="s-1",
        account_id="acc-1",
        origin=origin,
        first_token_id="rt",
        first_token="tok",
        hasher=hasher,
        now=now,
    )
    account.freeze_by_self(proof=proof(now, ChallengePurpose.SELF_FREEZE), origin=origin, now=now)
    with pytest.raises(FailedPrecondition, match="frozen"):
        account.refresh_session(
            session,
            token,
            new_token_id="rt2",
            new_token="t2",
            hasher=hasher,
            origin=origin,
            now=now,
        )


def test_step_up_issues_a_five_minute_grant_for_its_purpose_and_object(
    make_account: MakeAccount, now: datetime, origin: Origin
) -> None:
    account = make_account()
    with pytest.raises(FailedPrecondition) as caught:
        account.start_step_up(
            challenge_id="su-1",
            purpose=StepUpPurpose.CHANGE_PHONE,
            object_id="+8613900139000",
            method=FactorMethod.EMAIL,
            otp_challenge_id="otp-1",
            now=now,
        )
    assert caught.value.reason == "STEP_UP_METHOD_UNAVAILABLE"
    challenge = account.start_step_up(
        challenge_id="su-1",
        purpose=StepUpPurpose.CHANGE_PHONE,
        object_id="+8613900139000",
        method=FactorMethod.SMS,
        otp_challenge_id="otp-1",
        now=now,
    )
    code_proof = VerifiedFactor(
        account_id="acc-1",
        method=FactorMethod.SMS,
        purpose=ChallengePurpose.STEP_UP,
        verified_at=now,
        challenge_id="otp-1",
    )
    granted, events = account.complete_step_up(challenge, proof=code_proof, origin=origin, now=now)
    assert (granted.purpose, granted.object_id, granted.account_id) == (
        StepUpPurpose.CHANGE_PHONE,
        "+8613900139000",
        "acc-1",
    )
    assert granted.expires_at - granted.issued_at == timedelta(minutes=5)
    assert security_events(events) == [SecurityEventType.STEP_UP_GRANTED]


def test_security_event_details_refuse_secrets(now: datetime) -> None:
    with pytest.raises(ValueError, match="secrets"):
        SecurityEvent(
            SecurityEventType.SIGN_IN, "acc-1", now, Actor.user("acc-1"), details={"code": "123456"}
        )
