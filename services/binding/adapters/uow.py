"""Binding's unit of work on SQLAlchemy: one transaction, every repository, grant acceptance.

    uow = SqlBindingUnitOfWork(
        sessions,                      # walletcore.db.session_factory(engine)
        encryption=key_ring,           # binding's ring: holder names
        grants=GrantVerifier(auth_keyset(auth), settings.auth_issuer),
    )

Everything the repositories, the consumed-grant rows and the audit trail write goes through
the one session, so it commits or rolls back together: a grant is spent if and only if the
action it allowed commits.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.binding.adapters import tables
from services.binding.adapters.repositories import (
    SqlCards,
    SqlContactChanges,
    SqlRefundHolds,
    SqlWithdrawalHolds,
)
from services.binding.service.ports import (
    Cards,
    ContactChanges,
    GrantAcceptance,
    RefundHolds,
    WithdrawalHolds,
)
from walletcore.audit import AuditTrail, SqlAuditTrail
from walletcore.crypto import KeyRing
from walletcore.db import UnitOfWork
from walletcore.grants import GrantAcceptance as SqlGrantAcceptance
from walletcore.grants import GrantChecker, SqlConsumedGrants


class SqlBindingUnitOfWork(UnitOfWork):
    """The `BindingUnitOfWork` port; the repositories exist while the unit of work is open."""

    # Typed as the ports: a protocol's attributes are invariant.
    cards: Cards
    refund_holds: RefundHolds
    contact_changes: ContactChanges
    withdrawal_holds: WithdrawalHolds
    grants: GrantAcceptance
    audit: AuditTrail

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        encryption: KeyRing,
        grants: GrantChecker,
    ) -> None:
        super().__init__(sessions)
        self._encryption = encryption
        self._grant_checker = grants

    async def __aexit__(self, *exc_info: object) -> None:
        # The port's signature. The base class rolls back whatever was not committed, with or
        # without an exception, so it needs none of the exception's details.
        await super().__aexit__(None, None, None)

    def attach_repositories(self, session: AsyncSession) -> None:
        self.cards = SqlCards(session, self._encryption)
        self.refund_holds = SqlRefundHolds(session)
        self.contact_changes = SqlContactChanges(session)
        self.withdrawal_holds = SqlWithdrawalHolds(session)
        self.grants = SqlGrantAcceptance(
            self._grant_checker, SqlConsumedGrants(session, tables.consumed_grants)
        )
        self.audit = SqlAuditTrail(session, tables.audit_log)
