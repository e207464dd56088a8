"""The development inbox: every SMS and e-mail a development service sends, as JSON lines in a
file a program can read (`make run` writes `var/inbox.jsonl`; `make demo` reads its codes there).

One line per message, appended with a single `write` on a descriptor opened with `O_APPEND`,
so the lines of several processes appending to the same file never interleave:

    {"time": "2026-01-01T00:00:00+00:00", "channel": "sms", "to": "+8613800138000",
     "subject": "", "body": "Your code is 123456", "idempotency_key": "..."}

Like the console adapters it holds codes in clear: development only (production settings
refuse `NOTIFIER__INBOX_PATH`). A redelivered outbox event appears again with the same
`idempotency_key`.

    inbox = DevelopmentInbox(Path("var/inbox.jsonl"))
    mark = inbox.mark()                      # before the request that sends a code
    ...
    message = inbox.wait_for("+8613800138000", after=mark, where=has_code)
    code = one_time_code(message.body)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from walletcore.clock import Clock, utc_now
from walletcore.notify.messages import EmailMessage, SmsMessage, mask_email, mask_phone

Channel = Literal["sms", "email"]
WAIT_SECONDS: Final = 15.0
POLL_SECONDS: Final = 0.05
# Word boundaries, not digit boundaries: a run of six digits inside a longer token (an
# idempotency key's hex, say) is not a code.
_CODE: Final = re.compile(r"\b\d{6}\b")


class InboxTimeout(Exception):
    """No message to the address arrived in time."""


@dataclass(frozen=True, slots=True, repr=False)
class InboxMessage:
    time: datetime
    channel: Channel
    to: str
    subject: str
    body: str
    idempotency_key: str

    def __repr__(self) -> str:
        masked = mask_phone(self.to) if self.channel == "sms" else mask_email(self.to)
        return f"InboxMessage(channel={self.channel!r}, to={masked!r}, body=<hidden>)"


def one_time_code(text: str) -> str:
    """The one 6-digit code in a message's text; ValueError when there is none or several."""
    codes = set(_CODE.findall(text))
    if len(codes) != 1:
        raise ValueError(f"expected one 6-digit code in the message, found {len(codes)}")
    return str(codes.pop())


def has_code(message: InboxMessage) -> bool:
    """Whether the message carries one 6-digit code (a security notice carries none)."""
    return len(set(_CODE.findall(message.body))) == 1


def _any(message: InboxMessage) -> bool:
    return True


class DevelopmentInbox:
    """The inbox file: `append` for the transports, `messages` / `wait_for` for its readers."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, message: InboxMessage) -> None:
        """One line, one `write` on an `O_APPEND` descriptor: atomic between processes."""
        line = json.dumps(
            {
                "time": message.time.isoformat(),
                "channel": message.channel,
                "to": message.to,
                "subject": message.subject,
                "body": message.body,
                "idempotency_key": message.idempotency_key,
            },
            ensure_ascii=False,
        )
        data = (line + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 0o600: the file holds codes; other users of the machine have no business reading it.
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(descriptor, data)
        finally:
            os.close(descriptor)
        if written != len(data):
            raise OSError(f"the inbox took {written} of {len(data)} bytes of a message")

    def messages(self) -> list[InboxMessage]:
        """Every complete line so far, oldest first (none before the first message)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        # A line still being written (no newline yet) is left for the next read.
        complete = raw[: raw.rfind(b"\n") + 1]
        return [_parse(line) for line in complete.decode().splitlines() if line]

    def mark(self) -> int:
        """How many messages the inbox holds now: `wait_for(after=...)` skips them."""
        return len(self.messages())

    def latest_to(
        self, address: str, *, after: int = 0, where: Callable[[InboxMessage], bool] = _any
    ) -> InboxMessage | None:
        """The newest message to `address` (an E.164 number or an e-mail address) for which
        `where` holds (`has_code`: one carrying a code, not a security notice), skipping the
        first `after` messages of the file."""
        for message in reversed(self.messages()[after:]):
            if message.to == address and where(message):
                return message
        return None

    def wait_for(
        self,
        address: str,
        *,
        after: int = 0,
        where: Callable[[InboxMessage], bool] = _any,
        timeout: float = WAIT_SECONDS,
    ) -> InboxMessage:
        """`latest_to`, waiting for such a message to arrive (services send through an
        outbox, a moment after the request that asked)."""
        deadline = time.monotonic() + timeout
        while (message := self.latest_to(address, after=after, where=where)) is None:
            if time.monotonic() >= deadline:
                raise InboxTimeout(
                    f"no message arrived in {self.path} within {timeout:g} s: is the stack "
                    "writing to this inbox (NOTIFIER__INBOX_PATH)?"
                )
            time.sleep(POLL_SECONDS)
        return message


def _parse(line: str) -> InboxMessage:
    fields = json.loads(line)
    return InboxMessage(
        time=datetime.fromisoformat(fields["time"]),
        channel=fields["channel"],
        to=fields["to"],
        subject=fields["subject"],
        body=fields["body"],
        idempotency_key=fields["idempotency_key"],
    )


class InboxSmsTransport:
    """Development only: appends each SMS to the inbox (in a worker thread, off the loop)."""

    def __init__(self, inbox: DevelopmentInbox, *, clock: Clock = utc_now) -> None:
        self._inbox = inbox
        self._clock = clock

    async def send(self, message: SmsMessage, *, idempotency_key: str) -> None:
        record = InboxMessage(self._clock(), "sms", message.to, "", message.text, idempotency_key)
        await asyncio.to_thread(self._inbox.append, record)

    async def aclose(self) -> None:
        """Nothing to release: each message opens the file on its own."""


class InboxEmailTransport:
    """Development only: appends each e-mail to the inbox (in a worker thread, off the loop)."""

    def __init__(self, inbox: DevelopmentInbox, *, clock: Clock = utc_now) -> None:
        self._inbox = inbox
        self._clock = clock

    async def send(self, message: EmailMessage, *, idempotency_key: str) -> None:
        record = InboxMessage(
            self._clock(), "email", message.to, message.subject, message.text, idempotency_key
        )
        await asyncio.to_thread(self._inbox.append, record)

    async def aclose(self) -> None:
        """Nothing to release: each message opens the file on its own."""
