"""Auth's composition root: settings -> adapters -> use-case context -> servicers -> server.

This is the one place that knows every concrete class. `build(settings)` wires everything and
starts nothing; `AuthApp.start()` migrates the database (when the settings say so) and opens
the three ports; `AuthApp.close()` stops and releases it all. `python -m services.auth` runs
it until SIGTERM.

Who may call what:

- public port: the signed-out RPCs (registration, sign-in, refresh, reset, self-freeze) are
  PUBLIC, every other AuthService RPC needs a user's access token of a live session of an
  active account (`ActiveSessionVerifier`). SignIn is rate-limited per client address and per
  identifier by the server's interceptor.
- admin port: security officers' operator tokens, for every AccountAdminService RPC.
- internal port: service tokens of kyc, binding and refund; the contact change is binding's
  alone (a service's name is its role).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from services.auth.adapters.passwords import PasswordHasher
from services.auth.adapters.repositories.protection import CONTACT_INDEX_CONTEXT, Protection
from services.auth.adapters.tables import audit_log, idempotency_records, outbox
from services.auth.adapters.transactions import SqlTransactions
from services.auth.adapters.uow import SqlAuthUnitOfWork
from services.auth.api.admin import AccountAdminServicer
from services.auth.api.auth_service import AuthServicer
from services.auth.api.convert import contact_from
from services.auth.api.status import AccountStatusServicer
from services.auth.domain.passwords import PasswordPolicy
from services.auth.service.codes import destination_subject
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
from walletcore import audit
from walletcore.clock import Clock, utc_now
from walletcore.crypto import BlindIndex, KeyRing, SecretHasher, random_numeric_code, random_token
from walletcore.db import create_engine, normalize_url, session_factory
from walletcore.errors import InvalidArgument
from walletcore.grpc.access import AUTHENTICATED, PUBLIC, AccessRule, require_roles
from walletcore.grpc.interceptors import RateRule, by_client_address
from walletcore.grpc.server import BackgroundTask, Port, PortKind, Service, ServiceServer
from walletcore.idempotency import IdempotencyRecords
from walletcore.identity import Caller, OperatorRole
from walletcore.keys import development_keys, parse_key_spec
from walletcore.migrations import upgrade_to_head
from walletcore.notify import NotificationOutbox, Transports, transports_from_settings
from walletcore.outbox import OutboxDispatcher
from walletcore.ratelimit import (
    SIGN_IN_PER_ACCOUNT_MINUTE,
    SIGN_IN_PER_CLIENT_ADDRESS_MINUTE,
    InMemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from walletcore.ratelimit.policies import codes_sent_per_destination
from walletcore.tokens import (
    DEVELOPMENT_IDENTITY_KEYS_LABEL,
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
    contact_index: BlindIndex
    rate_limit_subjects: bytes
    identity_jwks: list[dict[str, str]]

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> AuthKeys:
        def spec(value: SecretStr | None) -> str | None:
            return None if value is None else value.get_secret_value()

        encryption, signing = spec(settings.encryption_keys), spec(settings.signing_keys)
        hashes, index = spec(settings.hash_keys), spec(settings.contact_index_keys)
        subjects = spec(settings.rate_limit_subject_key)
        label = DEVELOPMENT_KEYS_LABEL
        return cls(
            encryption=KeyRing.from_spec(encryption) if encryption else KeyRing.development(label),
            signing=(
                SigningKeyRing.from_spec(signing) if signing else SigningKeyRing.development(label)
            ),
            secrets=(
                SecretHasher.from_spec(hashes, context=SECRET_HASH_CONTEXT)
                if hashes
                else SecretHasher.development(context=SECRET_HASH_CONTEXT)
            ),
            contact_index=(
                BlindIndex.from_spec(index, context=CONTACT_INDEX_CONTEXT)
                if index
                else BlindIndex.development(context=CONTACT_INDEX_CONTEXT)
            ),
            rate_limit_subjects=(
                parse_key_spec(subjects)[0].secret
                if subjects
                else development_keys(DEVELOPMENT_RATE_LIMIT_KEY_LABEL)[0].secret
            ),
            identity_jwks=(
                settings.identity_keys_jwks
                if settings.identity_keys_jwks is not None
                else SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL).public_jwks()
            ),
        )


# -- who may call what -------------------------------------------------------------------------


def _policy(
    service: ServiceDescriptor, rule_of: Callable[[str], AccessRule]
) -> dict[str, AccessRule]:
    return {
        f"/{service.full_name}/{method.name}": rule_of(method.name) for method in service.methods
    }


def public_policy() -> dict[str, AccessRule]:
    return _policy(AUTH_SERVICE, lambda name: PUBLIC if name in SIGNED_OUT_RPCS else AUTHENTICATED)


def admin_policy() -> dict[str, AccessRule]:
    officers = require_roles(OperatorRole.SECURITY_OFFICER.value)
    return _policy(ADMIN_SERVICE, lambda name: officers)


def internal_policy() -> dict[str, AccessRule]:
    status_callers = require_roles(*STATUS_CALLERS)
    binding = require_roles(CONTACT_CHANGE_CALLER)
    return _policy(
        STATUS_SERVICE, lambda name: binding if name in CONTACT_CHANGE_RPCS else status_callers
    )


def by_identifier(request: Any, caller: Caller, address: str) -> str | None:
    """The normalised identifier a SignIn names; None for a malformed one, which the RPC
    itself refuses (the per-address limit still counts it)."""
    try:
        return destination_subject(contact_from(request.identifier, "identifier"))
    except InvalidArgument:
        return None


def sign_in_rate_rules() -> dict[str, list[RateRule]]:
    return {
        f"/{AUTH_SERVICE.full_name}/SignIn": [
            RateRule(SIGN_IN_PER_CLIENT_ADDRESS_MINUTE, by_client_address),
            RateRule(SIGN_IN_PER_ACCOUNT_MINUTE, by_identifier),
        ]
    }


# -- the application ---------------------------------------------------------------------------


class EngineAuditReader:
    """`admin.AuditReader` over auth's audit table, each call in its own read transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def verify(self) -> audit.AuditVerification:
        async with self._engine.connect() as connection:
            return await audit.verify(connection, audit_log)

    async def export(self, *, after_seq: int, limit: int) -> list[dict[str, Any]]:
        async with self._engine.connect() as connection:
            return await audit.export(connection, audit_log, after_seq=after_seq, limit=limit)


