"""Refund's composition root: settings -> adapters -> use-case context -> servicers -> server.

This is the one place that knows every concrete class. `build(settings)` wires everything and
starts nothing; `RefundApp.start()` migrates (when the settings say so) and opens the ports;
`RefundApp.close()` stops and releases it all. `python -m services.refund` runs it until
SIGTERM.

Who may call what:

- public port: every RefundService RPC needs a user's access token, checked with auth's
  published keys, of a live session of an active account, asked of auth on every call
  (walletcore.users.ActiveUserVerifier): a frozen account is refused on its next request,
  while its refunds already approved are paid out by the worker, which asks nobody about
  the account. RequestRefund is limited to 100 an hour per account.
- admin port: RefundOpsService for `refund_operator`s; VerifyAuditLog and ExportAuditLog for
  `security_officer`s.
- internal port: PaymentLedgerService for the payment system's service identity, `payments`.

Background tasks: the payout worker (every `payout_interval_seconds`, also refreshing the
overdue gauge) and the purge of idempotency records past their retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar, Final

from prometheus_client import Gauge
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.refund.adapters.binding import BINDING_READS, BindingHolds
from services.refund.adapters.gateway import HttpPayoutGateway
from services.refund.adapters.repositories import SqlReads
from services.refund.adapters.tables import audit_log, idempotency_records
from services.refund.adapters.uow import SqlRefundUnitOfWork
from services.refund.api.ledger import PaymentLedgerServicer
from services.refund.api.ops import RefundOpsServicer
from services.refund.api.refund_service import RefundServicer
from services.refund.domain.policy import RefundPolicy
from services.refund.gateway_sim import SimulatorConfig
from services.refund.gateway_sim import serve as serve_simulator
from services.refund.service.context import RefundContext
from services.refund.service.payouts import PayoutWorker
from services.refund.service.ports import InstrumentHolds, PayoutGateway, Reads
from services.refund.settings import RefundSettings
from wallet.refund.v1 import (
    payment_ledger_service_pb2,
    payment_ledger_service_pb2_grpc,
    refund_ops_service_pb2,
    refund_ops_service_pb2_grpc,
    refund_service_pb2,
    refund_service_pb2_grpc,
)
from walletcore.audit_rpcs import AuditExportTokens
from walletcore.clock import Clock, utc_now
from walletcore.crypto import BlindIndex, KeyRing
from walletcore.db import SingleStatementReads, create_engine, session_factory
from walletcore.errors import DomainError
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
    GrantVerifier,
)
from walletcore.transactions import SqlTransactions
from walletcore.users import AUTH_READS, ActiveUserVerifier, AuthStatusClient, auth_keyset

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
SERVICE_NAME: Final = "refund"
LEDGER_CALLERS: Final = ("payments",)
"""The payment system's service identity: the only caller of PaymentLedgerService."""
DEVELOPMENT_KEYS_LABEL: Final = "refund"
DEVELOPMENT_RATE_LIMIT_KEY_LABEL: Final = "refund-rate-limit-subjects"
AUDIT_RPCS: Final = frozenset({"VerifyAuditLog", "ExportAuditLog"})

REFUND_SERVICE: Final = refund_service_pb2.DESCRIPTOR.services_by_name["RefundService"]
OPS_SERVICE: Final = refund_ops_service_pb2.DESCRIPTOR.services_by_name["RefundOpsService"]
LEDGER_SERVICE: Final = payment_ledger_service_pb2.DESCRIPTOR.services_by_name[
    "PaymentLedgerService"
]

REFUND_REQUESTS_PER_ACCOUNT_HOUR: Final = Policy("refund_requests_per_account_hour", 100, 3600)
"""A hundred requests an hour per account, refused ones included: far above what a person
files (and above the 60 at once of the concurrency test), low enough that a script cannot
churn the operators' queue or probe payment ids at speed."""

logger = logging.getLogger("services.refund")


