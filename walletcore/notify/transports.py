"""How messages leave the service: SMTP e-mail, an SMS provider's HTTP webhook, or the console.

Every transport takes an `idempotency_key` (the outbox event id) and hands it to the peer, as
the e-mail's Message-ID or the webhook's `Idempotency-Key` header, so a redelivery after a crash
is recognisable as the same message. A transport that fails raises `DeliveryFailed`, whose
`retryable` tells the outbox whether to try again; its message names protocol codes only,
never the destination or the text.

The console transports are for development: they print the message, code included, to stdout
(from a worker thread, so a stalled stdout pipe never blocks the event loop) and never to the
logger, since logs must never hold codes. `NOTIFIER__INBOX_PATH` also appends every message to
the development inbox (`walletcore.notify.inbox`), whatever the adapter. Production settings
refuse both.
"""

from __future__ import annotations

import asyncio
import email.message
import re
import ssl
import sys
from dataclasses import dataclass
from email.utils import format_datetime, parseaddr
from typing import Generic, Protocol, TextIO, TypeVar

import aiosmtplib
import httpx

from walletcore.clock import Clock, utc_now
from walletcore.notify.inbox import DevelopmentInbox, InboxEmailTransport, InboxSmsTransport
from walletcore.notify.messages import EmailMessage, SmsMessage
from walletcore.settings import NotifierSettings

SMTP_TIMEOUT_SECONDS = 15.0
"""Per SMTP operation (connect, each command); NotifierSettings has no SMTP timeout of its own."""

# Both peers see the key in a header (the left part of a Message-ID is a dot-atom), so it is
# limited to characters that are safe in both; outbox event ids are UUIDs.
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_IDEMPOTENCY_KEY_MAX = 200
# What a transport error's text may keep: it names hosts and ports, and must never carry a
# mailbox (none is expected there, but an SMTP library may quote one).
_ADDRESS_LIKE = re.compile(r"<[^>]*>|[^\s<>()'\"]*@[^\s<>()'\"]*")
_REASON_MAX = 150
# Client errors that say "not now" rather than "never".
_RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})


class DeliveryFailed(Exception):
    """The peer did not accept the message; `retryable` says whether a later try may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class EmailTransport(Protocol):
    async def send(self, message: EmailMessage, *, idempotency_key: str) -> None: ...

    async def aclose(self) -> None: ...


class SmsTransport(Protocol):
    async def send(self, message: SmsMessage, *, idempotency_key: str) -> None: ...

    async def aclose(self) -> None: ...


def _require_idempotency_key(key: str) -> None:
    if len(key) > _IDEMPOTENCY_KEY_MAX or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ValueError("an idempotency key is 1 to 200 letters, digits, '.', '_' or '-'")


class SmtpEmailTransport:
    """Plain-text UTF-8 e-mail over SMTP, one connection per message.

    `starttls` upgrades a plain connection and fails if the server cannot; `implicit_tls`
    connects over TLS from the start (usually port 465); with neither, mail goes in clear.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        implicit_tls: bool = False,
        timeout: float = SMTP_TIMEOUT_SECONDS,
        tls_context: ssl.SSLContext | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if starttls and implicit_tls:
            raise ValueError("choose one of starttls and implicit_tls, not both")
        if (username is None) != (password is None):
            raise ValueError("SMTP authentication needs both a username and a password")
        _, sender_address = parseaddr(sender)
        self._sender_domain = sender_address.rpartition("@")[2]
        if not self._sender_domain:
            raise ValueError("the sender must be an e-mail address, e.g. 'Wallet <no-reply@x>'")
        self._sender = sender
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._starttls = starttls
        self._implicit_tls = implicit_tls
        self._timeout = timeout
        self._tls_context = tls_context
        self._clock = clock

    async def send(self, message: EmailMessage, *, idempotency_key: str) -> None:
        mime = self.compose(message, idempotency_key=idempotency_key)
        try:
            await aiosmtplib.send(
                mime,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                start_tls=self._starttls,
                use_tls=self._implicit_tls,
                timeout=self._timeout,
                tls_context=self._tls_context,
            )
        # `from None` throughout: the SMTP errors quote the addresses involved.
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise _smtp_reply_failed(exc.recipients[0]) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _smtp_reply_failed(exc) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Refused or dropped connections, timeouts, TLS failures (a server without STARTTLS):
            # the message is not at fault, the setup may be, so the operator needs the reason.
            raise DeliveryFailed(
                f"SMTP delivery failed: {type(exc).__name__}: {_without_addresses(str(exc))}",
                retryable=True,
            ) from None

    def compose(self, message: EmailMessage, *, idempotency_key: str) -> email.message.EmailMessage:
        """The MIME message `send` transmits; its Message-ID is `<idempotency_key@domain>`."""
        _require_idempotency_key(idempotency_key)
        mime = email.message.EmailMessage()
        mime["From"] = self._sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Date"] = format_datetime(self._clock())
        mime["Message-ID"] = f"<{idempotency_key}@{self._sender_domain}>"
        mime.set_content(message.text, subtype="plain", charset="utf-8")
        return mime

    async def aclose(self) -> None:
        """Nothing to release: each message uses its own connection."""


