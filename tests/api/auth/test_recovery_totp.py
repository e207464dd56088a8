"""TOTP through real gRPC calls, every code computed by pyotp from the secret alone: enrolment,
sign-in with the authenticator, a replayed or reused code answered, recorded and counted as a
wrong one, recovery codes used once, a reset that still
needs the second factor, and the grant-guarded changes (each grant works once).

The app runs on a clock the test moves, so each code belongs to the 30-second step the test
chose and a replay is a replay, whatever the wall clock does meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

import grpc
import pyotp
import pytest

from services.auth.service.fakes import FakeClock
from tests.api.auth.harness import AuthTestApp, StartAuth, request_id
from tests.api.auth.recovery_helpers import (
    SMS,
    Holder,
    complete_reset,
    enrol_totp,
    new_holder,
    refused,
    start_reset,
)
from tests.support.figures import record
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from walletcore.clock import utc_now
from walletcore.grpc.status import error_details

STEP = timedelta(seconds=30)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc_now())


@pytest.fixture
async def app(start_auth: StartAuth, clock: FakeClock) -> AsyncIterator[AuthTestApp]:
    async with start_auth(clock=clock) as started:
        yield started


@pytest.fixture
async def holder(app: AuthTestApp) -> Holder:
    return await new_holder(app)


@pytest.fixture
async def secret_and_codes(
    app: AuthTestApp, holder: Holder, clock: FakeClock
) -> tuple[str, list[str]]:
    enrolled = await enrol_totp(app, holder, clock().timestamp())
    clock.advance(STEP)
    # Read the "TOTP turned on" notices, so each destination's next message is the test's.
    for destination in (holder.phone, holder.email):
        await app.next_message_text(destination)
    return enrolled


def authenticator_code(secret: str, clock: FakeClock) -> str:
    return str(pyotp.TOTP(secret).at(clock()))


async def ticket_for(app: AuthTestApp, holder: Holder) -> str:
    reply = await app.sign_in(holder.by_phone)
    assert reply.WhichOneof("result") == "second_factor_required"
    return reply.second_factor_required.ticket


async def complete_sign_in(
    app: AuthTestApp, ticket: str, second_factor: types_pb2.SecondFactor
) -> pb.CompleteSignInResponse:
    return await app.public.CompleteSignIn(
        pb.CompleteSignInRequest(
            request_id=request_id(), ticket=ticket, second_factor=second_factor
        )
    )


async def grant_by_totp(
    app: AuthTestApp, holder: Holder, purpose: types_pb2.StepUpPurpose.ValueType, code: str
) -> str:
    started = await app.public.StartStepUp(
        pb.StartStepUpRequest(
            request_id=request_id(), purpose=purpose, method=types_pb2.STEP_UP_METHOD_TOTP
        ),
        metadata=holder.metadata,
    )
    completed = await app.public.CompleteStepUp(
        pb.CompleteStepUpRequest(
            request_id=request_id(), challenge_id=started.challenge_id, code=code
        ),
        metadata=holder.metadata,
    )
    return completed.grant.token


async def test_enrolment_returns_an_otpauth_uri_and_ten_recovery_codes(
    app: AuthTestApp, holder: Holder, clock: FakeClock
) -> None:
    started = await app.public.StartTotpEnrollment(
        pb.StartTotpEnrollmentRequest(request_id=request_id()), metadata=holder.metadata
    )
    confirmed = await app.public.ConfirmTotpEnrollment(
        pb.ConfirmTotpEnrollmentRequest(
            request_id=request_id(),
            enrollment_id=started.enrollment_id,
            code=authenticator_code(started.secret, clock),
        ),
        metadata=holder.metadata,
    )

    assert started.otpauth_uri.startswith("otpauth://totp/")
    assert f"secret={started.secret}" in started.otpauth_uri
    assert len(set(confirmed.recovery_codes)) == 10
    account = await app.public.GetAccount(pb.GetAccountRequest(), metadata=holder.metadata)
    assert account.account.totp_enabled
    assert account.account.recovery_codes_remaining == 10


def not_an_authenticator_code(secret: str, clock: FakeClock) -> str:
    """A well-formed code that no step of the drift window accepts now."""
    window = {str(pyotp.TOTP(secret).at(clock() + STEP * offset)) for offset in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in window)


async def sign_in_failures(app: AuthTestApp, holder: Holder) -> int:
    """How many SIGN_IN_FAILED events the holder's own timeline shows."""
    listed = await app.public.ListSecurityEvents(
        pb.ListSecurityEventsRequest(types=[types_pb2.SECURITY_EVENT_TYPE_SIGN_IN_FAILED]),
        metadata=holder.metadata,
    )
    return len(listed.events)


