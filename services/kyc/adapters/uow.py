"""Kyc's unit of work on SQLAlchemy: one transaction, every repository, the audit trail."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kyc.adapters.protection import Protection
from services.kyc.adapters.repositories import SqlCases, SqlDocumentStore
from services.kyc.adapters.tables import audit_log
from services.kyc.service.ports import Cases, DocumentStore
from walletcore.audit import AuditTrail, SqlAuditTrail
from walletcore.db import UnitOfWork


class SqlKycUnitOfWork(UnitOfWork):
    """The `KycUnitOfWork` port; the repositories exist while the unit of work is open."""

    # Typed as the ports: a protocol's attributes are invariant.
    cases: Cases
    documents: DocumentStore
    audit: AuditTrail

    def __init__(self, sessions: async_sessionmaker[AsyncSession], protection: Protection) -> None:
        super().__init__(sessions)
        self._protection = protection

    async def __aexit__(self, *exc_info: object) -> None:
        # The port's signature; the base class rolls back whatever was not committed.
        await super().__aexit__(None, None, None)

    def attach_repositories(self, session: AsyncSession) -> None:
        self.cases = SqlCases(session, self._protection)
        self.documents = SqlDocumentStore(session, self._protection)
        self.audit = SqlAuditTrail(session, audit_log)