def _without_addresses(text: str) -> str:
    """A connection or TLS error's text, shortened, with anything like an e-mail address out."""
    return _ADDRESS_LIKE.sub("<address>", text)[:_REASON_MAX]


def _smtp_reply_failed(exc: aiosmtplib.SMTPResponseException) -> DeliveryFailed:
    # A 5xx to the message itself (sender, recipient, content) is final. A 5xx to our login or
    # greeting is our configuration's fault: retried, so the message goes once it is fixed.
    setup_failure = isinstance(
        exc, aiosmtplib.SMTPAuthenticationError | aiosmtplib.SMTPHeloError | ConnectionError
    )
    permanent = 500 <= exc.code < 600 and not setup_failure
    return DeliveryFailed(
        f"SMTP server replied {exc.code} ({type(exc).__name__})", retryable=not permanent
    )


class WebhookSmsTransport:
    """POSTs `{"to": "<E.164>", "text": "<message>"}` to an SMS provider's URL.

    A 2xx answer means delivered. 5xx, 408, 429, redirects, timeouts and connection errors are
    retryable; any other 4xx means the provider refuses this message for good. A client passed
    in stays the caller's to close.
    """

    def __init__(
        self, url: str, *, timeout: float, client: httpx.AsyncClient | None = None
    ) -> None:
        if httpx.URL(url).scheme not in ("http", "https"):
            raise ValueError("the SMS webhook URL must be http or https")
        if timeout <= 0:
            raise ValueError("the SMS webhook timeout must be positive")
        self._url = url
        self._timeout = httpx.Timeout(timeout)
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()

    async def send(self, message: SmsMessage, *, idempotency_key: str) -> None:
        _require_idempotency_key(idempotency_key)
        try:
            response = await self._client.post(
                self._url,
                json={"to": message.to, "text": message.text},
                headers={"Idempotency-Key": idempotency_key},
                timeout=self._timeout,
            )
        # `from None`: the errors quote the URL, which may carry the provider's credentials.
        except httpx.TransportError as exc:
            raise DeliveryFailed(
                f"SMS webhook unreachable: {type(exc).__name__}", retryable=True
            ) from None
        if response.is_success:
            return
        status = response.status_code
        permanent = 400 <= status < 500 and status not in _RETRYABLE_CLIENT_ERRORS
        raise DeliveryFailed(f"SMS webhook answered HTTP {status}", retryable=not permanent)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _print_block(stream: TextIO | None, kind: str, headers: dict[str, str], text: str) -> None:
    lines = [
        f"===== DEVELOPMENT {kind} (console adapter: printed, not sent) =====",
        *(f"{name}: {value}" for name, value in headers.items()),
        "",
        text,
        f"===== END DEVELOPMENT {kind} =====",
        "",
    ]
    out = stream or sys.stdout
    # One write, so blocks of concurrent sends never interleave line by line.
    out.write("\n".join(lines))
    out.flush()


