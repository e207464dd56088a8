"""Auth's composition root: settings -> adapters -> use-case context -> servicers -> server.

This is the one place that knows every concrete class. `build(settings)` wires everything and
starts nothing; `AuthApp.start()` migrates the database (when the settings say so) and opens
the three ports; `AuthApp.close()` stops and releases it all. `python -m services.auth` runs
it until SIGTERM.

Who may call what:

- public port: the signed-out RPCs (registration, sign-in, refresh, reset, self-freeze) are
  PUBLIC, every other AuthService RPC needs a user's access token of a live session of an
  active account (`ActiveSessionVerifier`). SignIn is rate-limited per client address by the
  server's interceptor, and per identifier or per device token by the use case (only it can
  tell whether a device token belongs to the identifier's account).
- admin port: security officers' operator tokens, for every AccountAdminService RPC.
- internal port: service tokens of kyc, binding and refund; the contact change is binding's
  alone (a service's name is its role).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from services.auth.adapters.passwords import PasswordHasher
from services.auth.adapters.repositories.protection import CONTACT_INDEX_CONTEXT, Protection
from services.auth.adapters.repositories.reads import SqlAccountReads
from services.auth.adapters.tables import audit_log, idempotency_records, outbox, used_grants
from services.auth.adapters.transactions import SqlTransactions
from services.auth.adapters.uow import SqlAuthUnitOfWork
from services.auth.api.admin import AccountAdminServicer
from services.auth.api.auth_service import AuthServicer
from services.auth.api.status import AccountStatusServicer
from services.auth.domain.passwords import PasswordPolicy
from services.auth.service.context import AuthContext, AuthRules
from services.auth.settings import AuthSettings
from services.auth.verifiers import ActiveSessionVerifier
from wallet.auth.v1 import (
    account_admin_service_pb2,
    account_admin_service_pb2_grpc,
    account_status_service_pb2,
    account_status_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
)
from walletcore.clock import Clock, utc_now
from walletcore.crypto import BlindIndex, KeyRing, SecretHasher, random_numeric_code, random_token
from walletcore.db import SingleStatementReads, create_engine, session_factory
from walletcore.grants import ExpiredGrantRows
from walletcore.grpc.access import AUTHENTICATED, PUBLIC, AccessRule, require_roles
from walletcore.grpc.interceptors import RateRule, by_client_address
from walletcore.grpc.server import BackgroundTask, Port, PortKind, ServiceServer
from walletcore.idempotency import IdempotencyRecords, RetentionPurge
from walletcore.identity import OperatorRole
from walletcore.notify import NotificationOutbox, Transports, transports_from_settings
from walletcore.outbox import OutboxDispatcher
from walletcore.ratelimit import (
    SIGN_IN_PER_CLIENT_ADDRESS_MINUTE,
    RateLimiter,
)
from walletcore.ratelimit.policies import codes_sent_per_destination
from walletcore.service_kit import (
    EngineAuditReader,
    ServiceApp,
    blind_index,
    configured_or_development,
    dispatch_until_shutdown,
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
    SigningKeyRing,
    StaticKeySet,
    TokenIssuer,
)

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
SECRET_HASH_CONTEXT: Final = "auth.secrets"  # noqa: S105 (a key-derivation label)
# The device tokens' MAC key is derived from AUTH_HASH_KEYS under a context of its own.
DEVICE_TOKEN_CONTEXT: Final = "auth.device_tokens"  # noqa: S105 (a key-derivation label)
SERVICE_AUDIENCE: Final = "auth"
STATUS_CALLERS: Final = ("kyc", "binding", "refund")
CONTACT_CHANGE_CALLER: Final = "binding"
DEVELOPMENT_KEYS_LABEL: Final = "auth"
DEVELOPMENT_RATE_LIMIT_KEY_LABEL: Final = "auth-rate-limit-subjects"

AUTH_SERVICE: Final = auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"]
ADMIN_SERVICE: Final = account_admin_service_pb2.DESCRIPTOR.services_by_name["AccountAdminService"]
STATUS_SERVICE: Final = account_status_service_pb2.DESCRIPTOR.services_by_name[
    "AccountStatusService"
]
SIGNED_OUT_RPCS: Final = frozenset(
    {
        "StartRegistration",
        "CompleteRegistration",
        "SignIn",
        "CompleteSignIn",
        "RefreshSession",
        "StartCredentialReset",
        "CompleteCredentialReset",
        "StartSelfFreeze",
        "ConfirmSelfFreeze",
    }
)
"""The AuthService RPCs the proto documents as "Signed out"."""
CONTACT_CHANGE_RPCS: Final = frozenset({"StartContactVerification", "CompleteContactChange"})

logger = logging.getLogger("services.auth")


# -- keys --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthKeys:
    """Every key auth uses; the development profile derives the missing ones from the public
    development seed (production settings refuse to start without them)."""

    encryption: KeyRing
    signing: SigningKeyRing
    secrets: SecretHasher
    device_tokens: SecretHasher
    contact_index: BlindIndex
    rate_limit_subjects: bytes
    request_fingerprints: BlindIndex
    identity_jwks: list[dict[str, str]]

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> AuthKeys:
        label = DEVELOPMENT_KEYS_LABEL
        return cls(
            encryption=encryption_ring(settings.encryption_keys, label),
            signing=configured_or_development(
                settings.signing_keys,
                SigningKeyRing.from_spec,
                lambda: SigningKeyRing.development(label),
            ),
            secrets=configured_or_development(
                settings.hash_keys,
                lambda spec: SecretHasher.from_spec(spec, context=SECRET_HASH_CONTEXT),
                lambda: SecretHasher.development(context=SECRET_HASH_CONTEXT),
            ),
            device_tokens=configured_or_development(
                settings.hash_keys,
                lambda spec: SecretHasher.from_spec(spec, context=DEVICE_TOKEN_CONTEXT),
                lambda: SecretHasher.development(context=DEVICE_TOKEN_CONTEXT),
            ),
            contact_index=blind_index(settings.contact_index_keys, CONTACT_INDEX_CONTEXT),
            rate_limit_subjects=subject_key(
                settings.rate_limit_subject_key, DEVELOPMENT_RATE_LIMIT_KEY_LABEL
            ),
            request_fingerprints=request_fingerprints(settings.idempotency_keys),
            identity_jwks=identity_jwks(settings.identity_keys_jwks),
        )


# -- who may call what -------------------------------------------------------------------------


def public_policy() -> dict[str, AccessRule]:
    return rpc_policy(
        AUTH_SERVICE, lambda name: PUBLIC if name in SIGNED_OUT_RPCS else AUTHENTICATED
    )


def admin_policy() -> dict[str, AccessRule]:
    officers = require_roles(OperatorRole.SECURITY_OFFICER.value)
    return rpc_policy(ADMIN_SERVICE, lambda name: officers)


def internal_policy() -> dict[str, AccessRule]:
    status_callers = require_roles(*STATUS_CALLERS)
    binding = require_roles(CONTACT_CHANGE_CALLER)
    return rpc_policy(
        STATUS_SERVICE, lambda name: binding if name in CONTACT_CHANGE_RPCS else status_callers
    )


def sign_in_rate_rules() -> dict[str, list[RateRule]]:
    """Per client address, before anything else. The per-identifier limit is the use case's
    (`service.signin`): a valid device token moves the attempt to the token's own limit."""
    return {
        f"/{AUTH_SERVICE.full_name}/SignIn": [
            RateRule(SIGN_IN_PER_CLIENT_ADDRESS_MINUTE, by_client_address),
        ]
    }


