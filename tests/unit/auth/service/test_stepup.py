"""Step-up: a code by SMS or e-mail, a TOTP code or a recovery code buys a signed grant for one
purpose and object; methods follow the account's factors; a frozen account passes none."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.auth.domain.account import Account
from services.auth.domain.contacts import Phone
from services.auth.domain.events import SecurityEventType
from services.auth.domain.proofs import FactorMethod
from services.auth.domain.stepup import StepUpPurpose
from services.auth.domain.totp import TotpFactor, TotpState
from services.auth.service import codes, stepup
from services.auth.service.context import AuthContext
from services.auth.service.fakes import FakeClock, FakeStore, FakeTransactions, fake_context
from services.auth.service.ports import AuthUnitOfWork
from tests.unit.auth.service.recovery_helpers import (
    EMAIL,
    ORIGIN,
    PHONE,
    add_account,
    enable_totp,
    freeze_by_officer,
    refusal,
)
from walletcore.errors import FailedPrecondition, InvalidArgument, NotFound

OTHER_PHONE = Phone("+8613700137000")
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
# RFC 6238 appendix B, SHA-1 column; authenticator apps show the last 6 of the 8 digits.
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


def starting(
    ctx: AuthContext,
    method: FactorMethod,
    purpose: StepUpPurpose = StepUpPurpose.UNBIND_CARD,
    object_id: str = "card-1",
    account_id: str = "acc-1",
) -> Callable[[AuthUnitOfWork], Awaitable[stepup.StepUpStarted]]:
    async def work(uow: AuthUnitOfWork) -> stepup.StepUpStarted:
        return await stepup.start_step_up(
            uow, ctx, account_id=account_id, purpose=purpose, object_id=object_id, method=method
        )

    return work


def completing(
    ctx: AuthContext, challenge_id: str, code: str, account_id: str = "acc-1"
) -> Callable[[AuthUnitOfWork], Awaitable[stepup.IssuedGrant]]:
    async def work(uow: AuthUnitOfWork) -> stepup.IssuedGrant:
        return await stepup.complete_step_up(
            uow, ctx, account_id=account_id, challenge_id=challenge_id, code=code, origin=ORIGIN
        )

    return work


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_an_sms_code_buys_a_grant_bound_to_the_purpose_and_object(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await tx.run(starting(ctx, FactorMethod.SMS))
    assert started.masked_destination == PHONE.masked()

    grant = await tx.run(completing(ctx, started.challenge_id, store.notifier.last_code(PHONE)))

    verified = await ctx.grants.verify(
        grant.token, account_id="acc-1", purpose="UNBIND_CARD", object_id="card-1"
    )
    assert verified.expires_at == grant.expires_at == clock() + timedelta(minutes=5)
    assert (grant.purpose, grant.object_id) == (StepUpPurpose.UNBIND_CARD, "card-1")
    assert SecurityEventType.STEP_UP_GRANTED in [e.type for e in store.events_of("acc-1")]


async def test_a_contact_change_grant_binds_the_new_phone_and_asks_the_old_one(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await tx.run(
        starting(ctx, FactorMethod.SMS, StepUpPurpose.CHANGE_PHONE, "+86 137 0013 7000")
    )

    grant = await tx.run(completing(ctx, started.challenge_id, store.notifier.last_code(PHONE)))

    assert grant.object_id == "+8613700137000"


async def test_a_method_the_purpose_does_not_allow_is_refused_before_anything_is_sent(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)

    error = await refusal(
        tx, starting(ctx, FactorMethod.EMAIL, StepUpPurpose.CHANGE_PHONE, "+8613700137000")
    )

    assert isinstance(error, FailedPrecondition)
    assert error.reason == "STEP_UP_METHOD_UNAVAILABLE"
    assert store.notifier.codes == []


async def test_a_purpose_with_an_object_needs_one(tx: FakeTransactions, ctx: AuthContext) -> None:
    await add_account(tx, ctx)

    error = await refusal(tx, starting(ctx, FactorMethod.SMS, object_id=""))

    assert isinstance(error, InvalidArgument)
    assert error.reason == "OBJECT_REQUIRED"
    assert [v.field for v in error.violations] == ["object_id"]


async def test_with_totp_on_an_sms_code_is_not_enough(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    await add_account(tx, ctx)
    await enable_totp(tx, ctx, clock)

    error = await refusal(tx, starting(ctx, FactorMethod.SMS))

    assert error.reason == "STEP_UP_METHOD_UNAVAILABLE"


async def test_a_totp_code_is_accepted_once(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    await add_account(tx, ctx)
    factor = await enable_totp(tx, ctx, clock)
    code = factor.code_now(clock)
    first = await tx.run(starting(ctx, FactorMethod.TOTP, StepUpPurpose.DISABLE_TOTP, ""))
    second = await tx.run(starting(ctx, FactorMethod.TOTP, StepUpPurpose.DISABLE_TOTP, ""))
    assert first.masked_destination == ""

    grant = await tx.run(completing(ctx, first.challenge_id, code))
    replay = await refusal(tx, completing(ctx, second.challenge_id, code))

    await ctx.grants.verify(grant.token, account_id="acc-1", purpose="DISABLE_TOTP")
    assert (replay.reason, type(replay)) == ("CODE_INVALID", InvalidArgument)


async def test_a_wrong_authenticator_code_is_reported_on_the_code_field(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    await add_account(tx, ctx)
    factor = await enable_totp(tx, ctx, clock)
    by_totp = await tx.run(starting(ctx, FactorMethod.TOTP))
    by_recovery = await tx.run(starting(ctx, FactorMethod.RECOVERY_CODE))

    for challenge, code in [
        (by_totp, wrong(factor.code_now(clock))),
        (by_recovery, "not a recovery code"),
        (by_recovery, "AAAA-AAAA-AAAA-AAAA"),
    ]:
        error = await refusal(tx, completing(ctx, challenge.challenge_id, code))
        assert isinstance(error, InvalidArgument)
        assert error.reason == "CODE_INVALID"
        assert [v.field for v in error.violations] == ["code"]


async def test_a_recovery_code_buys_one_grant(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    factor = await enable_totp(tx, ctx, clock)
    first = await tx.run(starting(ctx, FactorMethod.RECOVERY_CODE))
    second = await tx.run(starting(ctx, FactorMethod.RECOVERY_CODE))

    await tx.run(completing(ctx, first.challenge_id, factor.recovery_codes[3].lower()))
    reuse = await refusal(tx, completing(ctx, second.challenge_id, factor.recovery_codes[3]))

    assert (reuse.reason, type(reuse)) == ("CODE_INVALID", InvalidArgument)
    used = [e for e in store.events_of("acc-1") if e.type is SecurityEventType.RECOVERY_CODE_USED]
    assert used[0].details["remaining"] == "9"
    for contact in (PHONE, EMAIL):
        notified = [n.event.type for n in store.notifier.notices_to(contact)]
        assert SecurityEventType.RECOVERY_CODE_USED in notified


async def test_another_accounts_challenge_is_not_found(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    await add_account(tx, ctx, OTHER_PHONE, account_id="acc-2")
    started = await tx.run(starting(ctx, FactorMethod.SMS, account_id="acc-2"))

    error = await refusal(
        tx, completing(ctx, started.challenge_id, store.notifier.last_code(OTHER_PHONE), "acc-1")
    )

    assert isinstance(error, NotFound)
    assert error.reason == "CHALLENGE_NOT_FOUND"


async def test_a_completed_challenge_gives_no_second_grant(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await tx.run(starting(ctx, FactorMethod.SMS))
    code = store.notifier.last_code(PHONE)
    await tx.run(completing(ctx, started.challenge_id, code))

    error = await refusal(tx, completing(ctx, started.challenge_id, code))

    assert error.reason == "CODE_EXPIRED"


@pytest.mark.parametrize("method", [FactorMethod.SMS, FactorMethod.TOTP])
async def test_an_expired_challenge_is_refused(
    tx: FakeTransactions,
    ctx: AuthContext,
    clock: FakeClock,
    store: FakeStore,
    method: FactorMethod,
) -> None:
    await add_account(tx, ctx)
    factor = await enable_totp(tx, ctx, clock) if method is FactorMethod.TOTP else None
    started = await tx.run(starting(ctx, method))
    clock.advance(started.expires_at - clock())
    code = factor.code_now(clock) if factor else store.notifier.last_code(PHONE)

    error = await refusal(tx, completing(ctx, started.challenge_id, code))

    assert error.reason == "CODE_EXPIRED"


async def test_five_wrong_codes_end_the_challenge_even_for_the_right_code(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await tx.run(starting(ctx, FactorMethod.SMS))
    code = store.notifier.last_code(PHONE)
    reasons = [
        (await refusal(tx, completing(ctx, started.challenge_id, wrong(code)))).reason
        for _ in range(5)
    ]

    error = await refusal(tx, completing(ctx, started.challenge_id, code))

    assert reasons == ["CODE_INVALID"] * 4 + ["TOO_MANY_ATTEMPTS"]
    assert error.reason == "TOO_MANY_ATTEMPTS"


async def test_a_frozen_account_starts_no_step_up(tx: FakeTransactions, ctx: AuthContext) -> None:
    await add_account(tx, ctx)
    await freeze_by_officer(tx, ctx)

    error = await refusal(tx, starting(ctx, FactorMethod.SMS))

    assert error.reason == "ACCOUNT_FROZEN"


async def test_a_step_up_started_before_a_freeze_cannot_complete(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await tx.run(starting(ctx, FactorMethod.SMS))
    await freeze_by_officer(tx, ctx)

    error = await refusal(
        tx, completing(ctx, started.challenge_id, store.notifier.last_code(PHONE))
    )

    assert error.reason == "ACCOUNT_FROZEN"


async def add_account_with_rfc_secret(tx: FakeTransactions, ctx: AuthContext) -> None:
    account: Account = await add_account(tx, ctx)
    account.totp = TotpFactor(
        id="factor-1",
        account_id=account.id,
        encrypted_secret=codes.encrypt_totp_secret(ctx, account.id, RFC_SECRET),
        created_at=ctx.clock(),
        state=TotpState.ACTIVE,
        confirmed_at=ctx.clock(),
    )

    async def work(uow: AuthUnitOfWork) -> None:
        await uow.accounts.save(account)

    await tx.run(work)


@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
async def test_totp_step_up_accepts_the_rfc6238_test_vectors(
    tx: FakeTransactions, unix_time: int, expected: str
) -> None:
    ctx = fake_context(FakeClock(datetime.fromtimestamp(unix_time, UTC)))
    await add_account_with_rfc_secret(tx, ctx)
    started = await tx.run(starting(ctx, FactorMethod.TOTP, StepUpPurpose.DISABLE_TOTP, ""))

    grant = await tx.run(completing(ctx, started.challenge_id, expected[-6:]))

    assert grant.purpose is StepUpPurpose.DISABLE_TOTP
