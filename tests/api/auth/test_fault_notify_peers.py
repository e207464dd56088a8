"""Fault: the SMTP server and the SMS provider's webhook are down for a while.

Auth sends to an SMTP server and a webhook on fixed ports of this test's range. Both are
stopped (connections refused), codes are requested by SMS and by e-mail, and the outbox keeps
every message through repeated failed attempts; new servers on the same ports then receive
each message exactly once, and nothing is left to send.

The outbox backs off between attempts (1 s, 2 s, ...), so auth runs on the real clock plus a
shift the test moves forward: a retry falls due at once instead of after a real wait.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.auth.adapters import tables
from tests.api.auth.harness import AuthTestApp, StartAuth
from tests.api.auth.recovery_helpers import EMAIL, SMS, Holder, new_holder, start_reset
from tests.support.faults import eventually, report_fault
from tests.support.notify import SmsWebhookCatcher, SmtpCatcher, notifier_settings

SMTP_PORT, WEBHOOK_PORT = 30310, 30311
HOLDERS = 4
RETRY_DUE = timedelta(minutes=1)
"""A shift past any backoff the few failed attempts here reach (the cap is 5 minutes)."""


class ShiftedClock:
    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift


@pytest.fixture
def auth_backend(sqlite_url: str) -> dict[str, Any]:
    return {"database_url": sqlite_url, "rate_limiter": "memory"}


async def outbox_rows(app: AuthTestApp, since: datetime) -> list[Any]:
    """The outbox events written from `since` on: (attempts, delivered_at)."""
    async with app.app.engine.connect() as connection:
        rows = await connection.execute(
            sa.select(tables.outbox.c.attempts, tables.outbox.c.delivered_at).where(
                tables.outbox.c.created_at >= since
            )
        )
        return list(rows)


async def test_messages_wait_in_the_outbox_while_the_peers_are_down_and_arrive_once(
    start_auth: StartAuth,
) -> None:
    clock = ShiftedClock()
    smtp, sms = SmtpCatcher(SMTP_PORT), SmsWebhookCatcher(WEBHOOK_PORT)
    async with start_auth(clock=clock, notifier=notifier_settings(smtp, sms)) as started:
        app = dataclasses.replace(started, smtp=smtp, sms=sms)
        async with smtp, sms:
            holders: list[Holder] = [await new_holder(app) for _ in range(HOLDERS)]

        # Down: every message is kept, tried, fails, and is tried again once due.
        since = clock()
        for holder in holders:
            await start_reset(app, holder.by_phone, SMS)
            await start_reset(app, holder.by_email, EMAIL)
        expected = 2 * HOLDERS

        async def all_failed(times: int) -> bool:
            rows = await outbox_rows(app, since)
            return len(rows) == expected and all(
                r.attempts >= times and r.delivered_at is None for r in rows
            )

        await eventually(lambda: all_failed(1), "a first failed attempt of every message")
        clock.shift += RETRY_DUE
        await eventually(lambda: all_failed(2), "a second failed attempt of every message")
        attempts_while_down = sum(r.attempts for r in await outbox_rows(app, since))

        # Back on the same ports: every message arrives once, and nothing is left to send.
        async with SmtpCatcher(SMTP_PORT) as back_smtp, SmsWebhookCatcher(WEBHOOK_PORT) as back_sms:
            clock.shift += RETRY_DUE

            async def all_delivered() -> bool:
                rows = await outbox_rows(app, since)
                return all(r.delivered_at is not None for r in rows)

            await eventually(all_delivered, "every message delivered")
            assert (await app.app.dispatcher.run_once()).claimed == 0
            received = Counter(
                [
                    *(message.to for message in back_sms.messages),
                    *(address for mail in back_smtp.messages for address in mail.envelope_to),
                ]
            )
            assert received == Counter([*(h.phone for h in holders), *(h.email for h in holders)])
            assert len(back_sms.requests) == HOLDERS

    report_fault(
        "SMTP server and SMS webhook down (connections refused)",
        f"{expected} codes requested while down ({HOLDERS} SMS, {HOLDERS} e-mail), "
        f"{attempts_while_down} failed delivery attempts, all {expected} kept in the outbox; "
        f"after the peers came back: {len(back_sms.messages)} SMS and "
        f"{len(back_smtp.messages)} e-mails received, each destination exactly once, "
        f"0 left pending",
    )
