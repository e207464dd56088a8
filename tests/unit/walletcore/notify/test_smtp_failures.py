"""What an SMTP failure tells the operator: the transport's reason, never a mailbox."""

from __future__ import annotations

import traceback
from typing import Any

import aiosmtplib
import pytest

from walletcore.notify import DeliveryFailed, EmailMessage, SmtpEmailTransport

ADDRESS = "alice@example.test"


@pytest.mark.parametrize(
    "error",
    [
        aiosmtplib.SMTPServerDisconnected(f"Connection lost while sending to <{ADDRESS}>"),
        aiosmtplib.SMTPException(f"could not deliver to {ADDRESS} today"),
        ConnectionResetError(f"reset by peer ({ADDRESS})"),
    ],
    ids=["angle-brackets", "bare-address", "os-error"],
)
async def test_a_transport_error_keeps_its_reason_and_loses_any_address(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    async def failing_send(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(aiosmtplib, "send", failing_send)
    transport = SmtpEmailTransport(
        host="127.0.0.1", port=2525, sender="Wallet <no-reply@wallet.invalid>", starttls=False
    )

    with pytest.raises(DeliveryFailed) as raised:
        await transport.send(
            EmailMessage(to=ADDRESS, subject="Reset", text="code 731904"), idempotency_key="e-1"
        )

    printed = "".join(traceback.format_exception(raised.value))
    assert raised.value.retryable
    assert type(error).__name__ in str(raised.value)
    assert str(error).split()[0] in str(raised.value)
    assert "alice" not in printed
    assert "example.test" not in printed
