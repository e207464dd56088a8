"""Notifications through the outbox to real peers, on SQLite and on PostgreSQL.

The outbox table is the one place a notification waits, so it must hold no contact and no
code in clear; delivery must follow the transaction, survive a refusing peer, and give up on
a message the peer will never take.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.support.notify import SmsWebhookCatcher, SmtpCatcher, extract_code, notifier_settings
from walletcore.crypto import KeyRing
from walletcore.db import create_engine, make_metadata
from walletcore.notify import (
    TOPIC_EMAIL,
    TOPIC_SMS,
    EmailMessage,
    NotificationOutbox,
    SmsMessage,
    transports_from_settings,
)
from walletcore.outbox import Backoff, OutboxDispatcher, define_outbox_table
from walletcore.settings import NotifierSettings

PHONE = "+8613812345678"
ADDRESS = "alice@example.test"
RETRY_AFTER = timedelta(seconds=10)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Notifications:
    engine: AsyncEngine
    table: sa.Table
    outbox: NotificationOutbox
    dispatcher: OutboxDispatcher
    clock: FakeClock

    async def enqueue(self, message: SmsMessage | EmailMessage, *, commit: bool = True) -> str:
        async with AsyncSession(self.engine) as session:
            event_id = await self.outbox.enqueue(session, message)
            if commit:
                await session.commit()
        return event_id

    async def rows(self) -> list[sa.Row[Any]]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.select(self.table))).all())


@pytest.fixture
async def notifications(
    database_url: str, smtp_catcher: SmtpCatcher, sms_webhook_catcher: SmsWebhookCatcher
) -> AsyncIterator[Notifications]:
    engine = create_engine(database_url)
    metadata = make_metadata()
    table = define_outbox_table(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    clock = FakeClock()
    outbox = NotificationOutbox(table, KeyRing.development("notify-test"), clock=clock)
    transports = transports_from_settings(notifier_settings(smtp_catcher, sms_webhook_catcher))
    dispatcher = OutboxDispatcher(
        engine,
        table,
        outbox.handlers(transports),
        backoff=Backoff(initial=RETRY_AFTER),
        clock=clock,
    )
    yield Notifications(engine, table, outbox, dispatcher, clock)
    await transports.aclose()
    await engine.dispose()


async def test_committed_notifications_reach_their_peers_and_the_table_holds_them_sealed(
    notifications: Notifications,
    smtp_catcher: SmtpCatcher,
    sms_webhook_catcher: SmsWebhookCatcher,
) -> None:
    sms_id = await notifications.enqueue(SmsMessage(to=PHONE, text="Wallet code 482913"))
    email_id = await notifications.enqueue(
        EmailMessage(to=ADDRESS, subject="Password reset", text="Your code is 731904")
    )
    stored = "\n".join(repr(tuple(row)) for row in await notifications.rows())

    result = await notifications.dispatcher.run_once()

    sms = await sms_webhook_catcher.wait_for(to=PHONE)
    mail = await smtp_catcher.wait_for(to=ADDRESS)
    assert result.delivered == 2
    assert extract_code(sms.text) == "482913"
    assert sms.idempotency_key == sms_id
    assert extract_code(mail.text) == "731904"
    assert mail.subject == "Password reset"
    assert mail.message["Message-ID"] == f"<{email_id}@wallet.invalid>"
    for secret in (PHONE, "13812345678", ADDRESS, "482913", "731904", "Password reset"):
        assert secret not in stored
    assert TOPIC_SMS in stored
    assert TOPIC_EMAIL in stored


async def test_a_notification_of_a_rolled_back_transaction_is_never_sent(
    notifications: Notifications,
    smtp_catcher: SmtpCatcher,
    sms_webhook_catcher: SmsWebhookCatcher,
) -> None:
    await notifications.enqueue(SmsMessage(to=PHONE, text="code 482913"), commit=False)
    await notifications.enqueue(
        EmailMessage(to=ADDRESS, subject="Reset", text="code 731904"), commit=False
    )

    result = await notifications.dispatcher.run_once()

    assert result.claimed == 0
    assert await notifications.rows() == []
    assert sms_webhook_catcher.requests == []
    assert smtp_catcher.messages == []


async def test_a_provider_answering_503_gets_the_same_sms_again_and_it_is_delivered_once(
    notifications: Notifications, sms_webhook_catcher: SmsWebhookCatcher
) -> None:
    sms_webhook_catcher.fail_next(1, status=503)
    event_id = await notifications.enqueue(SmsMessage(to=PHONE, text="code 482913"))

    refused = await notifications.dispatcher.run_once()
    notifications.clock.advance(RETRY_AFTER)
    retried = await notifications.dispatcher.run_once()
    notifications.clock.advance(RETRY_AFTER * 100)
    afterwards = await notifications.dispatcher.run_once()

    assert (refused.failed, retried.delivered, afterwards.claimed) == (1, 1, 0)
    requests = sms_webhook_catcher.requests
    assert [request.status for request in requests] == [503, 200]
    assert {request.idempotency_key for request in requests} == {event_id}
    assert len(sms_webhook_catcher.messages) == 1


async def test_a_permanent_refusal_is_recorded_once_and_not_retried(
    notifications: Notifications,
    sms_webhook_catcher: SmsWebhookCatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sms_webhook_catcher.fail_next(10, status=400)
    event_id = await notifications.enqueue(SmsMessage(to=PHONE, text="code 482913"))

    with caplog.at_level(logging.DEBUG):
        refused = await notifications.dispatcher.run_once()
    notifications.clock.advance(timedelta(days=1))
    afterwards = await notifications.dispatcher.run_once()

    assert (refused.abandoned, afterwards.claimed) == (1, 0)
    assert len(sms_webhook_catcher.requests) == 1
    [row] = await notifications.rows()
    assert row.delivered_at is not None
    assert "400" in row.last_error
    assert await notifications.dispatcher.pending_count() == 0
    logged = [(record.getMessage(), vars(record)) for record in caplog.records]
    assert any(event_id == fields.get("event_id") for _, fields in logged)
    for secret in (PHONE, "13812345678", "482913"):
        assert secret not in repr(logged)


async def test_a_sealed_sms_moved_to_the_email_topic_cannot_be_opened(
    notifications: Notifications,
    smtp_catcher: SmtpCatcher,
    sms_webhook_catcher: SmsWebhookCatcher,
) -> None:
    event_id = await notifications.enqueue(SmsMessage(to=PHONE, text="code 482913"))
    async with notifications.engine.begin() as conn:
        table = notifications.table
        await conn.execute(sa.update(table).where(table.c.id == event_id).values(topic=TOPIC_EMAIL))

    result = await notifications.dispatcher.run_once()

    assert result.failed == 1
    [row] = await notifications.rows()
    assert row.last_error == "DecryptionFailed"
    assert smtp_catcher.messages == []
    assert sms_webhook_catcher.requests == []


async def test_mail_a_plain_catcher_cannot_take_over_starttls_logs_why_but_no_address(
    notifications: Notifications, smtp_catcher: SmtpCatcher, caplog: pytest.LogCaptureFixture
) -> None:
    # The default settings (STARTTLS on) against a local catcher that offers no STARTTLS.
    settings = NotifierSettings(
        email_adapter="smtp", smtp_host=smtp_catcher.host, smtp_port=smtp_catcher.port
    )
    transports = transports_from_settings(settings)
    dispatcher = OutboxDispatcher(
        notifications.engine,
        notifications.table,
        notifications.outbox.handlers(transports),
        clock=notifications.clock,
    )
    event_id = await notifications.enqueue(
        EmailMessage(to=ADDRESS, subject="Password reset", text="Your code is 731904")
    )

    with caplog.at_level(logging.WARNING, logger="walletcore.outbox"):
        result = await dispatcher.run_once()

    assert result.failed == 1
    [failed] = [
        record for record in caplog.records if record.getMessage() == "outbox delivery failed"
    ]
    assert vars(failed)["event_id"] == event_id
    assert "STARTTLS extension not supported" in vars(failed)["error"]
    [row] = await notifications.rows()
    assert row.delivered_at is None
    assert "STARTTLS" in row.last_error
    logged = repr([vars(record) for record in caplog.records]) + row.last_error
    for secret in (ADDRESS, "731904", "Password reset"):
        assert secret not in logged
    assert smtp_catcher.messages == []
