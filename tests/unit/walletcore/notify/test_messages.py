"""Messages carry contacts and one-time codes in full; printing one must show neither."""

from __future__ import annotations

import pytest

from walletcore.errors import InvalidArgument
from walletcore.notify import EmailMessage, SmsMessage

PHONE = "+8613812345678"
ADDRESS = "alice.liddell@example.test"
CODE = "482913"


def test_an_sms_repr_masks_the_number_and_hides_the_text() -> None:
    message = SmsMessage(to=PHONE, text=f"Your wallet code is {CODE}")

    shown = [repr(message), str(message), f"{message}", f"{[message]}"]

    for text in shown:
        assert PHONE not in text
        assert "13812345" not in text
        assert CODE not in text
        assert "+*********5678" in text


def test_an_email_repr_masks_the_address_and_hides_subject_and_text() -> None:
    message = EmailMessage(to=ADDRESS, subject=f"Code {CODE}", text=f"Your code is {CODE}")

    shown = repr(message) + str(message)

    assert ADDRESS not in shown
    assert "alice.liddell" not in shown
    assert CODE not in shown
    assert "a***@example.test" in shown


@pytest.mark.parametrize("number", ["8613812345678", "+0613812345678", "+86 138 1234", "+86abc"])
def test_an_sms_needs_an_e164_number_and_the_error_does_not_repeat_it(number: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        SmsMessage(to=number, text="hello")

    assert [violation.field for violation in raised.value.violations] == ["to"]
    assert number not in str(raised.value.violations)


def test_an_email_with_a_bad_address_and_a_two_line_subject_names_both_fields() -> None:
    with pytest.raises(InvalidArgument) as raised:
        EmailMessage(to="alice@", subject="Hello\nBcc: mallory@example.test", text="hi")

    fields = sorted(violation.field for violation in raised.value.violations)
    assert fields == ["subject", "to"]
    assert "alice@" not in str(raised.value.violations)


def test_empty_texts_are_refused() -> None:
    with pytest.raises(InvalidArgument) as raised:
        EmailMessage(to=ADDRESS, subject=" ", text="")

    fields = sorted(violation.field for violation in raised.value.violations)
    assert fields == ["subject", "text"]
