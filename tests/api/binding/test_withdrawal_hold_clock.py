"""The withdrawal hold on a clock the test moves: inside the 24 hours after a contact change,
over once they pass, and restarted by a further change. Auth and binding share one FakeClock,
so every token (access, grant, the services' own) is issued and checked on the moved time."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.api.auth.conftest import StartAuth
from tests.api.auth.harness import AuthTestApp, email_contact, phone_contact, service_metadata
from tests.api.auth.recovery_helpers import Holder
from tests.api.binding.conftest import BindingTestApp
from tests.api.binding.test_contact_change_api import complete, start
from wallet.auth.v1 import types_pb2 as auth_types
from wallet.binding.v1 import binding_query_service_pb2 as query_pb
from wallet.binding.v1 import types_pb2 as binding_types
from walletcore.clock import utc_now
from walletcore.fakes import FakeClock

HOLD = timedelta(hours=24)


@pytest.fixture
async def auth_app(start_auth: StartAuth) -> AsyncIterator[AuthTestApp]:
    """Auth (and so binding, which takes auth's clock) on a clock this module moves."""
    async with start_auth(clock=FakeClock(utc_now())) as app:
        yield app


def moved_clock(app: BindingTestApp) -> FakeClock:
    clock = app.auth.app.ctx.clock
    assert isinstance(clock, FakeClock)
    return clock


async def hold_for_refund(app: BindingTestApp, holder: Holder) -> binding_types.WithdrawalHold:
    reply = await app.query.GetWithdrawalHold(
        query_pb.BindingQueryServiceGetWithdrawalHoldRequest(account_id=holder.account_id),
        metadata=service_metadata("refund", audience="binding", clock=moved_clock(app)),
    )
    return reply.withdrawal_hold


async def change_phone(app: BindingTestApp, holder: Holder) -> tuple[Holder, int]:
    """The holder after changing to a new phone, and the change's time in seconds."""
    new_phone = app.auth.new_phone()
    grant = await app.grant(holder, auth_types.STEP_UP_PURPOSE_CHANGE_PHONE, new_phone)
    started = await start(app, holder, phone_contact(new_phone), grant)
    completed = await complete(app, holder, started.change_id, await app.auth.next_code(new_phone))
    for told in (holder.phone, holder.email):  # the change is notified to the old contacts
        await app.auth.next_message_text(told)
    return dataclasses.replace(holder, phone=new_phone), completed.changed_at.ToSeconds()


async def change_email(app: BindingTestApp, holder: Holder) -> tuple[Holder, int]:
    new_email = app.auth.new_email()
    grant = await app.grant(
        holder, auth_types.STEP_UP_PURPOSE_CHANGE_EMAIL, new_email, by_email=True
    )
    started = await start(app, holder, email_contact(new_email), grant)
    completed = await complete(app, holder, started.change_id, await app.auth.next_code(new_email))
    for told in (holder.phone, holder.email):
        await app.auth.next_message_text(told)
    return dataclasses.replace(holder, email=new_email), completed.changed_at.ToSeconds()


async def signed_in_again(app: BindingTestApp, holder: Holder) -> Holder:
    """A new session on the moved clock (the first one's access token has long expired)."""
    reply = await app.auth.sign_in(phone_contact(holder.phone))
    assert reply.WhichOneof("result") == "tokens"
    return dataclasses.replace(holder, tokens=reply.tokens)


async def test_the_hold_ends_24_hours_after_the_change(binding_app: BindingTestApp) -> None:
    clock = moved_clock(binding_app)
    holder, changed_at = await change_phone(binding_app, await binding_app.new_holder())

    clock.advance(HOLD - timedelta(seconds=1))
    last_second = await hold_for_refund(binding_app, holder)
    clock.advance(timedelta(seconds=1))
    at_the_end = await hold_for_refund(binding_app, holder)

    assert last_second.in_window
    assert last_second.until.ToSeconds() == changed_at + int(HOLD.total_seconds())
    assert not at_the_end.in_window
    assert at_the_end.until == last_second.until  # when it ended stays readable


async def test_a_further_change_restarts_the_hold(binding_app: BindingTestApp) -> None:
    clock = moved_clock(binding_app)
    holder, _ = await change_phone(binding_app, await binding_app.new_holder())

    clock.advance(timedelta(hours=23))
    holder = await signed_in_again(binding_app, holder)
    holder, changed_again_at = await change_email(binding_app, holder)
    clock.advance(timedelta(hours=2))  # 25 hours after the first change
    still_held = await hold_for_refund(binding_app, holder)
    clock.advance(timedelta(hours=22))  # 24 hours after the second
    released = await hold_for_refund(binding_app, holder)

    assert still_held.in_window
    assert still_held.until.ToSeconds() == changed_again_at + int(HOLD.total_seconds())
    assert not released.in_window