# -- the application ---------------------------------------------------------------------------


@dataclass
class AuthApp(ServiceApp):
    """The wired service. Tests use `ctx` (its clock, limiter, keys) and `tx` directly."""

    settings: AuthSettings
    server: ServiceServer
    ctx: AuthContext
    tx: SqlTransactions
    keys: AuthKeys
    engine: AsyncEngine
    dispatcher: OutboxDispatcher
    transports: Transports
    limiter: RateLimiter
    hasher: PasswordHasher
    statements: SingleStatementReads
    ports: dict[str, int] | None = None

    migrations_dir: ClassVar[Path] = MIGRATIONS_DIR

    async def _release(self) -> None:
        await release_all(
            self.transports.aclose,
            self.limiter.close,
            self.hasher.close,
            self.statements.close,
            self.engine.dispose,
        )


def rules_from_settings(settings: AuthSettings) -> AuthRules:
    """The default rules, with what the settings tune."""
    return AuthRules(code_resend=codes_sent_per_destination(settings.code_resend_interval_seconds))


def build(
    settings: AuthSettings,
    *,
    clock: Clock = utc_now,
    transports: Transports | None = None,
    rules: AuthRules | None = None,
) -> AuthApp:
    """Wires auth from `settings`. `clock`, `transports` and `rules` default to the real ones;
    tests may pass their own."""
    keys = AuthKeys.from_settings(settings)
    engine = create_engine(prepared_database_url(settings.database_url))
    sessions = session_factory(engine)
    idempotency = IdempotencyRecords(
        idempotency_records,
        fingerprints=keys.request_fingerprints,
        clock=clock,
        key_ring=keys.encryption,
    )
    limiter = limiter_from_settings(
        settings, namespace=settings.rate_limit_namespace, subject_key=keys.rate_limit_subjects
    )
    hasher = PasswordHasher(max_concurrent=settings.password_hash_concurrency)
    rules = rules if rules is not None else rules_from_settings(settings)
    own_keys = StaticKeySet(keys.signing.public_jwks())
    ctx = AuthContext(
        clock=clock,
        new_id=lambda: uuid.uuid4().hex,
        new_code=random_numeric_code,
        new_secret=random_token,
        secrets=keys.secrets,
        encryption=keys.encryption,
        passwords=hasher,
        password_policy=PasswordPolicy.default(),
        tokens=TokenIssuer(settings.issuer, keys.signing, clock),
        grants=GrantVerifier(own_keys, settings.issuer, clock=clock),
        limiter=limiter,
        device_tokens=keys.device_tokens,
        rules=rules,
    )
    notifications = NotificationOutbox(outbox, keys.encryption, clock=clock)
    protection = Protection(encryption=keys.encryption, contact_index=keys.contact_index)
    tx = SqlTransactions(
        lambda: SqlAuthUnitOfWork(
            sessions,
            protection=protection,
            outbox=notifications,
            clock=clock,
            code_failure_policy=rules.code_failure_policy,
        ),
        idempotency,
    )
    statements = SingleStatementReads(engine)
    reads = SqlAccountReads(statements, protection)
    transports = (
        transports if transports is not None else transports_from_settings(settings.notifier)
    )
    dispatcher = OutboxDispatcher(engine, outbox, notifications.handlers(transports), clock=clock)

    purge = RetentionPurge(
        idempotency, sessions, interval_seconds=settings.idempotency_purge_interval_seconds
    )
    grant_purge = RetentionPurge(
        ExpiredGrantRows(used_grants, clock=clock),
        sessions,
        interval_seconds=settings.idempotency_purge_interval_seconds,
    )

    async def dispatch() -> None:
        await dispatch_until_shutdown(dispatcher, server, settings.outbox_poll_seconds)

    async def purge_expired_requests() -> None:
        await run_until_shutdown(server, purge.run_forever)

    async def purge_spent_grants() -> None:
        await run_until_shutdown(server, grant_purge.run_forever)

    server = ServiceServer(
        settings,
        _ports(settings, keys, ctx, tx, reads, engine, clock),
        limiter,
        logger,
        [
            BackgroundTask("outbox-dispatcher", dispatch),
            BackgroundTask("idempotency-purge", purge_expired_requests),
            BackgroundTask("consumed-grant-purge", purge_spent_grants),
        ],
    )
    return AuthApp(
        settings=settings,
        server=server,
        ctx=ctx,
        tx=tx,
        keys=keys,
        engine=engine,
        dispatcher=dispatcher,
        transports=transports,
        limiter=limiter,
        hasher=hasher,
        statements=statements,
    )


