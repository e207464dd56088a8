"""Binding's races with real concurrent transactions on PostgreSQL.

Each race is made deterministic the same way: the transaction that gets ahead finishes its use
case, then holds its commit until the other one is blocked on a lock (pg_stat_activity), so
the two really overlap; a missing lock or unique index lets the second one through (or never
blocks it), and the test fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.binding.adapters import tables
from services.binding.adapters.uow import SqlBindingUnitOfWork
from services.binding.domain.cards import Card, CardStatus
from services.binding.service import cards, holds
from tests.integration.binding.conftest import ACCOUNT, HOLDERS, OTHER, Binding
from tests.integration.binding.test_cards import NUMBER, bind
from tests.integration.locks import wait_until_a_backend_waits_on_a_lock
from walletcore.errors import DomainError

Work = Callable[[SqlBindingUnitOfWork], Awaitable[Any]]
SUCCEEDED = "OK"


@pytest.fixture
def binding_url(postgres_url: str) -> str:
    return postgres_url


async def outcome(run: Awaitable[Any]) -> str:
    try:
        await run
    except DomainError as error:
        return error.reason
    return SUCCEEDED


def holding_the_commit(work: Work, engine: AsyncEngine, ahead: asyncio.Event) -> Work:
    """`work`, then, if no other transaction got ahead, a wait until the other one blocks."""

    async def run(uow: SqlBindingUnitOfWork) -> Any:
        result = await work(uow)
        if not ahead.is_set():
            ahead.set()
            await wait_until_a_backend_waits_on_a_lock(engine)
        return result

    return run


async def race(binding: Binding, engine: AsyncEngine, first: Work, second: Work) -> list[str]:
    """Both start together (each on an open connection), and whichever is ahead commits once
    the other is blocked behind it."""
    both_open = asyncio.Barrier(2)
    ahead = asyncio.Event()

    def started(work: Work) -> Work:
        async def run(uow: SqlBindingUnitOfWork) -> Any:
            await uow.session.execute(text("SELECT 1"))
            await both_open.wait()
            return await holding_the_commit(work, engine, ahead)(uow)

        return run

    return list(
        await asyncio.gather(
            outcome(binding.tx.run(started(first))), outcome(binding.tx.run(started(second)))
        )
    )


async def one_after_the_other(
    binding: Binding, engine: AsyncEngine, first: Work, second: Work
) -> list[str]:
    """`first` runs its use case; `second` starts only then, while `first` holds its locks
    uncommitted, and `first` commits once `second` is blocked."""
    ahead = asyncio.Event()

    async def later() -> str:
        await ahead.wait()
        return await outcome(binding.tx.run(second))

    return list(
        await asyncio.gather(
            outcome(binding.tx.run(holding_the_commit(first, engine, ahead))), later()
        )
    )


def binding_of(binding: Binding, account_id: str) -> Work:
    async def work(uow: SqlBindingUnitOfWork) -> Card:
        return await cards.bind_card(
            uow,
            binding.ctx,
            account_id=account_id,
            card_number=NUMBER,
            expiry_month=12,
            expiry_year=2030,
            holder_name=HOLDERS[account_id],
        )

    return work


async def test_two_accounts_racing_to_bind_one_card_exactly_one_wins(
    binding: Binding, engine: AsyncEngine
) -> None:
    outcomes = await race(binding, engine, binding_of(binding, ACCOUNT), binding_of(binding, OTHER))

    assert sorted(outcomes) == sorted([SUCCEEDED, "CARD_ALREADY_BOUND"])
    async with engine.connect() as connection:
        active = (
            await connection.execute(
                select(func.count())
                .select_from(tables.cards)
                .where(tables.cards.c.status == CardStatus.ACTIVE.value)
            )
        ).scalar_one()
    assert active == 1


def hold(binding: Binding, card: Card) -> Work:
    return lambda uow: holds.place_hold(
        uow, binding.ctx, account_id=card.account_id, instrument_id=card.id, refund_id="refund-1"
    )


def unbind(binding: Binding, card: Card) -> Work:
    grant = binding.grant("UNBIND_CARD", card.id)
    return lambda uow: cards.unbind_card(
        uow, binding.ctx, account_id=card.account_id, card_id=card.id, grant=grant
    )


async def stored_state(engine: AsyncEngine, card: Card) -> tuple[str, int]:
    async with engine.connect() as connection:
        status = (
            await connection.execute(
                select(tables.cards.c.status).where(tables.cards.c.id == card.id)
            )
        ).scalar_one()
        held = (
            await connection.execute(select(func.count()).select_from(tables.refund_holds))
        ).scalar_one()
    return status, held


async def test_a_hold_that_locks_the_card_first_makes_the_concurrent_unbind_wait_and_fail(
    binding: Binding, engine: AsyncEngine
) -> None:
    card = await bind(binding)

    outcomes = await one_after_the_other(
        binding, engine, hold(binding, card), unbind(binding, card)
    )

    assert outcomes == [SUCCEEDED, "REFUND_IN_FLIGHT"]
    assert await stored_state(engine, card) == ("ACTIVE", 1)


async def test_an_unbind_that_locks_the_card_first_makes_the_concurrent_hold_wait_and_fail(
    binding: Binding, engine: AsyncEngine
) -> None:
    card = await bind(binding)

    outcomes = await one_after_the_other(
        binding, engine, unbind(binding, card), hold(binding, card)
    )

    assert outcomes == [SUCCEEDED, "INSTRUMENT_UNAVAILABLE"]
    assert await stored_state(engine, card) == ("UNBOUND", 0)


async def test_a_hold_and_an_unbind_started_together_never_both_succeed(
    binding: Binding, engine: AsyncEngine
) -> None:
    card = await bind(binding)

    outcomes = await race(binding, engine, hold(binding, card), unbind(binding, card))

    assert sorted(outcomes) in (
        sorted([SUCCEEDED, "REFUND_IN_FLIGHT"]),
        sorted([SUCCEEDED, "INSTRUMENT_UNAVAILABLE"]),
    )
    status, held = await stored_state(engine, card)
    assert (status, held) in (("ACTIVE", 1), ("UNBOUND", 0))


async def test_two_first_holds_of_one_refund_on_two_cards_leave_one_hold(
    binding: Binding, engine: AsyncEngine
) -> None:
    # Refund retried the call with another card at the same moment: no hold row exists yet to
    # lock, so the refund's primary key decides, and the loser may retry (ABORTED).
    first = await bind(binding)
    second = await bind(binding, number="5555 5555 5555 4444")

    outcomes = await race(binding, engine, hold(binding, first), hold(binding, second))

    assert sorted(outcomes) == sorted([SUCCEEDED, "ABORTED"])
    assert (await stored_state(engine, first))[1] == 1
