"""Real local peers for notification tests: an SMTP server and an SMS provider's webhook.

Both listen on 127.0.0.1 on an ephemeral port (or a fixed one of the test's range, so a new
catcher can take over a stopped one's address), record what they accept, can be told to refuse
the next few messages, and let a test await the next message for a destination:

    async def test_reset_sends_a_code(smtp_catcher: SmtpCatcher) -> None:
        ...
        mail = await smtp_catcher.wait_for(to="alice@example.test")
        code = extract_code(mail.text)

To use the fixtures in a test folder, import them in that folder's conftest.py (pytest only
honours `pytest_plugins` in the root conftest):

    from tests.support.notify import sms_webhook_catcher, smtp_catcher  # noqa: F401

`notifier_settings(smtp_catcher, sms_webhook_catcher)` gives `NotifierSettings` that point a
service at both.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import json
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from walletcore.notify.inbox import one_time_code
from walletcore.settings import NotifierSettings

DEFAULT_WAIT_SECONDS = 20.0
"""How long a test waits for a message that must arrive: a bound, never a pause (a message
that is there returns at once). On a 2-core machine under load, delivery by a service running
as its own process once took over 5 s."""

_T = TypeVar("_T")


def extract_code(text: str) -> str:
    """The one 6-digit code in a message; fails the test when there is none or several."""
    try:
        return one_time_code(text)
    except ValueError as error:
        raise AssertionError(str(error)) from None


class _Inbox(Generic[_T]):
    """Messages recorded by a server thread and awaited from the test's event loop.

    A message is recorded before the server answers, so it is visible as soon as the sender's
    call returns; `wait_for` hands each message out once.
    """

    def __init__(self, destination: Callable[[_T], list[str]]) -> None:
        self._destination = destination
        self._lock = threading.Lock()
        self._items: list[_T] = []
        self._taken: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrival: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._arrival = asyncio.Event()

    def record(self, item: _T) -> None:
        """Called from the server thread."""
        with self._lock:
            self._items.append(item)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake_waiters)

    @property
    def items(self) -> list[_T]:
        with self._lock:
            return list(self._items)

    async def wait_for(self, to: str, timeout: float) -> _T:  # noqa: ASYNC109 (as the callers')
        try:
            async with asyncio.timeout(timeout):
                while True:
                    # Taken before looking, so an arrival during the look still wakes us.
                    arrival = self._current_arrival()
                    if (item := self._take(to)) is not None:
                        return item
                    await arrival.wait()
        except TimeoutError:
            raise AssertionError(f"nothing arrived for {to} within {timeout} s") from None

    def _current_arrival(self) -> asyncio.Event:
        if self._arrival is None:
            raise RuntimeError("the catcher is not started: use `async with`")
        return self._arrival

    def _take(self, to: str) -> _T | None:
        with self._lock:
            for index, item in enumerate(self._items):
                if index not in self._taken and to in self._destination(item):
                    self._taken.add(index)
                    return item
        return None

    def _wake_waiters(self) -> None:
        arrived, self._arrival = self._current_arrival(), asyncio.Event()
        arrived.set()


class _Failures:
    """Answers to give instead of accepting, for the next N messages (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[Any] = []

    def queue(self, answer: Any, count: int) -> None:
        with self._lock:
            self._queued.extend([answer] * count)

    def next(self) -> Any | None:
        with self._lock:
            return self._queued.pop(0) if self._queued else None


@dataclass(frozen=True)
class CaughtEmail:
    envelope_from: str
    envelope_to: list[str]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The plain-text body, with the wire's CRLF line ends read as newlines."""
        body = self.message.get_body(preferencelist=("plain",))
        if not isinstance(body, email.message.EmailMessage):
            raise AssertionError("the e-mail has no text/plain part")
        return str(body.get_content()).replace("\r\n", "\n")


class _EphemeralPortController(Controller):
    """aiosmtpd's Controller, bound to port 0: it probes its own port once listening, so the
    port the system chose must be known by then."""

    def _trigger_server(self) -> None:
        if not isinstance(self.server, asyncio.Server):
            raise RuntimeError("the SMTP server did not start")
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpCatcher:
    """A real SMTP server (aiosmtpd, in its own thread) that keeps every message it accepts."""

    def __init__(self, port: int = 0) -> None:
        self._inbox: _Inbox[CaughtEmail] = _Inbox(lambda mail: mail.envelope_to)
        self._failures = _Failures()
        self._controller = _EphemeralPortController(self, hostname="127.0.0.1", port=port)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def messages(self) -> list[CaughtEmail]:
        """Every accepted message, in order of arrival."""
        return self._inbox.items

    def fail_next(self, count: int = 1, reply: str = "451 4.3.0 Try again later") -> None:
        """Refuse the recipient of the next `count` messages with `reply` (e.g. a 550)."""
        self._failures.queue(reply, count)

    async def wait_for(
        self,
        *,
        to: str,
        timeout: float = DEFAULT_WAIT_SECONDS,  # noqa: ASYNC109 (the test says how long it waits)
    ) -> CaughtEmail:
        """The next message for envelope recipient `to` not yet returned by `wait_for`."""
        return await self._inbox.wait_for(to, timeout)

    async def __aenter__(self) -> Self:
        self._inbox.bind(asyncio.get_running_loop())
        await asyncio.to_thread(self._controller.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self._controller.stop)

    # aiosmtpd handler hooks, called on the server's thread.

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if (reply := self._failures.next()) is not None:
            return str(reply)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        if not isinstance(parsed, email.message.EmailMessage):
            return "554 5.6.0 Unparseable message"
        self._inbox.record(
            CaughtEmail(
                envelope_from=str(envelope.mail_from),
                envelope_to=list(envelope.rcpt_tos),
                message=parsed,
            )
        )
        return "250 Message accepted for delivery"


@dataclass(frozen=True)
class WebhookRequest:
    """One POST the webhook received, whatever it answered."""

    path: str
    headers: Mapping[str, str]
    """Header names lower-cased."""
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def to(self) -> str:
        return str(self.json["to"])

    @property
    def text(self) -> str:
        return str(self.json["text"])

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


class SmsWebhookCatcher:
    """A real HTTP server (stdlib, in its own thread) standing in for an SMS provider."""

    def __init__(self, port: int = 0) -> None:
        self._inbox: _Inbox[WebhookRequest] = _Inbox(lambda request: [request.to])
        self._failures = _Failures()
        self._requests_lock = threading.Lock()
        self._requests: list[WebhookRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(
            # A short poll, so stopping at teardown does not wait half a second.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/sms"

    @property
    def requests(self) -> list[WebhookRequest]:
        """Every request received, refused ones included, in order of arrival."""
        with self._requests_lock:
            return list(self._requests)

    @property
    def messages(self) -> list[WebhookRequest]:
        """The requests answered with 2xx: the SMS the provider took."""
        return self._inbox.items

    def fail_next(self, count: int = 1, status: int = HTTPStatus.SERVICE_UNAVAILABLE) -> None:
        """Answer the next `count` requests with `status` instead of accepting them."""
        self._failures.queue(int(status), count)

    async def wait_for(
        self,
        *,
        to: str,
        timeout: float = DEFAULT_WAIT_SECONDS,  # noqa: ASYNC109 (the test says how long it waits)
    ) -> WebhookRequest:
        """The next accepted SMS for `to` not yet returned by `wait_for`."""
        return await self._inbox.wait_for(to, timeout)

    async def __aenter__(self) -> Self:
        self._inbox.bind(asyncio.get_running_loop())
        self._thread.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self._server.shutdown)
        self._server.server_close()
        self._thread.join()

    def _receive(self, path: str, headers: Mapping[str, str], body: bytes) -> int:
        """Record a request and decide its answer; runs on a server thread."""
        failure = self._failures.next()
        status = int(failure) if failure is not None else HTTPStatus.OK
        request = WebhookRequest(path=path, headers=headers, body=body, status=status)
        with self._requests_lock:
            self._requests.append(request)
        if request.accepted:
            self._inbox.record(request)
        return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                status = catcher._receive(self.path, headers, body)
                answer = json.dumps({"accepted": 200 <= status < 300}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads `requests` instead of a stderr access log."""

        return Handler


def notifier_settings(smtp: SmtpCatcher, sms: SmsWebhookCatcher) -> NotifierSettings:
    """Settings that send e-mail to `smtp` (in clear, no login) and SMS to `sms`."""
    return NotifierSettings(
        email_adapter="smtp",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        smtp_starttls=False,
        sms_adapter="webhook",
        sms_webhook_url=sms.url,  # type: ignore[arg-type]  # pydantic parses the string
    )


@pytest.fixture
async def smtp_catcher() -> AsyncIterator[SmtpCatcher]:
    async with SmtpCatcher() as catcher:
        yield catcher


@pytest.fixture
async def sms_webhook_catcher() -> AsyncIterator[SmsWebhookCatcher]:
    async with SmsWebhookCatcher() as catcher:
        yield catcher
