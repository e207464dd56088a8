"""What auth's SMS and e-mails say: the code and what it is for, and notices without secrets."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from services.auth.adapters.notifier import code_message, notice_message
from services.auth.domain.contacts import Email, Phone
from services.auth.domain.events import (
    Actor,
    Device,
    Origin,
    SecurityEvent,
    SecurityEventType,
)
from services.auth.domain.proofs import ChallengePurpose
from walletcore.notify import EmailMessage, SmsMessage

PHONE = Phone("+8613800138000")
EMAIL = Email("alice@example.com")
CODE = "482913"
NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
SENT_CODE_PURPOSES = [
    ChallengePurpose.REGISTRATION,
    ChallengePurpose.CONTACT_VERIFICATION,
    ChallengePurpose.CONTACT_CHANGE,
    ChallengePurpose.CREDENTIAL_RESET,
    ChallengePurpose.STEP_UP,
    ChallengePurpose.SELF_FREEZE,
]


@pytest.mark.parametrize("purpose", SENT_CODE_PURPOSES)
def test_a_code_sms_carries_the_code_its_expiry_and_a_warning(purpose: ChallengePurpose) -> None:
    message = code_message(PHONE, code=CODE, purpose=purpose, lifetime=timedelta(minutes=10))

    assert isinstance(message, SmsMessage)
    assert message.to == PHONE.e164
    assert re.findall(r"\d{6}", message.text) == [CODE]
    assert "expires in 10 minutes" in message.text
    assert "Never share it" in message.text


@pytest.mark.parametrize("purpose", SENT_CODE_PURPOSES)
def test_a_code_email_keeps_the_code_out_of_its_subject(purpose: ChallengePurpose) -> None:
    message = code_message(EMAIL, code=CODE, purpose=purpose, lifetime=timedelta(minutes=15))

    assert isinstance(message, EmailMessage)
    assert message.to == EMAIL.address
    assert CODE in message.text
    assert CODE not in message.subject
    assert "expires in 15 minutes" in message.text


def test_the_sign_up_sms_reads_as_the_product_promises() -> None:
    message = code_message(
        PHONE, code="123456", purpose=ChallengePurpose.REGISTRATION, lifetime=timedelta(minutes=10)
    )

    assert message.text.startswith(
        "Your Wallet sign-up code is 123456. It expires in 10 minutes. Never share it"
    )


@pytest.mark.parametrize(
    ("purpose", "what_it_does"),
    [
        (ChallengePurpose.CREDENTIAL_RESET, "signs out every device"),
        (ChallengePurpose.SELF_FREEZE, "freezes your account at once"),
    ],
)
def test_codes_a_stranger_could_request_say_what_they_do_and_that_they_can_be_ignored(
    purpose: ChallengePurpose, what_it_does: str
) -> None:
    message = code_message(PHONE, code=CODE, purpose=purpose, lifetime=timedelta(minutes=10))

    assert what_it_does in message.text
    assert "ignore this message" in message.text


def test_a_second_factor_purpose_is_never_sent() -> None:
    with pytest.raises(ValueError, match="never proved with a sent code"):
        code_message(
            PHONE, code=CODE, purpose=ChallengePurpose.SIGN_IN, lifetime=timedelta(minutes=5)
        )


@pytest.mark.parametrize("event_type", list(SecurityEventType))
def test_every_event_type_has_a_notice_without_codes_or_client_text(
    event_type: SecurityEventType,
) -> None:
    device = Device("phone-1", device_name="Call +15550100 to keep your money safe")
    event = SecurityEvent(
        event_type,
        "account-1",
        NOW,
        Actor.user("account-1"),
        Origin(client_address="203.0.113.77", device=device),
        details={"kind": "phone", "contact": PHONE.masked(), "remaining": "9"},
    )

    message = notice_message(EMAIL, event)

    assert isinstance(message, EmailMessage)
    assert message.subject.startswith("Wallet security notice: ")
    assert not re.search(r"(?<!\d)\d{6}(?!\d)", message.text)
    assert "+15550100" not in message.text
    assert "203.0.113.77" not in message.text


def test_a_contact_change_notice_shows_both_contacts_masked_only() -> None:
    new_phone = Phone("+8613900139000")
    event = SecurityEvent(
        SecurityEventType.CONTACT_CHANGED,
        "account-1",
        NOW,
        Actor.service("binding"),
        details={
            "kind": "phone",
            "old_contact": PHONE.masked(),
            "new_contact": new_phone.masked(),
        },
    )

    message = notice_message(PHONE, event)

    assert isinstance(message, SmsMessage)
    assert PHONE.masked() in message.text
    assert new_phone.masked() in message.text
    assert new_phone.e164 not in message.text
    assert "freeze your account" in message.text


def test_a_sign_in_notice_names_the_masked_address_and_the_time() -> None:
    event = SecurityEvent(
        SecurityEventType.SIGN_IN,
        "account-1",
        NOW,
        Actor.user("account-1"),
        Origin(client_address="203.0.113.77"),
    )

    text = notice_message(PHONE, event).text

    assert "new device" in text
    assert "2025-03-01 09:30 UTC from 203.0.113.*" in text
