"""Binding's composition root: settings -> adapters -> use-case context -> servicers -> server.

This is the one place that knows every concrete class. `build(settings)` wires everything and
starts nothing; `BindingApp.start()` migrates binding's and the card vault's databases (when
the settings say so) and opens the ports; `BindingApp.close()` stops and releases it all.
`python -m services.binding` runs it until SIGTERM.

Who may call what:

- public port: every BindingService RPC needs a user's access token, checked with auth's
  published keys, of a live session of an active account, asked of auth on every call
  (walletcore.users.ActiveUserVerifier): a frozen account is refused on its next request.
  BindCard and StartContactChange are rate-limited per account.
- internal port: BindingQueryService for refund's service identity only.
- admin port: BindingAdminService (the officer-assisted contact change and binding's audit
  chain) for operators with the role `security_officer` only.

Peers: auth (user checks, grant keys, the contact change) and kyc (the holder-name match and
the KYC level), each over walletcore's internal channel with binding's service token.

Background tasks (walletcore.idempotency.RetentionPurge, hourly): idempotency records past
their 30 days, and consumed-grant rows whose grants can no longer be accepted
(walletcore.grants.ExpiredGrantRows).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from services.binding.adapters.peers import KYC_READS, AuthContactVerification, KycStatusClient
from services.binding.adapters.repositories import SqlBindingReads
from services.binding.adapters.tables import audit_log, consumed_grants, idempotency_records
from services.binding.adapters.uow import SqlBindingUnitOfWork
from services.binding.adapters.vault import VAULT_MIGRATIONS_DIR, LocalCardVault
from services.binding.api.admin import BindingAdminServicer
from services.binding.api.binding_service import BindingServicer
from services.binding.api.query import BindingQueryServicer
from services.binding.service.context import FINGERPRINT_CONTEXT, BindingContext
from services.binding.settings import BindingSettings
from wallet.binding.v1 import (
    binding_admin_service_pb2,
    binding_admin_service_pb2_grpc,
    binding_query_service_pb2,
    binding_query_service_pb2_grpc,
    binding_service_pb2,
    binding_service_pb2_grpc,
)
from walletcore.audit_rpcs import AuditExportTokens
from walletcore.clock import Clock, utc_now
from walletcore.crypto import BlindIndex, KeyRing
from walletcore.db import SingleStatementReads, create_engine, session_factory
from walletcore.grants import ExpiredGrantRows
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
from walletcore.identity import OperatorRole
from walletcore.migrations import upgrade_to_head
from walletcore.ratelimit import RateLimiter
from walletcore.ratelimit.base import Policy
from walletcore.service_kit import (
    EngineAuditReader,
    ServiceApp,
    blind_index,
    encryption_ring,
    grpc_service,
    identity_jwks,
    limiter_from_settings,
    prepared_database_url,
    release_all,
    request_fingerprints,
    rpc_policy,
    run_until_shutdown,
    subject_key,
)
from walletcore.tokens import (
    AccessTokenVerifier,
    GrantVerifier,
    OperatorTokenVerifier,
    ServiceTokenVerifier,
    StaticKeySet,
)
from walletcore.transactions import SqlTransactions
from walletcore.users import AUTH_READS, ActiveUserVerifier, AuthStatusClient, auth_keyset

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
SERVICE_NAME: Final = "binding"
QUERY_CALLERS: Final = ("refund",)
DEVELOPMENT_KEYS_LABEL: Final = "binding"
DEVELOPMENT_VAULT_KEYS_LABEL: Final = "binding-card-vault"
DEVELOPMENT_RATE_LIMIT_KEY_LABEL: Final = "binding-rate-limit-subjects"

BINDING_SERVICE: Final = binding_service_pb2.DESCRIPTOR.services_by_name["BindingService"]
QUERY_SERVICE: Final = binding_query_service_pb2.DESCRIPTOR.services_by_name["BindingQueryService"]
ADMIN_SERVICE: Final = binding_admin_service_pb2.DESCRIPTOR.services_by_name["BindingAdminService"]

CARD_BINDS_PER_ACCOUNT_HOUR: Final = Policy("card_binds_per_account_hour", 10, 3600)
"""Ten bind attempts an hour per account, refused ones included: someone testing stolen card
numbers against the Luhn, expiry and holder-name checks learns little an hour, and each
attempt costs a kyc call and a vault write."""
CONTACT_CHANGES_PER_ACCOUNT_HOUR: Final = Policy("contact_changes_per_account_hour", 5, 3600)
"""Five contact changes started an hour per account (auth also limits the codes it sends to
each destination)."""

logger = logging.getLogger("services.binding")


@dataclass(frozen=True, slots=True)
class BindingKeys:
    """Every key binding uses; the development profile derives the missing ones from the
    public development seed (production settings refuse to start without them)."""

    encryption: KeyRing
    fingerprints: BlindIndex
    vault: KeyRing
    rate_limit_subjects: bytes
    request_fingerprints: BlindIndex
    identity_jwks: list[dict[str, str]]

    @classmethod
    def from_settings(cls, settings: BindingSettings) -> BindingKeys:
        return cls(
            encryption=encryption_ring(settings.encryption_keys, DEVELOPMENT_KEYS_LABEL),
            fingerprints=blind_index(settings.fingerprint_keys, context=FINGERPRINT_CONTEXT),
            vault=encryption_ring(settings.vault_keys, DEVELOPMENT_VAULT_KEYS_LABEL),
            rate_limit_subjects=subject_key(
                settings.rate_limit_subject_key, DEVELOPMENT_RATE_LIMIT_KEY_LABEL
            ),
            request_fingerprints=request_fingerprints(settings.idempotency_keys),
            identity_jwks=identity_jwks(settings.identity_keys_jwks),
        )


@dataclass
class BindingApp(ServiceApp):
    """The wired service. Tests use `ctx` (its clock and peers) and `tx` directly."""

    settings: BindingSettings
    server: ServiceServer
    ctx: BindingContext
    tx: SqlTransactions[SqlBindingUnitOfWork]
    keys: BindingKeys
    engine: AsyncEngine
    vault_engine: AsyncEngine
    clients: InternalClients
    limiter: RateLimiter
    statements: SingleStatementReads
    ports: dict[str, int] | None = None

    migrations_dir: ClassVar[Path] = MIGRATIONS_DIR

    async def start(self) -> dict[str, int]:
        # The vault's database first: a bind needs both.
        if self.settings.migrate_on_start:
            await upgrade_to_head(self.settings.vault_database_url, VAULT_MIGRATIONS_DIR)
        return await super().start()

    async def _release(self) -> None:
        await release_all(
            self.clients.close,
            self.limiter.close,
            self.statements.close,
            self.engine.dispose,
            self.vault_engine.dispose,
        )


def public_rate_rules() -> dict[str, list[RateRule]]:
    """Charged per account by the server's interceptor, after the account check."""
    return {
        f"/{BINDING_SERVICE.full_name}/BindCard": [
            RateRule(CARD_BINDS_PER_ACCOUNT_HOUR, by_caller)
        ],
        f"/{BINDING_SERVICE.full_name}/StartContactChange": [
            RateRule(CONTACT_CHANGES_PER_ACCOUNT_HOUR, by_caller)
        ],
    }


