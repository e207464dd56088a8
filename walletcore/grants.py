"""Spending auth's step-up grants in any service: checked with auth's keys, accepted once.

Auth signs a grant for one sensitive action of one account (its purpose), on one object where
the purpose has one (a card id, a new phone or email, a payment id), living at most 5 minutes
(`walletcore.tokens`). The service performing the action checks it and records its `jti` in a
consumed-grant row of its OWN database, in the transaction of the action itself:

- a grant used twice, even by two concurrent requests, is accepted once: the row's primary
  key is UNIQUE, so the second insert waits for the first transaction (PostgreSQL) and then
  finds the row, or runs after it (SQLite);
- a refused or rolled-back action leaves the grant usable, since its row rolls back too.

A service adds the table to its metadata, so its Alembic revision creates it like any other:

    consumed_grants = define_consumed_grants_table(metadata)

and its unit of work hands the use cases a `GrantAcceptance` over the transaction's session:

    verifier = GrantVerifier(auth_keyset(auth_client), settings.auth_issuer)  # auth's keys
    self.grants = GrantAcceptance(verifier, SqlConsumedGrants(session, tables.consumed_grants))
    ...
    grant = await uow.grants.accept(token, account_id=..., purpose="UNBIND_CARD", object_id=card_id)

Refusals are PERMISSION_DENIED with the reasons the contracts list: GRANT_EXPIRED,
GRANT_ALREADY_USED, and GRANT_INVALID for everything else. Which of the other checks failed is
in the message and in the ErrorInfo metadata `cause` (SIGNATURE_OR_FORMAT, LIFETIME_TOO_LONG,
ACCOUNT_MISMATCH, PURPOSE_MISMATCH, OBJECT_MISMATCH): a grant's claims are readable by whoever
holds it, so naming the mismatch tells the holder nothing new and tells a developer what went
wrong. An expired grant is refused before its row is looked at, so a row past `expires_at` (plus
the verifiers' clock leeway) guards nothing: `ExpiredGrantRows` deletes those, run by
`walletcore.idempotency.RetentionPurge` as a background task of the service:

    purge = RetentionPurge(ExpiredGrantRows(tables.consumed_grants, clock=clock), sessions)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Protocol, cast

from sqlalchemy import Column, MetaData, String, Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from walletcore.clock import Clock, utc_now
from walletcore.db import Executor, UTCDateTime, dialect_name
from walletcore.errors import PermissionDenied
from walletcore.tokens import CLOCK_SKEW_LEEWAY, TokenKind, VerifiedGrant

GRANT_INVALID: Final = "GRANT_INVALID"
GRANT_EXPIRED: Final = "GRANT_EXPIRED"
GRANT_ALREADY_USED: Final = "GRANT_ALREADY_USED"
MAX_GRANT_LIFETIME: Final = TokenKind.STEP_UP_GRANT.max_lifetime
JTI_LENGTH: Final = 64
"""Auth's grant ids are 22 characters (`secrets.token_urlsafe(16)`); the margin admits more."""
CAUSE_KEY: Final = "cause"
PURGE_MARGIN: Final = CLOCK_SKEW_LEEWAY + MAX_GRANT_LIFETIME
"""How long past `expires_at` a consumed-grant row is kept: the verifiers' leeway, and a grant
lifetime more, so a replica whose clock runs a few minutes ahead of another's cannot free a
jti the other still accepts."""

# The verifier's specific reasons, and the cause each becomes under GRANT_INVALID.
_CAUSES: Final = {
    "GRANT_INVALID": "SIGNATURE_OR_FORMAT",
    "GRANT_LIFETIME_TOO_LONG": "LIFETIME_TOO_LONG",
    "GRANT_ACCOUNT_MISMATCH": "ACCOUNT_MISMATCH",
    "GRANT_PURPOSE_MISMATCH": "PURPOSE_MISMATCH",
    "GRANT_OBJECT_MISMATCH": "OBJECT_MISMATCH",
}


