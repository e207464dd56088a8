"""The transaction boundary of a service's use cases, for any service's unit of work.

A use case is `async def use_case(uow, ...)` and never commits itself; `Transactions.run`
opens one unit of work per RPC and commits when the work returns. A use case whose refusal
changed state that must last (a wrong code counting against its limit, a workflow closed as
abandoned) raises `walletcore.idempotency.CommittedRefusal(error)`: the changes commit and
`error` is raised. Any other exception rolls everything back.

    transactions = SqlTransactions(
        lambda: SqlBindingUnitOfWork(sessions, ...),
        IdempotencyRecords(tables.idempotency_records, fingerprints=..., key_ring=key_ring),
    )
    card = await transactions.run(lambda uow: bind_card(uow, ctx, ...))

Services type their service layer against `Transactions[TheirUnitOfWorkPort]`, so the
in-memory `walletcore.fakes.FakeTransactions` and `SqlTransactions` are interchangeable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from walletcore.db import UnitOfWork
from walletcore.idempotency import CommittedRefusal, IdempotencyKey, IdempotencyRecords

_T = TypeVar("_T")
_Port_co = TypeVar("_Port_co", covariant=True)
_SqlUow = TypeVar("_SqlUow", bound=UnitOfWork)


class Transactions(Protocol[_Port_co]):
    """Runs one RPC's work in one unit of work of type `_Port_co`."""

    async def run(self, work: Callable[[_Port_co], Awaitable[_T]]) -> _T: ...

    async def run_idempotent(
        self, key: IdempotencyKey, work: Callable[[_Port_co], Awaitable[bytes]]
    ) -> bytes:
        """`run`, once per request_id: a retry with the same key and body returns the first
        response bytes (the API layer's serialized reply) without running `work` again; the
        same request_id with another body raises InvalidArgument (IDEMPOTENCY_KEY_REUSED)."""
        ...


class SqlTransactions(Generic[_SqlUow]):
    """`Transactions` over a `walletcore.db.UnitOfWork` subclass; `new_unit_of_work` builds
    a fresh, unopened unit of work on every call."""

    def __init__(
        self, new_unit_of_work: Callable[[], _SqlUow], idempotency: IdempotencyRecords
    ) -> None:
        self._new_unit_of_work = new_unit_of_work
        self._idempotency = idempotency

    async def run(self, work: Callable[[_SqlUow], Awaitable[_T]]) -> _T:
        async with self._new_unit_of_work() as uow:
            return await run_in(uow, work)

    async def run_idempotent(
        self, key: IdempotencyKey, work: Callable[[_SqlUow], Awaitable[bytes]]
    ) -> bytes:
        """`run` once per key: see `walletcore.idempotency.IdempotencyRecords.run_idempotent`."""
        return await self._idempotency.run_idempotent(self._new_unit_of_work, key, work)


class _Committable(Protocol):
    async def commit(self) -> None: ...


_Uow = TypeVar("_Uow", bound=_Committable)


async def run_in(uow: _Uow, work: Callable[[_Uow], Awaitable[_T]]) -> _T:
    """Runs `work` in the open `uow` with the commit rules above (real and fake units of work
    share them through this one function)."""
    try:
        result = await work(uow)
    except CommittedRefusal as refusal:
        await uow.commit()
        raise refusal.error from None
    await uow.commit()
    return result
