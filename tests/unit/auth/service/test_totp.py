"""TOTP enrolment with codes computed independently by pyotp, recovery codes shown once, and the
grant-guarded changes: disabling TOTP and regenerating recovery codes, each grant used once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

from services.auth.domain.events import SecurityEventType
from services.auth.domain.ledger import purpose_ledger_subject
from services.auth.domain.proofs import ChallengePurpose
from services.auth.domain.stepup import StepUpPurpose
from services.auth.service import codes, totp
from services.auth.service.context import AuthContext
from services.auth.service.fakes import FakeClock, FakeStore, FakeTransactions
from services.auth.service.ports import AuthUnitOfWork
from tests.unit.auth.service.recovery_helpers import (
    EMAIL,
    ORIGIN,
    PHONE,
    TOTP_STEP,
    add_account,
    enable_totp,
    refusal,
)
from walletcore.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied


@pytest.fixture
async def account(tx: FakeTransactions, ctx: AuthContext) -> None:
    await add_account(tx, ctx)


async def start(tx: FakeTransactions, ctx: AuthContext) -> totp.TotpEnrollmentStarted:
    return await tx.run(lambda uow: totp.start_totp_enrollment(uow, ctx, account_id="acc-1"))


def confirming(
    ctx: AuthContext, enrollment_id: str, code: str
) -> Callable[[AuthUnitOfWork], Awaitable[list[str]]]:
    async def work(uow: AuthUnitOfWork) -> list[str]:
        return await totp.confirm_totp_enrollment(
            uow, ctx, account_id="acc-1", enrollment_id=enrollment_id, code=code, origin=ORIGIN
        )

    return work


def grant_for(ctx: AuthContext, purpose: StepUpPurpose, account_id: str = "acc-1") -> str:
    """A grant as CompleteStepUp signs it."""
    return ctx.tokens.step_up_grant(account_id=account_id, purpose=purpose.value).token


def disabling(ctx: AuthContext, grant: str) -> Callable[[AuthUnitOfWork], Awaitable[None]]:
    async def work(uow: AuthUnitOfWork) -> None:
        await totp.disable_totp(uow, ctx, account_id="acc-1", grant=grant, origin=ORIGIN)

    return work


def regenerating(ctx: AuthContext, grant: str) -> Callable[[AuthUnitOfWork], Awaitable[list[str]]]:
    async def work(uow: AuthUnitOfWork) -> list[str]:
        return await totp.regenerate_recovery_codes(
            uow, ctx, account_id="acc-1", grant=grant, origin=ORIGIN
        )

    return work


def recovery_code_works(ctx: AuthContext, store: FakeStore, code: str) -> bool:
    codes_ = store.accounts["acc-1"].recovery_codes
    canonical = code.replace("-", "")
    return codes_ is not None and any(
        ctx.secrets.verify(canonical, stored.code_hash) and stored.used_at is None
        for stored in codes_.codes
    )


@pytest.mark.usefixtures("account")
async def test_enrolment_gives_a_160_bit_secret_and_its_otpauth_uri(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    started = await start(tx, ctx)

    uri = urlparse(started.otpauth_uri)
    query = parse_qs(uri.query)
    assert uri.scheme == "otpauth"
    assert uri.netloc == "totp"
    assert query["secret"] == [started.secret]
    assert query["issuer"] == [ctx.rules.totp_issuer]
    assert PHONE.e164 not in started.otpauth_uri
    assert len(started.secret) * 5 == 160
    assert started.expires_at == clock() + timedelta(minutes=10)


@pytest.mark.usefixtures("account")
async def test_the_secret_is_stored_encrypted_for_this_account_only(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    started = await start(tx, ctx)

    stored = store.accounts["acc-1"].totp
    assert stored is not None
    assert started.secret.encode() not in stored.encrypted_secret
    assert codes.decrypt_totp_secret(ctx, "acc-1", stored.encrypted_secret) == started.secret
    with pytest.raises(FailedPrecondition):
        codes.decrypt_totp_secret(ctx, "acc-2", stored.encrypted_secret)


@pytest.mark.usefixtures("account")
async def test_the_first_code_enables_totp_and_returns_ten_distinct_recovery_codes(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    started = await start(tx, ctx)

    recovery_codes = await tx.run(
        confirming(ctx, started.enrollment_id, pyotp.TOTP(started.secret).at(clock()))
    )

    assert store.accounts["acc-1"].totp_active
    assert len(set(recovery_codes)) == 10
    assert all(len(code.replace("-", "")) * 5 >= 64 for code in recovery_codes)
    assert all(recovery_code_works(ctx, store, code) for code in recovery_codes)


@pytest.mark.usefixtures("account")
async def test_enabling_totp_is_recorded_and_notified_to_every_contact(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await enable_totp(tx, ctx, clock)

    assert SecurityEventType.TOTP_ENABLED in [e.type for e in store.events_of("acc-1")]
    for contact in (PHONE, EMAIL):
        notices = store.notifier.notices_to(contact)
        assert [n.event.type for n in notices] == [SecurityEventType.TOTP_ENABLED]


@pytest.mark.usefixtures("account")
async def test_a_wrong_first_code_counts_and_is_committed(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    started = await start(tx, ctx)
    right = pyotp.TOTP(started.secret)
    wrong = next(
        f"{n:06d}"
        for n in range(1_000_000)
        if f"{n:06d}" not in {right.at(clock() + d * TOTP_STEP) for d in (-1, 0, 1)}
    )

    error = await refusal(tx, confirming(ctx, started.enrollment_id, wrong))

    assert isinstance(error, InvalidArgument)
    assert (error.reason, error.metadata) == ("CODE_INVALID", {"attempts_left": "4"})
    assert (
        len(
            store.code_failure_ledgers[
                purpose_ledger_subject(ChallengePurpose.TOTP_ENROLLMENT, "acc-1")
            ].recent_failures
        )
        == 1
    )
    assert not store.accounts["acc-1"].totp_active


@pytest.mark.usefixtures("account")
async def test_confirming_another_enrolment_id_is_not_found(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    started = await start(tx, ctx)

    error = await refusal(
        tx, confirming(ctx, "not-this-one", pyotp.TOTP(started.secret).at(clock()))
    )

    assert isinstance(error, NotFound)
    assert error.reason == "ENROLLMENT_NOT_FOUND"


@pytest.mark.usefixtures("account")
async def test_an_enrolment_left_ten_minutes_expires(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    started = await start(tx, ctx)
    clock.advance(timedelta(minutes=10))

    error = await refusal(
        tx, confirming(ctx, started.enrollment_id, pyotp.TOTP(started.secret).at(clock()))
    )

    assert error.reason == "CODE_EXPIRED"


@pytest.mark.usefixtures("account")
async def test_a_second_enrolment_is_refused_while_totp_is_on(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    await enable_totp(tx, ctx, clock)

    error = await refusal(tx, lambda uow: totp.start_totp_enrollment(uow, ctx, account_id="acc-1"))

    assert error.reason == "TOTP_ALREADY_ENABLED"


@pytest.mark.usefixtures("account")
async def test_a_grant_disables_totp_and_deletes_the_recovery_codes(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    factor = await enable_totp(tx, ctx, clock)

    await tx.run(disabling(ctx, grant_for(ctx, StepUpPurpose.DISABLE_TOTP)))

    assert not store.accounts["acc-1"].totp_active
    assert not recovery_code_works(ctx, store, factor.recovery_codes[0])
    assert SecurityEventType.TOTP_DISABLED in [e.type for e in store.events_of("acc-1")]


@pytest.mark.usefixtures("account")
async def test_a_grant_works_once(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await enable_totp(tx, ctx, clock)
    grant = grant_for(ctx, StepUpPurpose.DISABLE_TOTP)
    await tx.run(disabling(ctx, grant))
    await enable_totp(tx, ctx, clock)

    error = await refusal(tx, disabling(ctx, grant))

    assert isinstance(error, PermissionDenied)
    assert error.reason == "GRANT_ALREADY_USED"
    assert store.accounts["acc-1"].totp_active


@pytest.mark.usefixtures("account")
async def test_a_refused_change_leaves_its_grant_unused(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    grant = grant_for(ctx, StepUpPurpose.DISABLE_TOTP)
    error = await refusal(tx, disabling(ctx, grant))
    assert error.reason == "TOTP_NOT_ENABLED"
    await enable_totp(tx, ctx, clock)

    await tx.run(disabling(ctx, grant))

    assert not store.accounts["acc-1"].totp_active


@pytest.mark.parametrize(
    ("grant_purpose", "grant_account", "reason"),
    [
        (StepUpPurpose.REGENERATE_RECOVERY_CODES, "acc-1", "GRANT_INVALID"),
        (StepUpPurpose.DISABLE_TOTP, "acc-2", "GRANT_INVALID"),
    ],
)
@pytest.mark.usefixtures("account")
async def test_a_grant_for_another_purpose_or_account_is_refused(
    tx: FakeTransactions,
    ctx: AuthContext,
    clock: FakeClock,
    store: FakeStore,
    grant_purpose: StepUpPurpose,
    grant_account: str,
    reason: str,
) -> None:
    await enable_totp(tx, ctx, clock)

    error = await refusal(tx, disabling(ctx, grant_for(ctx, grant_purpose, grant_account)))

    assert error.reason == reason
    assert store.accounts["acc-1"].totp_active


@pytest.mark.usefixtures("account")
async def test_an_expired_grant_is_refused(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    await enable_totp(tx, ctx, clock)
    grant = grant_for(ctx, StepUpPurpose.DISABLE_TOTP)
    clock.advance(ctx.rules.grant_lifetime + timedelta(minutes=1))

    error = await refusal(tx, disabling(ctx, grant))

    assert error.reason == "GRANT_EXPIRED"


@pytest.mark.usefixtures("account")
async def test_regenerated_recovery_codes_replace_every_earlier_one(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    factor = await enable_totp(tx, ctx, clock)

    new_codes = await tx.run(
        regenerating(ctx, grant_for(ctx, StepUpPurpose.REGENERATE_RECOVERY_CODES))
    )

    assert len(set(new_codes)) == 10
    assert not set(new_codes) & set(factor.recovery_codes)
    assert not any(recovery_code_works(ctx, store, code) for code in factor.recovery_codes)
    assert all(recovery_code_works(ctx, store, code) for code in new_codes)


@pytest.mark.usefixtures("account")
async def test_a_regeneration_grant_works_once(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await enable_totp(tx, ctx, clock)
    grant = grant_for(ctx, StepUpPurpose.REGENERATE_RECOVERY_CODES)
    first = await tx.run(regenerating(ctx, grant))

    error = await refusal(tx, regenerating(ctx, grant))

    assert error.reason == "GRANT_ALREADY_USED"
    assert all(recovery_code_works(ctx, store, code) for code in first)
