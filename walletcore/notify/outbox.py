"""Notifications through the transactional outbox, sealed so the table never holds them in clear.

A service writes a message with `NotificationOutbox.enqueue` in the transaction of the state
change it reports, and runs an `OutboxDispatcher` with `NotificationOutbox.handlers(transports)`:

    outbox = NotificationOutbox(outbox_table, key_ring)
    async with uow:
        ...                                        # the state change
        await outbox.enqueue(uow.session, SmsMessage(to=phone, text=f"Code {code}"))
        await uow.commit()

    dispatcher = OutboxDispatcher(engine, outbox_table, outbox.handlers(transports))

The destination, subject and text are encrypted with the key ring; the associated data binds
the ciphertext to its topic, so a sealed SMS cannot be replayed as an e-mail. Handlers pass the
outbox `event_id` to the transport as its idempotency key. A peer's permanent refusal abandons
the event (the dispatcher logs its id and the refusal's protocol code, nothing more); a
retryable failure is retried with the transport's reason logged (never the destination or the
text); anything else, decryption failures included, is retried under its class name.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Mapping
from typing import Any

import sqlalchemy as sa

from walletcore.clock import Clock, utc_now
from walletcore.crypto import KeyRing
from walletcore.db import Executor
from walletcore.notify.messages import EmailMessage, SmsMessage
from walletcore.notify.transports import DeliveryFailed, Transports
from walletcore.outbox import Handler, OutboxEvent, RetryLater, UndeliverableEvent, add_event

TOPIC_SMS = "notify.sms"
TOPIC_EMAIL = "notify.email"

_SEALED = "sealed"


def _associated_data(topic: str) -> bytes:
    return f"walletcore.notify/{topic}".encode()


class NotificationOutbox:
    def __init__(self, table: sa.Table, key_ring: KeyRing, *, clock: Clock = utc_now) -> None:
        self._table = table
        self._key_ring = key_ring
        self._clock = clock

    async def enqueue(
        self,
        executor: Executor,
        message: SmsMessage | EmailMessage,
        *,
        dedupe_key: str | None = None,
        deliver: bool = True,
    ) -> str:
        """Write `message` in the caller's transaction and return its outbox `event_id`.

        A `dedupe_key` (stored in clear: never a contact or a code) makes a retried request
        enqueue the message once. With `deliver=False` the message is sealed and written just
        the same but settled at once (`add_event(settled=True)`): it is never sent.
        """
        if isinstance(message, SmsMessage):
            topic, fields = TOPIC_SMS, {"to": message.to, "text": message.text}
        else:
            topic = TOPIC_EMAIL
            fields = {"to": message.to, "subject": message.subject, "text": message.text}
        sealed = self._key_ring.encrypt(
            json.dumps(fields, ensure_ascii=False).encode(),
            associated_data=_associated_data(topic),
        )
        payload = {_SEALED: base64.b64encode(sealed).decode("ascii")}
        return await add_event(
            executor,
            self._table,
            topic,
            payload,
            dedupe_key=dedupe_key,
            now=self._clock(),
            settled=not deliver,
        )

    def handlers(self, transports: Transports) -> Mapping[str, Handler]:
        """The handlers an `OutboxDispatcher` needs for both notification topics."""

        async def deliver_sms(event: OutboxEvent) -> None:
            fields = self._open(event)
            message = SmsMessage(to=fields["to"], text=fields["text"])
            await _send(transports.sms.send(message, idempotency_key=event.event_id))

        async def deliver_email(event: OutboxEvent) -> None:
            fields = self._open(event)
            message = EmailMessage(to=fields["to"], subject=fields["subject"], text=fields["text"])
            await _send(transports.email.send(message, idempotency_key=event.event_id))

        return {TOPIC_SMS: deliver_sms, TOPIC_EMAIL: deliver_email}

    def _open(self, event: OutboxEvent) -> dict[str, Any]:
        # A DecryptionFailed here propagates and is retried: during a key rotation, a process
        # that does not know the new key yet leaves the event to one that does.
        sealed = base64.b64decode(event.payload[_SEALED])
        plaintext = self._key_ring.decrypt(sealed, associated_data=_associated_data(event.topic))
        fields: dict[str, Any] = json.loads(plaintext)
        return fields


async def _send(sending: Awaitable[None]) -> None:
    try:
        await sending
    except DeliveryFailed as failure:
        # A DeliveryFailed's message names protocol codes and errors, never the message.
        if failure.retryable:
            raise RetryLater(str(failure)) from None
        raise UndeliverableEvent(str(failure)) from None