def _ports(
    settings: AuthSettings,
    keys: AuthKeys,
    ctx: AuthContext,
    tx: SqlTransactions,
    reads: SqlAccountReads,
    engine: AsyncEngine,
    clock: Clock,
) -> list[Port]:
    own_keys = StaticKeySet(keys.signing.public_jwks())
    identities = StaticKeySet(keys.identity_jwks)
    users = ActiveSessionVerifier(
        AccessTokenVerifier(own_keys, settings.issuer, clock=clock), reads, clock
    )
    operators = OperatorTokenVerifier(identities, settings.identity_issuer, clock=clock)
    services = ServiceTokenVerifier(
        identities,
        settings.identity_issuer,
        audience=SERVICE_AUDIENCE,
        allowed_services=STATUS_CALLERS,
        clock=clock,
    )
    public = AuthServicer(ctx, tx, reads)
    officers = AccountAdminServicer(ctx, tx, EngineAuditReader(engine, audit_log))
    internal = AccountStatusServicer(ctx, tx, reads, keys.signing.public_jwks)
    return [
        Port(
            PortKind.PUBLIC,
            [
                grpc_service(
                    AUTH_SERVICE, auth_service_pb2_grpc.add_AuthServiceServicer_to_server, public
                )
            ],
            public_policy(),
            verifier=users,
            rate_rules=sign_in_rate_rules(),
        ),
        Port(
            PortKind.ADMIN,
            [
                grpc_service(
                    ADMIN_SERVICE,
                    account_admin_service_pb2_grpc.add_AccountAdminServiceServicer_to_server,
                    officers,
                )
            ],
            admin_policy(),
            verifier=operators,
        ),
        Port(
            PortKind.INTERNAL,
            [
                grpc_service(
                    STATUS_SERVICE,
                    account_status_service_pb2_grpc.add_AccountStatusServiceServicer_to_server,
                    internal,
                )
            ],
            internal_policy(),
            verifier=services,
        ),
    ]
