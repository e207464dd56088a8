"""Auth's unit of work on SQLAlchemy: one transaction, every repository, the outbox notifier.

    uow = SqlAuthUnitOfWork(
        sessions,                       # walletcore.db.session_factory(engine)
        protection=Protection(encryption=key_ring, contact_index=BlindIndex.from_spec(
            spec, context=CONTACT_INDEX_CONTEXT)),
        outbox=NotificationOutbox(tables.outbox, key_ring),
        clock=clock,
        code_failure_policy=rules.code_failure_policy,
    )

Everything the repositories, the notifier and the audit trail write goes through the one
session, so it commits or rolls back together.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.auth.adapters.notifier import OutboxNotifier
from services.auth.adapters.repositories import (
    Protection,
    SqlAccounts,
    SqlAuditTrail,
    SqlCodeFailureLedgers,
    SqlFailureCounters,
    SqlOtpChallenges,
    SqlPendingContacts,
    SqlPendingSignIns,
    SqlSecurityEvents,
    SqlSessions,
    SqlStepUpChallenges,
    SqlUsedGrants,
)
from services.auth.domain.ledger import DEFAULT_CODE_FAILURE_POLICY, CodeFailurePolicy
from services.auth.service.ports import (
    Accounts,
    CodeFailureLedgers,
    FailureCounters,
    Notifier,
    OtpChallenges,
    PendingContacts,
    PendingSignIns,
    SecurityEvents,
    Sessions,
    StepUpChallenges,
    UsedGrants,
)
from walletcore.audit import AuditTrail
from walletcore.clock import Clock, utc_now
from walletcore.db import UnitOfWork
from walletcore.notify import NotificationOutbox


class SqlAuthUnitOfWork(UnitOfWork):
    """The `AuthUnitOfWork` port; the repositories exist while the unit of work is open."""

    # Typed as the ports: a protocol's attributes are invariant.
    accounts: Accounts
    sessions: Sessions
    pending_sign_ins: PendingSignIns
    otp_challenges: OtpChallenges
    step_up_challenges: StepUpChallenges
    pending_contacts: PendingContacts
    code_failure_ledgers: CodeFailureLedgers
    failure_counters: FailureCounters
    security_events: SecurityEvents
    used_grants: UsedGrants
    audit: AuditTrail
    notifier: Notifier

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        protection: Protection,
        outbox: NotificationOutbox,
        clock: Clock = utc_now,
        code_failure_policy: CodeFailurePolicy = DEFAULT_CODE_FAILURE_POLICY,
    ) -> None:
        super().__init__(sessions)
        self._protection = protection
        self._outbox = outbox
        self._clock = clock
        self._code_failure_policy = code_failure_policy

    async def __aexit__(self, *exc_info: object) -> None:
        # The port's signature. The base class rolls back whatever was not committed, with or
        # without an exception, so it needs none of the exception's details.
        await super().__aexit__(None, None, None)

    def attach_repositories(self, session: AsyncSession) -> None:
        self.accounts = SqlAccounts(session, self._protection)
        self.sessions = SqlSessions(session)
        self.pending_sign_ins = SqlPendingSignIns(session)
        self.otp_challenges = SqlOtpChallenges(session)
        self.step_up_challenges = SqlStepUpChallenges(session, self._protection)
        self.pending_contacts = SqlPendingContacts(session, self._protection)
        self.code_failure_ledgers = SqlCodeFailureLedgers(session, self._code_failure_policy)
        self.failure_counters = SqlFailureCounters(session)
        self.security_events = SqlSecurityEvents(session, self._protection.encryption, self._clock)
        self.used_grants = SqlUsedGrants(session)
        self.audit = SqlAuditTrail(session)
        self.notifier = OutboxNotifier(self._outbox, session, clock=self._clock)
