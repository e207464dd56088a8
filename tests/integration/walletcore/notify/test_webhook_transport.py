"""SMS through a provider's HTTP webhook, to a local HTTP server."""

from __future__ import annotations

import json
import socket

import pytest

from tests.support.notify import SmsWebhookCatcher, extract_code
from walletcore.notify import DeliveryFailed, SmsMessage, WebhookSmsTransport

PHONE = "+8613812345678"
KEY = "0b6f1c9e-5d1a-4f7e-9a53-3f0f0c2b8e11"


async def test_the_webhook_gets_exactly_to_and_text_as_json_with_the_idempotency_key(
    sms_webhook_catcher: SmsWebhookCatcher,
) -> None:
    transport = WebhookSmsTransport(sms_webhook_catcher.url, timeout=5)

    await transport.send(SmsMessage(to=PHONE, text="您的验证码 482913"), idempotency_key=KEY)
    await transport.aclose()

    sms = await sms_webhook_catcher.wait_for(to=PHONE)
    assert sms.path == "/sms"
    assert sms.headers["content-type"] == "application/json"
    assert sms.idempotency_key == KEY
    assert json.loads(sms.body) == {"to": PHONE, "text": "您的验证码 482913"}
    assert extract_code(sms.text) == "482913"


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (429, True), (400, False)])
async def test_a_refusal_says_whether_a_retry_may_succeed(
    sms_webhook_catcher: SmsWebhookCatcher, status: int, retryable: bool
) -> None:
    sms_webhook_catcher.fail_next(status=status)
    transport = WebhookSmsTransport(sms_webhook_catcher.url, timeout=5)

    with pytest.raises(DeliveryFailed) as raised:
        await transport.send(SmsMessage(to=PHONE, text="code 482913"), idempotency_key=KEY)
    await transport.aclose()

    assert raised.value.retryable is retryable
    assert PHONE not in str(raised.value)
    assert [request.status for request in sms_webhook_catcher.requests] == [status]
    assert sms_webhook_catcher.messages == []


async def test_a_provider_that_cannot_be_reached_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    transport = WebhookSmsTransport(f"http://127.0.0.1:{closed_port}/sms", timeout=5)

    with pytest.raises(DeliveryFailed) as raised:
        await transport.send(SmsMessage(to=PHONE, text="code 482913"), idempotency_key=KEY)
    await transport.aclose()

    assert raised.value.retryable