def define_consumed_grants_table(metadata: MetaData, name: str = "consumed_grants") -> Table:
    """The consumed-grant rows in a service's metadata; the primary key on `jti` is the
    UNIQUE key single use rests on, `expires_at` (indexed) says when a row may be purged."""
    return Table(
        name,
        metadata,
        Column("jti", String(JTI_LENGTH), primary_key=True),
        Column("expires_at", UTCDateTime, nullable=False, index=True),
    )


class ConsumedGrants(Protocol):
    """The consumed-grant rows of one transaction."""

    async def consume(self, jti: str, expires_at: datetime) -> bool:
        """Records the grant as used; False when it was used before."""
        ...


class SqlConsumedGrants:
    """`ConsumedGrants` on a table from `define_consumed_grants_table`, in the caller's
    transaction (the caller commits)."""

    def __init__(self, executor: Executor, table: Table) -> None:
        self._executor = executor
        self._table = table

    async def consume(self, jti: str, expires_at: datetime) -> bool:
        name = dialect_name(self._executor)
        insert: postgresql.Insert | sqlite.Insert
        if name == "postgresql":
            insert = postgresql.insert(self._table)
        elif name == "sqlite":
            insert = sqlite.insert(self._table)
        else:
            raise NotImplementedError(f"consumed grants need PostgreSQL or SQLite, not {name}")
        # ON CONFLICT DO NOTHING: a concurrent insert of the same jti makes this one wait for
        # that transaction and then insert nothing, so of two racing uses exactly one returns
        # a row, and neither fails with a unique violation.
        statement = (
            insert.values(jti=jti, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["jti"])
            .returning(self._table.c.jti)
        )
        return (await self._executor.execute(statement)).first() is not None


class ExpiredGrantRows:
    """The consumed-grant rows of a table from `define_consumed_grants_table` whose grants can
    no longer be accepted anywhere (`walletcore.idempotency.ExpiringRows`)."""

    label: Final = "consumed grants"

    def __init__(self, table: Table, *, clock: Clock = utc_now) -> None:
        self._table = table
        self._clock = clock

    async def purge_expired(self, session: AsyncSession) -> int:
        cutoff = self._clock() - PURGE_MARGIN
        result = await session.execute(delete(self._table).where(self._table.c.expires_at < cutoff))
        return cast(CursorResult[Any], result).rowcount


class GrantChecker(Protocol):
    """What checks a grant's signature, times and binding (`walletcore.tokens.GrantVerifier`
    over auth's published keys)."""

    async def verify(
        self, token: str, *, account_id: str, purpose: str, object_id: str | None = None
    ) -> VerifiedGrant: ...


async def accept_grant(
    checker: GrantChecker,
    consumed: ConsumedGrants,
    token: str,
    *,
    account_id: str,
    purpose: str,
    object_id: str | None = None,
) -> VerifiedGrant:
    """The grant, if it allows exactly this action, recorded as used through `consumed` (in the
    action's transaction). Refusals as in this module's docstring."""
    try:
        grant = await checker.verify(
            token, account_id=account_id, purpose=purpose, object_id=object_id
        )
    except PermissionDenied as error:
        if error.reason == GRANT_EXPIRED:
            raise
        cause = _CAUSES.get(error.reason, _CAUSES[GRANT_INVALID])
        raise PermissionDenied(
            error.message, reason=GRANT_INVALID, metadata={CAUSE_KEY: cause}
        ) from None
    if not await consumed.consume(grant.jti, grant.expires_at):
        raise PermissionDenied("the step-up grant was already used", reason=GRANT_ALREADY_USED)
    return grant


class GrantAcceptance:
    """`accept_grant` bound to a checker and one transaction's consumed-grant rows: what a
    unit of work exposes to its use cases."""

    def __init__(self, checker: GrantChecker, consumed: ConsumedGrants) -> None:
        self._checker = checker
        self._consumed = consumed

    async def accept(
        self, token: str, *, account_id: str, purpose: str, object_id: str | None = None
    ) -> VerifiedGrant:
        return await accept_grant(
            self._checker,
            self._consumed,
            token,
            account_id=account_id,
            purpose=purpose,
            object_id=object_id,
        )