@dataclass(frozen=True, slots=True)
class RefundKeys:
    encryption: KeyRing
    rate_limit_subjects: bytes
    request_fingerprints: BlindIndex
    identity_jwks: list[dict[str, str]]

    @classmethod
    def from_settings(cls, settings: RefundSettings) -> RefundKeys:
        return cls(
            encryption=encryption_ring(settings.encryption_keys, DEVELOPMENT_KEYS_LABEL),
            rate_limit_subjects=subject_key(
                settings.rate_limit_subject_key, DEVELOPMENT_RATE_LIMIT_KEY_LABEL
            ),
            request_fingerprints=request_fingerprints(settings.idempotency_keys),
            identity_jwks=identity_jwks(settings.identity_keys_jwks),
        )


def policy_from(settings: RefundSettings) -> RefundPolicy:
    return RefundPolicy(
        auto_approve_limits=dict(settings.auto_approve_limits),
        grant_thresholds=dict(settings.grant_thresholds),
        review_working_days=settings.review_working_days,
        payout_estimate=timedelta(days=settings.payout_estimate_days),
        max_gateway_attempts=settings.max_gateway_attempts,
    )


def public_policy() -> dict[str, AccessRule]:
    return rpc_policy(REFUND_SERVICE, lambda name: AUTHENTICATED)


def admin_policy() -> dict[str, AccessRule]:
    operators = require_roles(OperatorRole.REFUND_OPERATOR.value)
    officers = require_roles(OperatorRole.SECURITY_OFFICER.value)
    return rpc_policy(OPS_SERVICE, lambda name: officers if name in AUDIT_RPCS else operators)


def internal_policy() -> dict[str, AccessRule]:
    callers = require_roles(*LEDGER_CALLERS)
    return rpc_policy(LEDGER_SERVICE, lambda name: callers)


def request_rate_rules() -> dict[str, list[RateRule]]:
    return {
        f"/{REFUND_SERVICE.full_name}/RequestRefund": [
            RateRule(REFUND_REQUESTS_PER_ACCOUNT_HOUR, by_caller)
        ]
    }


@dataclass
class RefundApp(ServiceApp):
    """The wired service. Tests use `ctx` (its clock and peers), `tx`, `worker` and `engine`."""

    settings: RefundSettings
    server: ServiceServer
    ctx: RefundContext
    tx: SqlTransactions[SqlRefundUnitOfWork]
    worker: PayoutWorker
    keys: RefundKeys
    engine: AsyncEngine
    limiter: RateLimiter
    clients: InternalClients
    statements: SingleStatementReads
    closers: list[Callable[[], object]] = field(default_factory=list)
    ports: dict[str, int] | None = None

    migrations_dir: ClassVar[Path] = MIGRATIONS_DIR

    async def _release(self) -> None:
        await release_all(
            *self.closers,
            self.clients.close,
            self.limiter.close,
            self.statements.close,
            self.engine.dispose,
        )


def _gateway(settings: RefundSettings) -> tuple[PayoutGateway, list[Callable[[], object]]]:
    """The configured gateway; in development without one, the simulated gateway on an
    ephemeral local port inside this process (the production profile refuses an empty URL)."""
    # httpx logs every request at INFO: the worker's polls of the gateway would fill the log
    # each second. Failures reach the log through the worker's own warnings.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    closers: list[Callable[[], object]] = []
    url = settings.gateway_url
    if not url:
        simulator: ThreadingHTTPServer = serve_simulator("127.0.0.1", 0, SimulatorConfig())
        url = f"http://127.0.0.1:{simulator.server_address[1]}"
        closers.append(lambda: asyncio.to_thread(simulator.shutdown))
    gateway = HttpPayoutGateway(url, timeout=settings.gateway_timeout_seconds)
    closers.insert(0, gateway.close)
    return gateway, closers


