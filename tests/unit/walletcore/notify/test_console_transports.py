"""The development console adapters print codes to stdout and never to the logs."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

import pytest

from walletcore.notify import (
    ConsoleEmailTransport,
    ConsoleSmsTransport,
    EmailMessage,
    SmsMessage,
    transports_from_settings,
)
from walletcore.settings import NotifierSettings

PHONE = "+8613812345678"
ADDRESS = "alice@example.test"
CODE = "482913"


async def test_the_console_sms_adapter_prints_one_marked_block_and_logs_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    await ConsoleSmsTransport().send(
        SmsMessage(to=PHONE, text=f"Your code is {CODE}"), idempotency_key="event-1"
    )

    out = capsys.readouterr().out
    assert out.count("DEVELOPMENT SMS") == 2  # the opening and closing markers
    assert f"To: {PHONE}" in out
    assert f"Your code is {CODE}" in out
    assert "Idempotency-Key: event-1" in out
    assert caplog.records == []


async def test_the_console_email_adapter_prints_one_marked_block_and_logs_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    await ConsoleEmailTransport().send(
        EmailMessage(to=ADDRESS, subject="Reset your password", text=f"Code: {CODE}"),
        idempotency_key="event-2",
    )

    out = capsys.readouterr().out
    assert out.count("DEVELOPMENT E-MAIL") == 2
    assert f"To: {ADDRESS}" in out
    assert "Subject: Reset your password" in out
    assert f"Code: {CODE}" in out
    assert caplog.records == []


async def test_default_settings_print_both_kinds_to_the_console(
    capsys: pytest.CaptureFixture[str],
) -> None:
    transports = transports_from_settings(NotifierSettings())

    await transports.sms.send(SmsMessage(to=PHONE, text="sms body"), idempotency_key="a")
    await transports.email.send(
        EmailMessage(to=ADDRESS, subject="subject", text="mail body"), idempotency_key="b"
    )
    await transports.aclose()

    out = capsys.readouterr().out
    assert "DEVELOPMENT SMS" in out
    assert "sms body" in out
    assert "DEVELOPMENT E-MAIL" in out
    assert "mail body" in out


class BlockedStream(io.StringIO):
    """stdout as a full pipe: a write waits until the reader drains it (`drained`)."""

    def __init__(self) -> None:
        super().__init__()
        self.drained = threading.Event()

    def write(self, text: str) -> int:
        self.drained.wait()
        return super().write(text)


async def test_a_stalled_console_does_not_stall_the_event_loop() -> None:
    stream = BlockedStream()
    sending = asyncio.create_task(
        ConsoleSmsTransport(stream).send(
            SmsMessage(to=PHONE, text=f"Your code is {CODE}"), idempotency_key="event-3"
        )
    )

    # Other requests keep being served while the print waits: the loop turns.
    for _ in range(20):
        await asyncio.sleep(0)
    assert not sending.done()
    stream.drained.set()
    await sending

    assert f"Your code is {CODE}" in stream.getvalue()
