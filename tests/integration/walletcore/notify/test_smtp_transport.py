"""E-mail over real SMTP, to a local aiosmtpd server."""

from __future__ import annotations

import socket
import traceback
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from tests.support.notify import SmtpCatcher, extract_code
from walletcore.notify import DeliveryFailed, EmailMessage, SmtpEmailTransport

ADDRESS = "alice@example.test"
SENT_AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
KEY = "0b6f1c9e-5d1a-4f7e-9a53-3f0f0c2b8e11"


def smtp_transport(port: int) -> SmtpEmailTransport:
    return SmtpEmailTransport(
        host="127.0.0.1",
        port=port,
        sender="Wallet Security <no-reply@wallet.invalid>",
        starttls=False,
        clock=lambda: SENT_AT,
    )


def reset_mail(code: str = "482913") -> EmailMessage:
    return EmailMessage(
        to=ADDRESS,
        subject="Réinitialiser votre mot de passe",
        text=f"Votre code : {code}\n您的验证码 {code}, valable 60 minutes.",
    )


async def send_refused(transport: SmtpEmailTransport) -> DeliveryFailed:
    with pytest.raises(DeliveryFailed) as raised:
        await transport.send(reset_mail(), idempotency_key=KEY)
    printed = "".join(traceback.format_exception(raised.value))
    assert ADDRESS not in printed
    assert "482913" not in printed
    return raised.value


async def test_an_email_arrives_as_utf8_plain_text_with_its_headers(
    smtp_catcher: SmtpCatcher,
) -> None:
    await smtp_transport(smtp_catcher.port).send(reset_mail("093715"), idempotency_key=KEY)

    mail = await smtp_catcher.wait_for(to=ADDRESS)
    assert mail.envelope_from == "no-reply@wallet.invalid"
    assert mail.message["From"] == "Wallet Security <no-reply@wallet.invalid>"
    assert mail.message["To"] == ADDRESS
    assert mail.subject == "Réinitialiser votre mot de passe"
    assert parsedate_to_datetime(mail.message["Date"]) == SENT_AT
    assert mail.message["Message-ID"] == f"<{KEY}@wallet.invalid>"
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message.get_content_charset() == "utf-8"
    assert mail.text == "Votre code : 093715\n您的验证码 093715, valable 60 minutes.\n"
    assert extract_code(mail.text) == "093715"


async def test_a_redelivery_carries_the_same_message_id(smtp_catcher: SmtpCatcher) -> None:
    transport = smtp_transport(smtp_catcher.port)

    await transport.send(reset_mail(), idempotency_key=KEY)
    await transport.send(reset_mail(), idempotency_key=KEY)

    ids = [mail.message["Message-ID"] for mail in smtp_catcher.messages]
    assert ids == [f"<{KEY}@wallet.invalid>"] * 2


async def test_a_4xx_reply_is_retryable(smtp_catcher: SmtpCatcher) -> None:
    smtp_catcher.fail_next(reply="451 4.7.1 Greylisted, try again later")

    failure = await send_refused(smtp_transport(smtp_catcher.port))

    assert failure.retryable
    assert "451" in str(failure)
    assert smtp_catcher.messages == []


async def test_a_5xx_reply_is_permanent(smtp_catcher: SmtpCatcher) -> None:
    smtp_catcher.fail_next(reply="550 5.1.1 No such mailbox here")

    failure = await send_refused(smtp_transport(smtp_catcher.port))

    assert not failure.retryable
    assert "550" in str(failure)


async def test_a_server_that_cannot_be_reached_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    failure = await send_refused(smtp_transport(closed_port))

    assert failure.retryable


async def test_starttls_to_a_plain_mail_catcher_fails_retryably_saying_why(
    smtp_catcher: SmtpCatcher,
) -> None:
    transport = SmtpEmailTransport(
        host="127.0.0.1", port=smtp_catcher.port, sender="Wallet <no-reply@wallet.invalid>"
    )

    failure = await send_refused(transport)

    assert failure.retryable
    assert "STARTTLS extension not supported" in str(failure)
    assert smtp_catcher.messages == []
