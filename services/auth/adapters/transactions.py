"""The `Transactions` port on SQLAlchemy: walletcore's `SqlTransactions`, one `SqlAuthUnitOfWork`
per RPC.

    transactions = SqlTransactions(
        lambda: SqlAuthUnitOfWork(sessions, protection=..., outbox=..., clock=clock),
        IdempotencyRecords(
            tables.idempotency_records, fingerprints=..., clock=clock, key_ring=key_ring
        ),
    )

`new_unit_of_work` builds a fresh, unopened unit of work on every call. The idempotency
records get the key ring because a stored response may carry a refresh token, which the
service otherwise keeps only hashed, and `fingerprints` (AUTH_IDEMPOTENCY_KEYS) because a
request body may carry a password.
"""

from __future__ import annotations

from typing import TypeAlias

from services.auth.adapters.uow import SqlAuthUnitOfWork
from walletcore import transactions

SqlTransactions: TypeAlias = transactions.SqlTransactions[SqlAuthUnitOfWork]
