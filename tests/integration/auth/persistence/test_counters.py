"""Code failure ledgers, sign-in failure counters and used grants on SQLite and PostgreSQL,
including concurrent requests: a guess counted by one must not be lost to another."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import text

from services.auth.adapters.uow import SqlAuthUnitOfWork
from services.auth.domain.ledger import (
    DEFAULT_CODE_FAILURE_POLICY,
    CodeFailureLedger,
    purpose_ledger_subject,
)
from services.auth.domain.proofs import ChallengePurpose
from services.auth.domain.throttling import CounterScope, FailureCounter
from tests.integration.auth.persistence.builders import SHANGHAI, START, NewUnitOfWork
from walletcore.db import dialect_name

_T = TypeVar("_T")


async def race(
    new_uow: NewUnitOfWork, work: Callable[[SqlAuthUnitOfWork], Awaitable[_T]]
) -> list[_T]:
    """Runs `work` in two units of work that start it at the same moment, each committing."""
    both_open = asyncio.Barrier(2)

    async def one() -> _T:
        async with new_uow() as uow:
            if dialect_name(uow.session) == "postgresql":
                # Both connections are ready, so neither transaction gets a head start. (On
                # SQLite the second would wait here for the first's write lock, forever.)
                await uow.session.execute(text("SELECT 1"))
            await both_open.wait()
            result = await work(uow)
            await uow.commit()
            return result

    return list(await asyncio.gather(one(), one()))


async def test_a_new_subjects_ledger_is_empty_and_comes_back_as_saved(
    new_uow: NewUnitOfWork,
) -> None:
    async with new_uow() as uow:
        fresh = await uow.code_failure_ledgers.get_or_new("acc-1")
        fresh.record_failure(START.astimezone(SHANGHAI))
        fresh.record_failure(START + timedelta(minutes=1))
        fresh.locked_until = START + timedelta(hours=1)
        await uow.code_failure_ledgers.save(fresh)
        await uow.commit()

    async with new_uow() as uow:
        loaded = await uow.code_failure_ledgers.get_or_new("acc-1")
        other = await uow.code_failure_ledgers.get_or_new("acc-2")

    assert loaded == fresh
    assert other == CodeFailureLedger("acc-2", policy=DEFAULT_CODE_FAILURE_POLICY)


async def test_the_longest_scoped_subject_fits(new_uow: NewUnitOfWork) -> None:
    """A destination ref (a keyed hash under the longest key id) under the longest purpose."""
    destination_ref = f"{'k' * 32}:{'0' * 64}"
    longest = max(
        (
            purpose_ledger_subject(purpose, destination_ref)
            for purpose in ChallengePurpose
            if purpose is not ChallengePurpose.SIGN_IN
        ),
        key=len,
    )
    async with new_uow() as uow:
        ledger = await uow.code_failure_ledgers.get_or_new(longest)
        ledger.record_failure(START)
        await uow.code_failure_ledgers.save(ledger)
        await uow.commit()

    async with new_uow() as uow:
        assert (await uow.code_failure_ledgers.get_or_new(longest)).recent_failures == [START]


@pytest.mark.parametrize("earlier_failures", [0, 1], ids=["new subject", "known subject"])
async def test_concurrent_wrong_codes_of_one_subject_are_all_counted(
    new_uow: NewUnitOfWork, earlier_failures: int
) -> None:
    if earlier_failures:
        async with new_uow() as uow:
            await uow.code_failure_ledgers.save(CodeFailureLedger("acc-1", [START]))
            await uow.commit()

    async def wrong_code(uow: SqlAuthUnitOfWork) -> None:
        ledger = await uow.code_failure_ledgers.get_or_new("acc-1")
        ledger.record_failure(START + timedelta(minutes=1))
        await uow.code_failure_ledgers.save(ledger)

    await race(new_uow, wrong_code)

    async with new_uow() as uow:
        ledger = await uow.code_failure_ledgers.get_or_new("acc-1")
    assert len(ledger.recent_failures) == earlier_failures + 2


async def test_a_failure_counter_comes_back_as_saved(new_uow: NewUnitOfWork) -> None:
    async with new_uow() as uow:
        fresh = await uow.failure_counters.get_or_new(CounterScope.ACCOUNT, "acc-1")
        assert fresh == FailureCounter.for_account("acc-1")
        fresh.consecutive_failures = 4
        fresh.last_failure_at = START
        await uow.failure_counters.save(fresh)
        # Saved without being read first: inserted.
        pair = FailureCounter.for_pair("acc-1", "203.0.113.7")
        pair.last_success_at = START - timedelta(days=1)
        await uow.failure_counters.save(pair)
        await uow.commit()

    async with new_uow() as uow:
        assert await uow.failure_counters.get_or_new(CounterScope.ACCOUNT, "acc-1") == fresh
        assert await uow.failure_counters.get_or_new(pair.scope, pair.key) == pair


@pytest.mark.parametrize("earlier_failures", [0, 1], ids=["new address", "known address"])
async def test_concurrent_failed_sign_ins_from_one_address_are_all_counted(
    new_uow: NewUnitOfWork, earlier_failures: int
) -> None:
    if earlier_failures:
        async with new_uow() as uow:
            await uow.failure_counters.save(
                FailureCounter(CounterScope.ADDRESS, "203.0.113.7", earlier_failures)
            )
            await uow.commit()

    async def failed_sign_in(uow: SqlAuthUnitOfWork) -> None:
        counter = await uow.failure_counters.get_or_new(CounterScope.ADDRESS, "203.0.113.7")
        counter.consecutive_failures += 1
        await uow.failure_counters.save(counter)

    await race(new_uow, failed_sign_in)

    async with new_uow() as uow:
        counter = await uow.failure_counters.get_or_new(CounterScope.ADDRESS, "203.0.113.7")
    assert counter.consecutive_failures == earlier_failures + 2


async def test_a_grant_is_consumed_once(new_uow: NewUnitOfWork) -> None:
    expires = START + timedelta(minutes=5)
    async with new_uow() as uow:
        first = await uow.used_grants.consume("jti-1", expires)
        again_in_same_transaction = await uow.used_grants.consume("jti-1", expires)
        await uow.commit()
    async with new_uow() as uow:
        again_later = await uow.used_grants.consume("jti-1", expires)
        another = await uow.used_grants.consume("jti-2", expires)

    assert (first, again_in_same_transaction, again_later, another) == (True, False, False, True)


async def test_of_two_concurrent_uses_of_a_grant_exactly_one_succeeds(
    new_uow: NewUnitOfWork,
) -> None:
    async def use(uow: SqlAuthUnitOfWork) -> bool:
        return await uow.used_grants.consume("jti-1", START + timedelta(minutes=5))

    assert sorted(await race(new_uow, use)) == [False, True]
