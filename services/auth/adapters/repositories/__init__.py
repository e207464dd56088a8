"""Auth's repositories over SQLAlchemy Core (`services.auth.adapters.tables`), one module per
group of aggregates. `services.auth.adapters.uow.SqlAuthUnitOfWork` attaches them all."""

from services.auth.adapters.repositories.accounts import CONTACT_IN_USE, SqlAccounts
from services.auth.adapters.repositories.challenges import (
    SqlOtpChallenges,
    SqlPendingContacts,
    SqlStepUpChallenges,
)
from services.auth.adapters.repositories.counters import (
    SqlCodeFailureLedgers,
    SqlFailureCounters,
    SqlUsedGrants,
)
from services.auth.adapters.repositories.protection import CONTACT_INDEX_CONTEXT, Protection
from services.auth.adapters.repositories.sessions import SqlPendingSignIns, SqlSessions
from services.auth.adapters.repositories.timeline import (
    PAGE_TOKEN_INVALID,
    SqlAuditTrail,
    SqlSecurityEvents,
)

__all__ = [
    "CONTACT_INDEX_CONTEXT",
    "CONTACT_IN_USE",
    "PAGE_TOKEN_INVALID",
    "Protection",
    "SqlAccounts",
    "SqlAuditTrail",
    "SqlCodeFailureLedgers",
    "SqlFailureCounters",
    "SqlOtpChallenges",
    "SqlPendingContacts",
    "SqlPendingSignIns",
    "SqlSecurityEvents",
    "SqlSessions",
    "SqlStepUpChallenges",
    "SqlUsedGrants",
]
