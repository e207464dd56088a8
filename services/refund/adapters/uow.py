"""Refund's unit of work on SQLAlchemy: one transaction, every repository, grant acceptance.

    uow = SqlRefundUnitOfWork(sessions, grants=GrantVerifier(auth_keyset(auth), issuer))

Everything the repositories, the consumed-grant rows and the audit trail write goes through
the one session, so it commits or rolls back together: a grant is spent if and only if the
refund it allowed commits.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.refund.adapters import tables
from services.refund.adapters.repositories import SqlCursors, SqlPayments, SqlRefunds
from services.refund.service.ports import GatewayCursors, GrantAcceptance, Payments, Refunds
from walletcore.audit import AuditTrail, SqlAuditTrail
from walletcore.db import UnitOfWork
from walletcore.grants import GrantAcceptance as SqlGrantAcceptance
from walletcore.grants import GrantChecker, SqlConsumedGrants


class SqlRefundUnitOfWork(UnitOfWork):
    """The `RefundUnitOfWork` port; the repositories exist while the unit of work is open."""

    # Typed as the ports: a protocol's attributes are invariant.
    payments: Payments
    refunds: Refunds
    cursors: GatewayCursors
    grants: GrantAcceptance
    audit: AuditTrail

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, grants: GrantChecker) -> None:
        super().__init__(sessions)
        self._grant_checker = grants

    async def __aexit__(self, *exc_info: object) -> None:
        # The port's signature. The base class rolls back whatever was not committed, with or
        # without an exception, so it needs none of the exception's details.
        await super().__aexit__(None, None, None)

    def attach_repositories(self, session: AsyncSession) -> None:
        self.payments = SqlPayments(session)
        self.refunds = SqlRefunds(session)
        self.cursors = SqlCursors(session)
        self.grants = SqlGrantAcceptance(
            self._grant_checker, SqlConsumedGrants(session, tables.consumed_grants)
        )
        self.audit = SqlAuditTrail(session, tables.audit_log)
