"""Kyc's composition root: settings -> adapters -> use-case context -> servicers -> server.

This is the one place that knows every concrete class. `build(settings)` wires everything and
starts nothing (call it inside the event loop: it opens the channel to auth); `KycApp.start()`
migrates the database (when the settings say so) and opens the three ports; `KycApp.close()`
stops and releases it all. `python -m services.kyc` runs it until SIGTERM.

Who may call what:

- public port: every KycService RPC needs a user's access token, checked with auth's published
  keys and then with auth itself on every call (walletcore.users.ActiveUserVerifier): a frozen
  account is FAILED_PRECONDITION / ACCOUNT_FROZEN, an ended session UNAUTHENTICATED /
  SESSION_REVOKED, and auth unreachable UNAVAILABLE (nothing runs unchecked).
  SubmitVerification is rate-limited per account.
- admin port: `kyc_reviewer` operators; the audit RPCs are `security_officer`s'.
- internal port: service tokens of binding (the only caller of KycStatusService).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from services.kyc.adapters.protection import Protection
from services.kyc.adapters.repositories import SqlKycReads
from services.kyc.adapters.tables import audit_log, idempotency_records
from services.kyc.adapters.uow import SqlKycUnitOfWork
from services.kyc.api.kyc_service import KycServicer
from services.kyc.api.review import KycReviewServicer
from services.kyc.api.status import KycStatusServicer
from services.kyc.service.context import KycContext
from services.kyc.service.ports import IDENTITY_INDEX_CONTEXT, KycReads
from services.kyc.settings import KycSettings
from wallet.kyc.v1 import (
    kyc_review_service_pb2,
    kyc_review_service_pb2_grpc,
    kyc_service_pb2,
    kyc_service_pb2_grpc,
    kyc_status_service_pb2,
    kyc_status_service_pb2_grpc,
)
from walletcore.audit_rpcs import AuditExportTokens
from walletcore.clock import Clock, utc_now
from walletcore.crypto import BlindIndex, KeyRing
from walletcore.db import SingleStatementReads, create_engine, session_factory
from walletcore.grpc.access import AUTHENTICATED, AccessRule, require_roles
from walletcore.grpc.clients import (
    InternalClients,
    InternalTarget,
    ServiceTokens,
    service_token_issuer,
)
from walletcore.grpc.interceptors import RateRule, by_caller
from walletcore.grpc.server import BackgroundTask, Port, PortKind, ServiceServer
from walletcore.idempotency import IdempotencyRecords, RetentionPurge
from walletcore.identity import CredentialVerifier, OperatorRole
from walletcore.ratelimit import RateLimiter
from walletcore.ratelimit.base import Policy
from walletcore.service_kit import (
    EngineAuditReader,
    ServiceApp,
    blind_index,
    caller_verifiers,
    encryption_ring,
    identity_jwks,
    limiter_from_settings,
    prepared_database_url,
    release_all,
    request_fingerprints,
    rpc_policy,
    run_until_shutdown,
    serving,
    subject_key,
)
from walletcore.tokens import (
    AccessTokenVerifier,
)
from walletcore.transactions import SqlTransactions
from walletcore.users import AUTH_READS, ActiveUserVerifier, AuthStatusClient, auth_keyset

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
SERVICE_NAME: Final = "kyc"
STATUS_CALLERS: Final = ("binding",)
DEVELOPMENT_KEYS_LABEL: Final = "kyc"
DEVELOPMENT_RATE_LIMIT_KEY_LABEL: Final = "kyc-rate-limit-subjects"
AUDIT_RPCS: Final = frozenset({"VerifyAuditLog", "ExportAuditLog"})

KYC_SERVICE: Final = kyc_service_pb2.DESCRIPTOR.services_by_name["KycService"]
REVIEW_SERVICE: Final = kyc_review_service_pb2.DESCRIPTOR.services_by_name["KycReviewService"]
STATUS_SERVICE: Final = kyc_status_service_pb2.DESCRIPTOR.services_by_name["KycStatusService"]

SUBMISSIONS_PER_ACCOUNT_HOUR: Final = Policy("kyc_submissions_per_account_hour", 10, 3600)
"""Ten submissions an hour per account: a retry loop cannot fill the database with images."""

logger = logging.getLogger("services.kyc")


@dataclass(frozen=True, slots=True)
class KycKeys:
    """Every key kyc uses; the development profile derives the missing ones from the public
    development seed (production settings refuse to start without them)."""

    encryption: KeyRing
    identity_index: BlindIndex
    rate_limit_subjects: bytes
    request_fingerprints: BlindIndex
    identity_jwks: list[dict[str, str]]

    @classmethod
    def from_settings(cls, settings: KycSettings) -> KycKeys:
        return cls(
            encryption=encryption_ring(settings.encryption_keys, DEVELOPMENT_KEYS_LABEL),
            identity_index=blind_index(settings.identity_index_keys, IDENTITY_INDEX_CONTEXT),
            rate_limit_subjects=subject_key(
                settings.rate_limit_subject_key, DEVELOPMENT_RATE_LIMIT_KEY_LABEL
            ),
            request_fingerprints=request_fingerprints(settings.idempotency_keys),
            identity_jwks=identity_jwks(settings.identity_keys_jwks),
        )


def public_policy() -> dict[str, AccessRule]:
    return rpc_policy(KYC_SERVICE, lambda name: AUTHENTICATED)


def admin_policy() -> dict[str, AccessRule]:
    reviewers = require_roles(OperatorRole.KYC_REVIEWER.value)
    officers = require_roles(OperatorRole.SECURITY_OFFICER.value)
    return rpc_policy(REVIEW_SERVICE, lambda name: officers if name in AUDIT_RPCS else reviewers)


def internal_policy() -> dict[str, AccessRule]:
    callers = require_roles(*STATUS_CALLERS)
    return rpc_policy(STATUS_SERVICE, lambda name: callers)


def submit_rate_rules() -> dict[str, list[RateRule]]:
    return {
        f"/{KYC_SERVICE.full_name}/SubmitVerification": [
            RateRule(SUBMISSIONS_PER_ACCOUNT_HOUR, by_caller)
        ]
    }


@dataclass
class KycApp(ServiceApp):
    """The wired service. Tests use `ctx` (its clock), `tx` and `engine` directly."""

    settings: KycSettings
    server: ServiceServer
    ctx: KycContext
    tx: SqlTransactions[SqlKycUnitOfWork]
    keys: KycKeys
    engine: AsyncEngine
    limiter: RateLimiter
    clients: InternalClients
    statements: SingleStatementReads
    ports: dict[str, int] | None = None

    migrations_dir: ClassVar[Path] = MIGRATIONS_DIR

    async def _release(self) -> None:
        await release_all(
            self.clients.close, self.limiter.close, self.statements.close, self.engine.dispose
        )


def build(
    settings: KycSettings, *, clock: Clock = utc_now, users: CredentialVerifier | None = None
) -> KycApp:
    """Wires kyc from `settings`. `clock` defaults to the real one; `users` replaces the
    public port's verifier (the benchmark's stubbed-out account check)."""
    keys = KycKeys.from_settings(settings)
    engine = create_engine(prepared_database_url(settings.database_url))
    sessions = session_factory(engine)
    limiter = limiter_from_settings(
        settings, namespace=settings.rate_limit_namespace, subject_key=keys.rate_limit_subjects
    )
    ctx = KycContext(
        clock=clock, new_id=lambda: uuid.uuid4().hex, identity_index=keys.identity_index
    )
    protection = Protection(keys.encryption)
    statements = SingleStatementReads(engine)
    idempotency = IdempotencyRecords(
        idempotency_records, fingerprints=keys.request_fingerprints, clock=clock
    )
    tx = SqlTransactions(lambda: SqlKycUnitOfWork(sessions, protection), idempotency)
    purge = RetentionPurge(
        idempotency, sessions, interval_seconds=settings.idempotency_purge_interval_seconds
    )
    clients = InternalClients(
        ServiceTokens(
            service_token_issuer(
                settings.service_identity_keys, settings.identity_issuer, clock=clock
            ),
            SERVICE_NAME,
        )
    )
    auth = AuthStatusClient(
        clients.channel(
            InternalTarget("auth", settings.auth_internal_address, settings.auth_internal),
            reads=AUTH_READS,
        )
    )
    if users is None:
        users = ActiveUserVerifier(
            AccessTokenVerifier(auth_keyset(auth, clock=clock), settings.auth_issuer, clock=clock),
            auth,
        )

    async def purge_expired_requests() -> None:
        await run_until_shutdown(server, purge.run_forever)

    server = ServiceServer(
        settings,
        _ports(settings, keys, ctx, tx, SqlKycReads(statements, protection), engine, users, clock),
        limiter,
        logger,
        [BackgroundTask("idempotency-purge", purge_expired_requests)],
    )
    return KycApp(
        settings=settings,
        server=server,
        ctx=ctx,
        tx=tx,
        keys=keys,
        engine=engine,
        limiter=limiter,
        clients=clients,
        statements=statements,
    )


def _ports(
    settings: KycSettings,
    keys: KycKeys,
    ctx: KycContext,
    tx: SqlTransactions[SqlKycUnitOfWork],
    reads: KycReads,
    engine: AsyncEngine,
    users: CredentialVerifier,
    clock: Clock,
) -> list[Port]:
    callers = caller_verifiers(
        keys.identity_jwks,
        settings.identity_issuer,
        audience=SERVICE_NAME,
        allowed_services=STATUS_CALLERS,
        clock=clock,
    )
    reviewers = KycReviewServicer(
        ctx,
        tx,
        EngineAuditReader(engine, audit_log),
        AuditExportTokens(keys.encryption, SERVICE_NAME),
    )
    return [
        serving(
            PortKind.PUBLIC,
            KYC_SERVICE,
            kyc_service_pb2_grpc.add_KycServiceServicer_to_server,
            KycServicer(ctx, tx, reads),
            public_policy(),
            verifier=users,
            rate_rules=submit_rate_rules(),
        ),
        serving(
            PortKind.ADMIN,
            REVIEW_SERVICE,
            kyc_review_service_pb2_grpc.add_KycReviewServiceServicer_to_server,
            reviewers,
            admin_policy(),
            verifier=callers.operators,
        ),
        serving(
            PortKind.INTERNAL,
            STATUS_SERVICE,
            kyc_status_service_pb2_grpc.add_KycStatusServiceServicer_to_server,
            KycStatusServicer(ctx, tx),
            internal_policy(),
            verifier=callers.services,
        ),
    ]