def admin_policy() -> dict[str, AccessRule]:
    """Every admin RPC, the audit ones included, is a security officer's."""
    officers = require_roles(OperatorRole.SECURITY_OFFICER.value)
    return rpc_policy(ADMIN_SERVICE, lambda name: officers)


def build(settings: BindingSettings, *, clock: Clock = utc_now) -> BindingApp:
    """Wires binding from `settings`; `clock` defaults to the real one (tests pass theirs)."""
    keys = BindingKeys.from_settings(settings)
    engine = create_engine(prepared_database_url(settings.database_url))
    vault_engine = create_engine(prepared_database_url(settings.vault_database_url))
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
    auth_channel = clients.channel(
        InternalTarget("auth", settings.auth_internal_address, settings.auth_internal),
        reads=AUTH_READS,
    )
    kyc_channel = clients.channel(
        InternalTarget("kyc", settings.kyc_internal_address, settings.kyc_internal),
        reads=KYC_READS,
    )
    auth = AuthStatusClient(auth_channel)
    auth_keys = auth_keyset(auth, clock=clock)
    ctx = BindingContext(
        clock=clock,
        new_id=lambda: uuid.uuid4().hex,
        fingerprints=keys.fingerprints,
        vault=LocalCardVault(session_factory(vault_engine), keys.vault, clock=clock),
        kyc=KycStatusClient(kyc_channel),
        contacts=AuthContactVerification(auth_channel),
    )
    sessions = session_factory(engine)
    statements = SingleStatementReads(engine)
    grants = GrantVerifier(auth_keys, settings.auth_issuer, clock=clock)
    idempotency = IdempotencyRecords(
        idempotency_records,
        fingerprints=keys.request_fingerprints,
        clock=clock,
        key_ring=keys.encryption,
    )
    tx = SqlTransactions(
        lambda: SqlBindingUnitOfWork(sessions, encryption=keys.encryption, grants=grants),
        idempotency,
    )
    purges = {
        "idempotency-purge": RetentionPurge(
            idempotency, sessions, interval_seconds=settings.idempotency_purge_interval_seconds
        ),
        "consumed-grant-purge": RetentionPurge(
            ExpiredGrantRows(consumed_grants, clock=clock),
            sessions,
            interval_seconds=settings.idempotency_purge_interval_seconds,
        ),
    }
    users = ActiveUserVerifier(
        AccessTokenVerifier(auth_keys, settings.auth_issuer, clock=clock), auth
    )
    identities = StaticKeySet(keys.identity_jwks)
    operators = OperatorTokenVerifier(identities, settings.identity_issuer, clock=clock)
    services = ServiceTokenVerifier(
        identities,
        settings.identity_issuer,
        audience=SERVICE_NAME,
        allowed_services=QUERY_CALLERS,
        clock=clock,
    )
    ports = [
        Port(
            PortKind.PUBLIC,
            [
                grpc_service(
                    BINDING_SERVICE,
                    binding_service_pb2_grpc.add_BindingServiceServicer_to_server,
                    BindingServicer(ctx, tx, SqlBindingReads(statements, keys.encryption)),
                )
            ],
            rpc_policy(BINDING_SERVICE, lambda name: AUTHENTICATED),
            verifier=users,
            rate_rules=public_rate_rules(),
        ),
        Port(
            PortKind.ADMIN,
            [
                grpc_service(
                    ADMIN_SERVICE,
                    binding_admin_service_pb2_grpc.add_BindingAdminServiceServicer_to_server,
                    BindingAdminServicer(
                        ctx,
                        tx,
                        EngineAuditReader(engine, audit_log),
                        AuditExportTokens(keys.encryption, SERVICE_NAME),
                    ),
                )
            ],
            admin_policy(),
            verifier=operators,
        ),
        Port(
            PortKind.INTERNAL,
            [
                grpc_service(
                    QUERY_SERVICE,
                    binding_query_service_pb2_grpc.add_BindingQueryServiceServicer_to_server,
                    BindingQueryServicer(ctx, tx),
                )
            ],
            rpc_policy(QUERY_SERVICE, lambda name: require_roles(*QUERY_CALLERS)),
            verifier=services,
        ),
    ]

    def purging(purge: RetentionPurge) -> Callable[[], Coroutine[Any, Any, None]]:
        # `server` is looked up when the task starts, once it is built below.
        return lambda: run_until_shutdown(server, purge.run_forever)

    server = ServiceServer(
        settings,
        ports,
        limiter,
        logger,
        [BackgroundTask(name, purging(purge)) for name, purge in purges.items()],
    )
    return BindingApp(
        settings=settings,
        server=server,
        ctx=ctx,
        tx=tx,
        keys=keys,
        engine=engine,
        vault_engine=vault_engine,
        clients=clients,
        limiter=limiter,
        statements=statements,
    )
