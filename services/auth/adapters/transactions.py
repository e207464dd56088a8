"""The `Transactions` port on SQLAlchemy: one `SqlAuthUnitOfWork` per RPC.

    transactions = SqlTransactions(
        lambda: SqlAuthUnitOfWork(sessions, protection=..., outbox=..., clock=clock),
        IdempotencyRecords(tables.idempotency_records, clock=clock, key_ring=key_ring),
    )

`new_unit_of_work` builds a fresh, unopened unit of work on every call. The idempotency
records get the key ring because a stored response may carry a refresh token, which the
service otherwise keeps only hashed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.auth.adapters.uow import SqlAuthUnitOfWork
from services.auth.service.ports import AuthUnitOfWork
from walletcore.idempotency import CommittedRefusal, IdempotencyKey, IdempotencyRecords

_T = TypeVar("_T")


class SqlTransactions:
    def __init__(
        self,
        new_unit_of_work: Callable[[], SqlAuthUnitOfWork],
        idempotency: IdempotencyRecords,
    ) -> None:
        self._new_unit_of_work = new_unit_of_work
        self._idempotency = idempotency

    async def run(self, work: Callable[[AuthUnitOfWork], Awaitable[_T]]) -> _T:
        """Commits when `work` returns; on CommittedRefusal commits and raises its error;
        on anything else rolls back."""
        async with self._new_unit_of_work() as uow:
            try:
                result = await work(uow)
            except CommittedRefusal as refusal:
                await uow.commit()
                raise refusal.error from None
            await uow.commit()
            return result

    async def run_idempotent(
        self, key: IdempotencyKey, work: Callable[[AuthUnitOfWork], Awaitable[bytes]]
    ) -> bytes:
        """`run` once per key: see `walletcore.idempotency.IdempotencyRecords.run_idempotent`."""
        return await self._idempotency.run_idempotent(self._new_unit_of_work, key, work)