async def test_a_replayed_totp_code_is_answered_recorded_and_counted_as_a_wrong_one(
    app: AuthTestApp,
    holder: Holder,
    clock: FakeClock,
    secret_and_codes: tuple[str, list[str]],
) -> None:
    secret, _ = secret_and_codes
    code = authenticator_code(secret, clock)
    signed_in = await complete_sign_in(
        app, await ticket_for(app, holder), types_pb2.SecondFactor(totp_code=code)
    )
    ticket = await ticket_for(app, holder)
    wrong = types_pb2.SecondFactor(totp_code=not_an_authenticator_code(secret, clock))
    limit = app.app.ctx.rules.code_failure_policy.limit

    wrong_answers = [await refused(complete_sign_in(app, ticket, wrong)) for _ in range(limit - 1)]
    replay = await refused(complete_sign_in(app, ticket, types_pb2.SecondFactor(totp_code=code)))
    clock.advance(STEP)
    fresh = types_pb2.SecondFactor(totp_code=authenticator_code(secret, clock))
    after_limit = await refused(complete_sign_in(app, ticket, fresh))

    assert signed_in.tokens.access_token
    assert (replay.code, replay.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID")
    assert replay == wrong_answers[0]
    assert await sign_in_failures(app, holder) == limit
    # The replay was the limit's last wrong code: even the right one now waits.
    assert (after_limit.code, after_limit.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
    )


async def test_a_reused_recovery_code_is_answered_recorded_and_counted_as_a_wrong_one(
    app: AuthTestApp, holder: Holder, secret_and_codes: tuple[str, list[str]]
) -> None:
    _, recovery_codes = secret_and_codes
    used = types_pb2.SecondFactor(recovery_code=recovery_codes[0])
    signed_in = await complete_sign_in(app, await ticket_for(app, holder), used)
    ticket = await ticket_for(app, holder)
    wrong = types_pb2.SecondFactor(recovery_code="0000-0000-0000-0000")
    limit = app.app.ctx.rules.code_failure_policy.limit

    wrong_answers = [await refused(complete_sign_in(app, ticket, wrong)) for _ in range(limit - 1)]
    reuse = await refused(complete_sign_in(app, ticket, used))
    unused = types_pb2.SecondFactor(recovery_code=recovery_codes[1])
    after_limit = await refused(complete_sign_in(app, ticket, unused))

    assert signed_in.tokens.access_token
    assert (reuse.code, reuse.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID")
    assert reuse == wrong_answers[0]
    assert await sign_in_failures(app, holder) == limit
    assert (after_limit.code, after_limit.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
    )


async def test_a_reset_of_an_account_with_totp_needs_the_authenticator_too(
    app: AuthTestApp,
    holder: Holder,
    clock: FakeClock,
    secret_and_codes: tuple[str, list[str]],
) -> None:
    secret, _ = secret_and_codes
    started = await start_reset(app, holder.by_phone, SMS)
    code = await app.next_code(holder.phone)

    without = await refused(complete_reset(app, started.reset_id, code))
    await complete_reset(
        app,
        started.reset_id,
        code,
        second_factor=types_pb2.SecondFactor(totp_code=authenticator_code(secret, clock)),
    )

    assert (without.code, without.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "SECOND_FACTOR_REQUIRED",
    )


async def test_a_grant_disables_totp_once(
    app: AuthTestApp,
    holder: Holder,
    clock: FakeClock,
    secret_and_codes: tuple[str, list[str]],
) -> None:
    secret, _ = secret_and_codes
    grant = await grant_by_totp(
        app, holder, types_pb2.STEP_UP_PURPOSE_DISABLE_TOTP, authenticator_code(secret, clock)
    )

    await app.public.DisableTotp(
        pb.DisableTotpRequest(request_id=request_id(), grant=grant), metadata=holder.metadata
    )
    reuse = await refused(
        app.public.DisableTotp(
            pb.DisableTotpRequest(request_id=request_id(), grant=grant),
            metadata=holder.metadata,
        )
    )

    assert (await app.sign_in(holder.by_phone)).HasField("tokens")
    assert (reuse.code, reuse.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "GRANT_ALREADY_USED",
    )


async def test_a_regeneration_grant_replaces_the_recovery_codes_and_nothing_else(
    app: AuthTestApp,
    holder: Holder,
    clock: FakeClock,
    secret_and_codes: tuple[str, list[str]],
) -> None:
    secret, old_codes = secret_and_codes
    grant = await grant_by_totp(
        app,
        holder,
        types_pb2.STEP_UP_PURPOSE_REGENERATE_RECOVERY_CODES,
        authenticator_code(secret, clock),
    )

    other_purpose = await refused(
        app.public.DisableTotp(
            pb.DisableTotpRequest(request_id=request_id(), grant=grant), metadata=holder.metadata
        )
    )
    regenerated = await app.public.RegenerateRecoveryCodes(
        pb.RegenerateRecoveryCodesRequest(request_id=request_id(), grant=grant),
        metadata=holder.metadata,
    )
    old = await refused(
        complete_sign_in(
            app,
            await ticket_for(app, holder),
            types_pb2.SecondFactor(recovery_code=old_codes[0]),
        )
    )
    new = await complete_sign_in(
        app,
        await ticket_for(app, holder),
        types_pb2.SecondFactor(recovery_code=regenerated.recovery_codes[0]),
    )

    assert (other_purpose.code, other_purpose.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "GRANT_INVALID",
    )
    assert (old.code, old.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID")
    assert new.tokens.access_token


def guesses(secret: str, clock: FakeClock, count: int) -> list[str]:
    """The first `count` codes from 000000 up that no step of the drift window accepts now: an
    attacker trying codes in order, less the ones that would be a lucky hit."""
    window = {str(pyotp.TOTP(secret).at(clock() + STEP * offset)) for offset in (-1, 0, 1)}
    return [code for code in (f"{n:06d}" for n in range(count + 3)) if code not in window][:count]


# The ledger's counting under concurrency is tested on PostgreSQL in
# tests/integration/auth/persistence/test_counters.py; here one backend shows the figures.
@pytest.mark.parametrize("auth_backend", ["sqlite"], indirect=True)
async def test_brute_forcing_the_authenticator_code_is_checked_only_up_to_the_limit(
    app: AuthTestApp,
    holder: Holder,
    clock: FakeClock,
    secret_and_codes: tuple[str, list[str]],
) -> None:
    """A thief with the password tries codes in order on one pending sign-in: the ledger checks
    `limit` of them, refuses the rest unchecked, and then refuses even the right code."""
    secret, _ = secret_and_codes
    policy = app.app.ctx.rules.code_failure_policy
    ticket = await ticket_for(app, holder)
    tried = guesses(secret, clock, 3 * policy.limit)

    answers = [
        await refused(complete_sign_in(app, ticket, types_pb2.SecondFactor(totp_code=code)))
        for code in tried
    ]
    right = types_pb2.SecondFactor(totp_code=authenticator_code(secret, clock))
    right_after = await refused(complete_sign_in(app, ticket, right))

    checked = [a for a in answers if a.reason == "CODE_INVALID"]
    unchecked = [a for a in answers if a.reason == "RATE_LIMITED"]
    assert len(checked) == policy.limit
    assert len(unchecked) == len(tried) - policy.limit
    assert all(a.code is grpc.StatusCode.INVALID_ARGUMENT for a in checked)
    assert (right_after.code, right_after.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
    )
    record(
        "TOTP brute force (one pending sign-in)",
        f"{len(tried)} wrong codes tried, {len(checked)} checked, 0 accepted, the right code "
        f"after them refused; at most {policy.limit} guesses per account per "
        f"{policy.window.total_seconds() / 3600:g} h, {3 * STEP.seconds} s of code life "
        f"(3 steps) each",
    )


@pytest.mark.parametrize("auth_backend", ["postgresql"], indirect=True)
async def test_two_concurrent_uses_of_one_grant_exactly_one_wins_and_a_replay_loses(
    app: AuthTestApp,
    holder: Holder,
    clock: FakeClock,
    secret_and_codes: tuple[str, list[str]],
) -> None:
    """On PostgreSQL, where the two calls really run at once: one grant to regenerate the
    recovery codes, presented twice together (as two requests, not a retry) and once after."""
    secret, _ = secret_and_codes
    grant = await grant_by_totp(
        app,
        holder,
        types_pb2.STEP_UP_PURPOSE_REGENERATE_RECOVERY_CODES,
        authenticator_code(secret, clock),
    )

    def regenerate() -> Awaitable[pb.RegenerateRecoveryCodesResponse]:
        return app.public.RegenerateRecoveryCodes(
            pb.RegenerateRecoveryCodesRequest(request_id=request_id(), grant=grant),
            metadata=holder.metadata,
        )

    raced = await asyncio.gather(regenerate(), regenerate(), return_exceptions=True)
    replay = await refused(regenerate())

    won = [r for r in raced if isinstance(r, pb.RegenerateRecoveryCodesResponse)]
    lost = [error_details(r) for r in raced if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert [(r.code, r.reason) for r in lost] == [
        (grpc.StatusCode.PERMISSION_DENIED, "GRANT_ALREADY_USED")
    ]
    assert (replay.code, replay.reason) == (lost[0].code, lost[0].reason)
    record(
        "grant race and replay (PostgreSQL)",
        "2 concurrent uses of one grant: 1 won, 1 GRANT_ALREADY_USED; a replay after: refused",
    )
