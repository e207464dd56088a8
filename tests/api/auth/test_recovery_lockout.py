"""A stranger who knows only the owner's phone number cannot lock the owner out of the safety
actions (SPEC 3), through real gRPC calls: wrong codes on resets (or self-freezes) the stranger
started leave the owner's self-freeze and TOTP sign-in working, while the stranger's own
guessing still stops at the limit of its kind of code.

Each destination takes one code per resend interval; these apps shorten it to a second, and
`when_allowed` waits out what remains of it, so the stranger can have several codes sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TypeVar

import grpc
import pyotp
import pytest

from services.auth.service.fakes import FakeClock
from tests.api.auth.harness import AuthTestApp, StartAuth, request_id
from tests.api.auth.recovery_helpers import (
    Holder,
    complete_reset,
    confirm_self_freeze,
    enrol_totp,
    new_holder,
    refused,
    start_reset,
    start_self_freeze,
    wrong_code,
)
from tests.support.figures import record
from tests.support.retry import when_allowed
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from walletcore.clock import utc_now

_T = TypeVar("_T")
STEP = timedelta(seconds=30)
TRIES_PER_CODE = 5
RATE_LIMITED = (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
CODE_INVALID = (grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc_now())


@pytest.fixture
async def app(start_auth: StartAuth, clock: FakeClock) -> AsyncIterator[AuthTestApp]:
    async with start_auth(clock=clock, code_resend_interval_seconds=1) as started:
        yield started


@pytest.fixture
async def holder(app: AuthTestApp) -> Holder:
    return await new_holder(app)


async def strangers_reset(app: AuthTestApp, holder: Holder) -> tuple[str, str]:
    """A reset the stranger started for the owner's phone, and the code only the owner read."""
    started = await when_allowed(lambda: start_reset(app, holder.by_phone))
    return started.reset_id, await app.next_code(holder.phone)


async def five_wrong_resets(app: AuthTestApp, holder: Holder) -> None:
    reset_id, code = await strangers_reset(app, holder)
    for _ in range(TRIES_PER_CODE):
        await refused(complete_reset(app, reset_id, wrong_code(code)))


async def owners_self_freeze(app: AuthTestApp, holder: Holder) -> pb.ConfirmSelfFreezeResponse:
    started = await when_allowed(lambda: start_self_freeze(app, holder.by_phone))
    return await confirm_self_freeze(app, started.challenge_id, await app.next_code(holder.phone))


async def test_a_strangers_wrong_reset_codes_leave_the_owners_self_freeze_working(
    app: AuthTestApp, holder: Holder
) -> None:
    await five_wrong_resets(app, holder)
    await five_wrong_resets(app, holder)

    frozen = await owners_self_freeze(app, holder)

    assert frozen.HasField("frozen_at")


async def test_a_strangers_wrong_reset_codes_leave_the_owners_totp_sign_in_working(
    app: AuthTestApp, holder: Holder, clock: FakeClock
) -> None:
    secret, _ = await enrol_totp(app, holder, clock().timestamp())
    clock.advance(STEP)
    for destination in (holder.phone, holder.email):  # the "TOTP turned on" notices
        await app.next_message_text(destination)
    await five_wrong_resets(app, holder)
    await five_wrong_resets(app, holder)

    ticket = (await app.sign_in(holder.by_phone)).second_factor_required.ticket
    signed_in = await app.public.CompleteSignIn(
        pb.CompleteSignInRequest(
            request_id=request_id(),
            ticket=ticket,
            second_factor=types_pb2.SecondFactor(totp_code=pyotp.TOTP(secret).at(clock())),
        )
    )

    assert signed_in.tokens.access_token


async def test_past_the_limit_of_wrong_reset_codes_even_the_right_one_is_refused(
    app: AuthTestApp, holder: Holder
) -> None:
    await five_wrong_resets(app, holder)
    await five_wrong_resets(app, holder)
    reset_id, code = await strangers_reset(app, holder)

    refusal = await refused(complete_reset(app, reset_id, code))

    assert (refusal.code, refusal.reason) == RATE_LIMITED
    policy = app.app.ctx.rules.code_failure_policy
    record(
        "reset code brute force (SMS)",
        f"3 codes sent to one phone, {2 * TRIES_PER_CODE} wrong tries on the first 2, the right "
        f"code of the third refused: 0 accepted; at most {TRIES_PER_CODE} tries per code "
        f"({app.app.ctx.rules.otp_lifetimes.sms.total_seconds() / 60:g} min of life), "
        f"{policy.limit} per account per {policy.window.total_seconds() / 3600:g} h",
    )


async def test_a_strangers_wrong_self_freeze_codes_leave_the_owners_self_freeze_working(
    app: AuthTestApp, holder: Holder
) -> None:
    for _ in range(2):
        started = await when_allowed(lambda: start_self_freeze(app, holder.by_phone))
        code = await app.next_code(holder.phone)
        for _ in range(TRIES_PER_CODE):
            await refused(confirm_self_freeze(app, started.challenge_id, wrong_code(code)))
    # While the self-freeze ledger cools down, a stranger's code gets one guess, not five.
    started = await when_allowed(lambda: start_self_freeze(app, holder.by_phone))
    code = await app.next_code(holder.phone)
    first_guess = await refused(confirm_self_freeze(app, started.challenge_id, wrong_code(code)))
    second_guess = await refused(confirm_self_freeze(app, started.challenge_id, code))

    frozen = await owners_self_freeze(app, holder)

    assert (first_guess.code, first_guess.reason) == CODE_INVALID
    assert (second_guess.code, second_guess.reason) == RATE_LIMITED
    assert frozen.HasField("frozen_at")