def build(
    settings: RefundSettings,
    *,
    clock: Clock = utc_now,
    gateway: PayoutGateway | None = None,
    holds: InstrumentHolds | None = None,
) -> RefundApp:
    """Wires refund from `settings`. `clock` defaults to the real one; `gateway` and `holds`
    replace the payout gateway and binding (tests drive them by hand)."""
    keys = RefundKeys.from_settings(settings)
    engine = create_engine(prepared_database_url(settings.database_url))
    sessions = session_factory(engine)
    statements = SingleStatementReads(engine)
    limiter = limiter_from_settings(
        settings, namespace=settings.rate_limit_namespace, subject_key=keys.rate_limit_subjects
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
    if holds is None:
        holds = BindingHolds(
            clients.channel(
                InternalTarget(
                    "binding", settings.binding_internal_address, settings.binding_internal
                ),
                reads=BINDING_READS,
            )
        )
    closers: list[Callable[[], object]] = []
    if gateway is None:
        gateway, closers = _gateway(settings)
    auth_keys = auth_keyset(auth, clock=clock)
    ctx = RefundContext(
        clock=clock,
        new_id=lambda: uuid.uuid4().hex,
        policy=policy_from(settings),
        holds=holds,
        gateway=gateway,
    )
    grants = GrantVerifier(auth_keys, settings.auth_issuer, clock=clock)
    idempotency = IdempotencyRecords(
        idempotency_records,
        fingerprints=keys.request_fingerprints,
        clock=clock,
        key_ring=keys.encryption,
    )
    tx = SqlTransactions(lambda: SqlRefundUnitOfWork(sessions, grants=grants), idempotency)
    worker = PayoutWorker(tx, ctx, pending_grace=timedelta(seconds=settings.pending_grace_seconds))
    purge = RetentionPurge(
        idempotency, sessions, interval_seconds=settings.idempotency_purge_interval_seconds
    )
    users: CredentialVerifier = ActiveUserVerifier(
        AccessTokenVerifier(auth_keys, settings.auth_issuer, clock=clock), auth
    )

    async def purge_expired_requests() -> None:
        await run_until_shutdown(server, purge.run_forever)

    overdue = Gauge(
        "refund_overdue_refunds",
        "Refunds waiting for an operator past their service-level deadline",
        registry=None,
    )

    async def pay_out(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await worker.run_once()
                overdue.set(await tx.run(lambda uow: uow.refunds.count_overdue(clock())))
            except (DomainError, DBAPIError) as failure:
                # A peer or the database failed this pass; the next one starts over, and
                # nothing half-done is lost (every step is its own transaction).
                logger.warning("payout pass failed: %s", type(failure).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.payout_interval_seconds)

    async def payouts() -> None:
        await run_until_shutdown(server, pay_out)

    server = ServiceServer(
        settings,
        _ports(settings, keys, ctx, tx, SqlReads(statements), engine, users, clock),
        limiter,
        logger,
        [
            BackgroundTask("idempotency-purge", purge_expired_requests),
            BackgroundTask("payouts", payouts),
        ],
    )
    server.registry.register(overdue)
    return RefundApp(
        settings=settings,
        server=server,
        ctx=ctx,
        tx=tx,
        worker=worker,
        keys=keys,
        engine=engine,
        limiter=limiter,
        clients=clients,
        statements=statements,
        closers=closers,
    )


def _ports(
    settings: RefundSettings,
    keys: RefundKeys,
    ctx: RefundContext,
    tx: SqlTransactions[SqlRefundUnitOfWork],
    reads: Reads,
    engine: AsyncEngine,
    users: CredentialVerifier,
    clock: Clock,
) -> list[Port]:
    callers = caller_verifiers(
        keys.identity_jwks,
        settings.identity_issuer,
        audience=SERVICE_NAME,
        allowed_services=LEDGER_CALLERS,
        clock=clock,
    )
    desk = RefundOpsServicer(
        ctx,
        tx,
        EngineAuditReader(engine, audit_log),
        AuditExportTokens(keys.encryption, SERVICE_NAME),
    )
    return [
        serving(
            PortKind.PUBLIC,
            REFUND_SERVICE,
            refund_service_pb2_grpc.add_RefundServiceServicer_to_server,
            RefundServicer(ctx, tx, reads),
            public_policy(),
            verifier=users,
            rate_rules=request_rate_rules(),
        ),
        serving(
            PortKind.ADMIN,
            OPS_SERVICE,
            refund_ops_service_pb2_grpc.add_RefundOpsServiceServicer_to_server,
            desk,
            admin_policy(),
            verifier=callers.operators,
        ),
        serving(
            PortKind.INTERNAL,
            LEDGER_SERVICE,
            payment_ledger_service_pb2_grpc.add_PaymentLedgerServiceServicer_to_server,
            PaymentLedgerServicer(ctx, tx),
            internal_policy(),
            verifier=callers.services,
        ),
    ]