@dataclass
class AuthApp:
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
    ports: dict[str, int] | None = None

    async def start(self) -> dict[str, int]:
        """Migrates (when `migrate_on_start`), then binds the ports; returns them by kind."""
        if self.settings.migrate_on_start:
            await upgrade_to_head(self.settings.database_url, MIGRATIONS_DIR)
        self.ports = await self.server.start()
        return self.ports

    async def close(self, grace: float | None = None) -> None:
        """Stops serving (in-flight calls get `grace` seconds) and releases every resource."""
        try:
            await self.server.stop(grace)
        finally:
            await self._release()

    async def run_until_signal(self) -> None:
        """Serves until SIGTERM or SIGINT, then stops gracefully."""
        try:
            await self.start()
            await self.server.run_until_signal()
        finally:
            await self._release()

    async def _release(self) -> None:
        try:
            await self.transports.aclose()
            await self.limiter.close()
        finally:
            self.hasher.close()
            await self.engine.dispose()


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
    engine = create_engine(_prepared_database_url(settings.database_url))
    sessions = session_factory(engine)
    limiter = _limiter(settings, keys)
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
        IdempotencyRecords(idempotency_records, clock=clock, key_ring=keys.encryption),
    )
    transports = (
        transports if transports is not None else transports_from_settings(settings.notifier)
    )
    dispatcher = OutboxDispatcher(engine, outbox, notifications.handlers(transports), clock=clock)

    async def dispatch() -> None:
        await _dispatch_until_shutdown(dispatcher, server, settings.outbox_poll_seconds)

    server = ServiceServer(
        settings,
        _ports(settings, keys, ctx, tx, engine, clock),
        limiter,
        logger,
        [BackgroundTask("outbox-dispatcher", dispatch)],
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
    )


def _ports(
    settings: AuthSettings,
    keys: AuthKeys,
    ctx: AuthContext,
    tx: SqlTransactions,
    engine: AsyncEngine,
    clock: Clock,
) -> list[Port]:
    own_keys = StaticKeySet(keys.signing.public_jwks())
    identities = StaticKeySet(keys.identity_jwks)
    users = ActiveSessionVerifier(
        AccessTokenVerifier(own_keys, settings.issuer, clock=clock), tx, clock
    )
    operators = OperatorTokenVerifier(identities, settings.identity_issuer, clock=clock)
    services = ServiceTokenVerifier(
        identities,
        settings.identity_issuer,
        audience=SERVICE_AUDIENCE,
        allowed_services=STATUS_CALLERS,
        clock=clock,
    )
    public = AuthServicer(ctx, tx)
    officers = AccountAdminServicer(ctx, tx, EngineAuditReader(engine))
    internal = AccountStatusServicer(ctx, tx, keys.signing.public_jwks)
    return [
        Port(
            PortKind.PUBLIC,
            [
                _service(
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
                _service(
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
                _service(
                    STATUS_SERVICE,
                    account_status_service_pb2_grpc.add_AccountStatusServiceServicer_to_server,
                    internal,
                )
            ],
            internal_policy(),
            verifier=services,
        ),
    ]


def _service(descriptor: ServiceDescriptor, add_to_server: Any, servicer: object) -> Service:
    # The generated `add_..._to_server` functions are typed for one servicer class each.
    register: Callable[[grpc.aio.Server], None] = functools.partial(add_to_server, servicer)
    return Service(descriptor.full_name, register)


def _limiter(settings: AuthSettings, keys: AuthKeys) -> RateLimiter:
    if settings.rate_limiter == "redis":
        assert settings.redis_url is not None  # the settings refuse redis without a URL
        return RedisRateLimiter(
            settings.redis_url,
            namespace=settings.rate_limit_namespace,
            subject_key=keys.rate_limit_subjects,
        )
    return InMemoryRateLimiter()


def _prepared_database_url(database_url: str) -> str:
    """The URL, after creating the folder of a SQLite file (the embedded default lives in
    `var/`, which a fresh checkout does not have)."""
    url = normalize_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return database_url


async def _dispatch_until_shutdown(
    dispatcher: OutboxDispatcher, server: ServiceServer, poll_seconds: float
) -> None:
    """Delivers until a graceful stop begins, then finishes the batch in hand (within the
    stop's grace, after which the server cancels it: a cancelled delivery only holds a lease,
    and its message goes out again once the lease ends)."""
    stop = asyncio.Event()

    async def stop_when_shutdown_starts() -> None:
        await server.shutdown_started()
        stop.set()

    watcher = asyncio.create_task(stop_when_shutdown_starts())
    try:
        await dispatcher.run_forever(stop, poll_interval=poll_seconds)
    finally:
        watcher.cancel()
