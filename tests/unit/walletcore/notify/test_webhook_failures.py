"""How the SMS webhook transport reads its provider's answers, on an in-memory HTTP transport."""

from __future__ import annotations

import traceback
from collections.abc import Callable

import httpx
import pytest

from walletcore.notify import DeliveryFailed, SmsMessage, WebhookSmsTransport

URL = "https://sms.example.test/send?token=provider-secret"
PHONE = "+8613812345678"
MESSAGE = SmsMessage(to=PHONE, text="Your code is 482913")


def transport(answer: Callable[[httpx.Request], httpx.Response]) -> WebhookSmsTransport:
    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return WebhookSmsTransport(URL, timeout=1.0, client=client)


async def send(answer: Callable[[httpx.Request], httpx.Response]) -> DeliveryFailed:
    with pytest.raises(DeliveryFailed) as raised:
        await transport(answer).send(MESSAGE, idempotency_key="event-1")
    printed = "".join(traceback.format_exception(raised.value))
    for secret in (PHONE, "482913", "provider-secret"):
        assert secret not in printed
    return raised.value


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_any_2xx_is_delivered(status: int) -> None:
    await transport(lambda request: httpx.Response(status)).send(MESSAGE, idempotency_key="k")


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408, 302])
async def test_server_errors_throttling_and_redirects_are_retryable(status: int) -> None:
    failure = await send(lambda request: httpx.Response(status))

    assert failure.retryable
    assert str(status) in str(failure)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_client_errors_are_permanent(status: int) -> None:
    failure = await send(lambda request: httpx.Response(status))

    assert not failure.retryable


@pytest.mark.parametrize(
    "error",
    [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ConnectError, httpx.RemoteProtocolError],
)
async def test_timeouts_and_connection_errors_are_retryable(error: type[httpx.HTTPError]) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error(f"failed to reach {request.url}")

    failure = await send(fail)

    assert failure.retryable


async def test_a_client_passed_in_stays_open_for_its_owner() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200)))

    await WebhookSmsTransport(URL, timeout=1.0, client=client).aclose()

    assert not client.is_closed
    await client.aclose()