class ConsoleEmailTransport:
    """Development only: prints each e-mail to stdout (or `stream`)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, message: EmailMessage, *, idempotency_key: str) -> None:
        headers = {
            "To": message.to,
            "Subject": message.subject,
            "Idempotency-Key": idempotency_key,
        }
        await asyncio.to_thread(_print_block, self._stream, "E-MAIL", headers, message.text)

    async def aclose(self) -> None:
        """Nothing to release."""


class ConsoleSmsTransport:
    """Development only: prints each SMS to stdout (or `stream`)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, message: SmsMessage, *, idempotency_key: str) -> None:
        headers = {"To": message.to, "Idempotency-Key": idempotency_key}
        await asyncio.to_thread(_print_block, self._stream, "SMS", headers, message.text)

    async def aclose(self) -> None:
        """Nothing to release."""


_M = TypeVar("_M", SmsMessage, EmailMessage)
_M_contra = TypeVar("_M_contra", SmsMessage, EmailMessage, contravariant=True)


class _Transport(Protocol[_M_contra]):
    async def send(self, message: _M_contra, *, idempotency_key: str) -> None: ...

    async def aclose(self) -> None: ...


class AlsoToInbox(Generic[_M]):
    """Appends each message to the development inbox, then sends it through `transport`. A
    failure of either fails the send: the outbox retries it, and the inbox may then hold the
    message twice (with the same idempotency key)."""

    def __init__(self, inbox: _Transport[_M], transport: _Transport[_M]) -> None:
        self._inbox: _Transport[_M] = inbox
        self._transport: _Transport[_M] = transport

    async def send(self, message: _M, *, idempotency_key: str) -> None:
        await self._inbox.send(message, idempotency_key=idempotency_key)
        await self._transport.send(message, idempotency_key=idempotency_key)

    async def aclose(self) -> None:
        try:
            await self._inbox.aclose()
        finally:
            await self._transport.aclose()


@dataclass(frozen=True, slots=True)
class Transports:
    email: EmailTransport
    sms: SmsTransport

    async def aclose(self) -> None:
        try:
            await self.email.aclose()
        finally:
            await self.sms.aclose()


def transports_from_settings(settings: NotifierSettings) -> Transports:
    email_transport, sms_transport = _email_transport(settings), _sms_transport(settings)
    if settings.inbox_path is None:
        return Transports(email=email_transport, sms=sms_transport)
    inbox = DevelopmentInbox(settings.inbox_path)
    return Transports(
        email=AlsoToInbox(InboxEmailTransport(inbox), email_transport),
        sms=AlsoToInbox(InboxSmsTransport(inbox), sms_transport),
    )


def _email_transport(settings: NotifierSettings) -> EmailTransport:
    if settings.email_adapter == "console":
        return ConsoleEmailTransport()
    if settings.smtp_host is None:
        raise ValueError("the smtp e-mail adapter needs smtp_host")
    password = settings.smtp_password
    return SmtpEmailTransport(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.email_from,
        username=settings.smtp_username,
        password=password.get_secret_value() if password is not None else None,
        starttls=settings.smtp_starttls,
        implicit_tls=settings.smtp_implicit_tls,
    )


def _sms_transport(settings: NotifierSettings) -> SmsTransport:
    if settings.sms_adapter == "console":
        return ConsoleSmsTransport()
    if settings.sms_webhook_url is None:
        raise ValueError("the webhook sms adapter needs sms_webhook_url")
    return WebhookSmsTransport(str(settings.sms_webhook_url), timeout=settings.sms_timeout_seconds)
