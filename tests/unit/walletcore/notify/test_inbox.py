"""The development inbox: `make run` also appends every SMS and e-mail to a JSON-lines file,
and `make demo` (and a developer's script) reads the codes back from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import HttpUrl

from walletcore.notify import (
    DevelopmentInbox,
    EmailMessage,
    SmsMessage,
    one_time_code,
    transports_from_settings,
)
from walletcore.notify.inbox import InboxTimeout
from walletcore.settings import NotifierSettings

PHONE = "+8613812345678"
ADDRESS = "alice@example.test"


async def test_both_channels_reach_the_inbox_and_the_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "var" / "inbox.jsonl"
    transports = transports_from_settings(NotifierSettings(inbox_path=path))

    await transports.sms.send(SmsMessage(to=PHONE, text="Code 482913"), idempotency_key="a")
    await transports.email.send(
        EmailMessage(to=ADDRESS, subject="Reset", text="Code 112233"), idempotency_key="b"
    )
    await transports.aclose()

    sms, mail = DevelopmentInbox(path).messages()
    assert (sms.channel, sms.to, sms.body, sms.idempotency_key) == (
        "sms",
        PHONE,
        "Code 482913",
        "a",
    )
    assert (mail.channel, mail.to, mail.subject, mail.body) == (
        "email",
        ADDRESS,
        "Reset",
        "Code 112233",
    )
    assert sms.time.tzinfo is not None
    printed = capsys.readouterr().out
    assert "Code 482913" in printed
    assert "Code 112233" in printed
    assert path.stat().st_mode & 0o077 == 0, "other users must not read the codes"


async def test_without_the_setting_nothing_is_written(tmp_path: Path) -> None:
    transports = transports_from_settings(NotifierSettings())

    await transports.sms.send(SmsMessage(to=PHONE, text="Code 482913"), idempotency_key="a")

    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 (a test's own tmp_path)


def record(to: str, body: str) -> str:
    fields = {
        "time": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
        "channel": "sms",
        "to": to,
        "subject": "",
        "body": body,
        "idempotency_key": "k",
    }
    return json.dumps(fields) + "\n"


def test_the_reader_gives_the_newest_message_to_an_address_after_a_mark(tmp_path: Path) -> None:
    inbox = DevelopmentInbox(tmp_path / "inbox.jsonl")
    assert inbox.mark() == 0
    inbox.path.write_text(record(PHONE, "old 111111") + record("+8613900000000", "other 222222"))
    mark = inbox.mark()
    with inbox.path.open("a") as file:
        file.write(record(PHONE, "first 333333") + record(PHONE, "second 444444"))

    assert mark == 2
    latest = inbox.latest_to(PHONE)
    assert latest is not None
    assert latest.body == "second 444444"
    assert inbox.latest_to(ADDRESS) is None
    assert inbox.wait_for(PHONE, after=mark).body == "second 444444"
    assert inbox.latest_to("+8613900000000", after=mark) is None


def test_a_line_still_being_written_is_not_read(tmp_path: Path) -> None:
    inbox = DevelopmentInbox(tmp_path / "inbox.jsonl")
    inbox.path.write_text(record(PHONE, "done 111111") + record(PHONE, "half 222222")[:30])

    assert [message.body for message in inbox.messages()] == ["done 111111"]


def test_waiting_for_a_message_that_never_comes_fails_with_the_inbox_named(
    tmp_path: Path,
) -> None:
    inbox = DevelopmentInbox(tmp_path / "inbox.jsonl")

    with pytest.raises(InboxTimeout, match=r"inbox\.jsonl"):
        inbox.wait_for(PHONE, timeout=0)


def test_a_code_is_six_digits_between_word_boundaries() -> None:
    assert one_time_code("Your code is 482913. It expires in 10 minutes.") == "482913"
    with pytest.raises(ValueError, match="found 0"):
        one_time_code("key 053311ae, no code")
    with pytest.raises(ValueError, match="found 2"):
        one_time_code("111111 or 222222")


def test_a_message_repr_shows_neither_the_contact_nor_the_body(tmp_path: Path) -> None:
    inbox = DevelopmentInbox(tmp_path / "inbox.jsonl")
    inbox.path.write_text(record(PHONE, "Code 482913"))

    shown = repr(inbox.messages()[0])

    assert PHONE not in shown
    assert "482913" not in shown


def test_production_refuses_the_inbox(tmp_path: Path) -> None:
    settings = NotifierSettings(
        email_adapter="smtp",
        smtp_host="smtp.example.test",
        sms_adapter="webhook",
        sms_webhook_url=HttpUrl("https://sms.example.test/v1"),
        inbox_path=tmp_path / "inbox.jsonl",
    )

    assert settings.production_problems("AUTH_NOTIFIER") == [
        "AUTH_NOTIFIER__INBOX_PATH must be unset (the inbox holds codes)"
    ]


def test_an_empty_inbox_path_means_no_inbox() -> None:
    assert NotifierSettings.model_validate({"inbox_path": ""}).inbox_path is None
