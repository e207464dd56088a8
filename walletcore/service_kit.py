"""What every service's composition root shares: lifecycle, limiter, database URL, background
loops (outbox, idempotency purge), audit reader, access-policy helpers and key loading.

A service's `bootstrap.py` keeps only its own wiring and uses these pieces:

    @dataclass
    class KycApp(ServiceApp):
        settings: KycSettings
        server: ServiceServer
        engine: AsyncEngine
        limiter: RateLimiter
        migrations_dir: ClassVar[Path] = MIGRATIONS_DIR

        async def _release(self) -> None:
            await release_all(self.limiter.close, self.engine.dispose)

    engine = create_engine(prepared_database_url(settings.database_url))
    limiter = limiter_from_settings(settings, namespace="kyc", subject_key=...)
    policy = rpc_policy(KYC_SERVICE, lambda name: AUTHENTICATED)
    service = grpc_service(KYC_SERVICE, add_KycServiceServicer_to_server, servicer)
    keys: KeyRing = configured_or_development(settings.encryption_keys, KeyRing.from_spec,
                                              lambda: KeyRing.development("kyc"))
    idempotency = IdempotencyRecords(idempotency_records, key_ring=keys,
                                     fingerprints=request_fingerprints(settings.idempotency_keys))
    purge = RetentionPurge(idempotency, sessions)

    async def purge_expired() -> None:  # a BackgroundTask of the ServiceServer
        await run_until_shutdown(server, purge.run_forever)

`ServiceApp.start()` migrates (when `settings.migrate_on_start`) then opens the ports;
`close()` stops and releases; `run_until_signal()` serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor
from pydantic import SecretStr, ValidationError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from walletcore import audit
from walletcore.clock import Clock
from walletcore.crypto import BlindIndex, KeyRing
from walletcore.db import normalize_url
from walletcore.grpc.access import AccessPolicy, AccessRule
from walletcore.grpc.interceptors import RateRule
from walletcore.grpc.server import BackgroundTaskFailed, Port, PortKind, Service, ServiceServer
from walletcore.idempotency import REQUEST_FINGERPRINT_CONTEXT
from walletcore.identity import CredentialVerifier
from walletcore.keys import development_keys, parse_key_spec
from walletcore.logging import configure_logging
from walletcore.migrations import upgrade_to_head
from walletcore.outbox import OutboxDispatcher
from walletcore.ratelimit import InMemoryRateLimiter, RateLimiter, RedisRateLimiter
from walletcore.settings import ServiceSettings
from walletcore.tokens import (
    DEVELOPMENT_IDENTITY_KEYS_LABEL,
    OperatorTokenVerifier,
    ServiceTokenVerifier,
    SigningKeyRing,
    StaticKeySet,
)

_T = TypeVar("_T")

# -- lifecycle ---------------------------------------------------------------------------------


class _MigratingSettings(Protocol):
    @property
    def database_url(self) -> str: ...
    @property
    def migrate_on_start(self) -> bool: ...


class ServiceApp:
    """The start/close/run lifecycle of a wired service. Subclasses (dataclasses) have
    `settings`, `server` and `ports` attributes, set `migrations_dir`, and implement
    `_release` (typically with `release_all`)."""

    migrations_dir: ClassVar[Path]
    settings: Any
    server: ServiceServer
    ports: dict[str, int] | None

    async def start(self) -> dict[str, int]:
        """Migrates (when `migrate_on_start`), then binds the ports; returns them by kind."""
        settings: _MigratingSettings = self.settings
        if settings.migrate_on_start:
            await upgrade_to_head(settings.database_url, self.migrations_dir)
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
            _exempt_startup_objects_from_gc()
            await self.server.run_until_signal()
        finally:
            await self._release()

    async def _release(self) -> None:
        raise NotImplementedError


def _exempt_startup_objects_from_gc() -> None:
    # What a started service holds (modules, protobuf descriptors, SQLAlchemy metadata and
    # compiled statements, the servers) lives as long as the process, yet every full
    # collection traverses all of it: measured on auth under load, a pause of up to 0.2 s,
    # which every call in flight waits out. Frozen objects are never traversed (or
    # collected); the collection first frees what startup already left behind.
    gc.collect()
    gc.freeze()


async def release_all(*closers: Callable[[], object]) -> None:
    """Calls every closer in order (awaiting those that return an awaitable), even when an
    earlier one fails; the first failure is raised once all have run."""
    failure: BaseException | None = None
    for close in closers:
        try:
            result = close()
            if inspect.isawaitable(result):
                await result
        except Exception as error:  # re-raised below, once the rest are closed
            failure = failure or error
    if failure is not None:
        raise failure


# -- the process -------------------------------------------------------------------------------


_Settings = TypeVar("_Settings", bound=ServiceSettings)


def load_settings(
    settings_type: Callable[[], _Settings], service: str, logger: logging.Logger
) -> _Settings | None:
    """A `python -m services.<name>`'s settings, JSON logging configured before and after
    reading them; None (logged) when they are refused. hide_input_in_errors keeps the values
    (URLs, keys) out of the message, which names the variables only."""
    configure_logging(service)
    try:
        settings = settings_type()
    except ValidationError as refused:
        logger.error("the settings were refused: %s", refused)
        return None
    configure_logging(settings.service_name, settings.log_level)
    return settings


def serve(build: Callable[[], ServiceApp], logger: logging.Logger) -> int:
    """Builds the service inside a new event loop (channels and pools belong to the loop they
    were made in) and serves until SIGTERM or SIGINT; returns the exit status: 0 after a
    graceful stop, 1 when a background task failed."""

    async def run() -> None:
        await build().run_until_signal()

    try:
        asyncio.run(run())
    except BackgroundTaskFailed as failed:
        logger.error("stopped because a background task failed: %s", failed)
        return 1
    return 0


# -- infrastructure ----------------------------------------------------------------------------


def limiter_from_settings(
    settings: ServiceSettings, *, namespace: str, subject_key: bytes
) -> RateLimiter:
    """Redis when the settings say so (production), else the in-process limiter."""
    if settings.rate_limiter == "redis":
        if settings.redis_url is None:  # an invariant, checked also under python -O
            raise RuntimeError("the settings refuse redis without a URL")
        return RedisRateLimiter(
            settings.redis_url,
            namespace=namespace,
            subject_key=subject_key,
            timeout=settings.redis_timeout_seconds,
            connect_timeout=settings.redis_timeout_seconds,
            cluster=settings.redis_cluster,
        )
    return InMemoryRateLimiter()


def prepared_database_url(database_url: str) -> str:
    """The URL, after creating the folder of a SQLite file (the embedded default lives in
    `var/`, which a fresh checkout does not have)."""
    url = normalize_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return database_url


async def run_until_shutdown(
    server: ServiceServer, loop: Callable[[asyncio.Event], Awaitable[None]]
) -> None:
    """Runs a background loop (`loop(stop)`, which returns soon after `stop` is set) until a
    graceful stop of `server` begins; the loop then finishes the work in hand within the
    stop's grace, after which the server cancels it."""
    stop = asyncio.Event()

    async def stop_when_shutdown_starts() -> None:
        await server.shutdown_started()
        stop.set()

    watcher = asyncio.create_task(stop_when_shutdown_starts())
    try:
        await loop(stop)
    finally:
        watcher.cancel()


async def dispatch_until_shutdown(
    dispatcher: OutboxDispatcher, server: ServiceServer, poll_seconds: float
) -> None:
    """Delivers until a graceful stop begins, then finishes the batch in hand (a cancelled
    delivery only holds a lease, and its message goes out again once the lease ends)."""
    await run_until_shutdown(
        server, lambda stop: dispatcher.run_forever(stop, poll_interval=poll_seconds)
    )


class EngineAuditReader:
    """An audit reader (verify and export) over one audit table, each call in its own read
    transaction."""

    def __init__(self, engine: AsyncEngine, table: Table) -> None:
        self._engine = engine
        self._table = table

    async def verify(self) -> audit.AuditVerification:
        async with self._engine.connect() as connection:
            return await audit.verify(connection, self._table)

    async def export(self, *, after_seq: int, limit: int) -> list[dict[str, Any]]:
        async with self._engine.connect() as connection:
            return await audit.export(connection, self._table, after_seq=after_seq, limit=limit)


# -- who may call what -------------------------------------------------------------------------


def rpc_policy(
    service: ServiceDescriptor, rule_of: Callable[[str], AccessRule]
) -> dict[str, AccessRule]:
    """An access policy with one rule per method of `service`, chosen by its name."""
    return {
        f"/{service.full_name}/{method.name}": rule_of(method.name) for method in service.methods
    }


def grpc_service(descriptor: ServiceDescriptor, add_to_server: Any, servicer: object) -> Service:
    """`Service` for a servicer and its generated `add_..._to_server` function."""
    # The generated `add_..._to_server` functions are typed for one servicer class each.
    register: Callable[[grpc.aio.Server], None] = functools.partial(add_to_server, servicer)
    return Service(descriptor.full_name, register)


def serving(
    kind: PortKind,
    descriptor: ServiceDescriptor,
    add_to_server: Any,
    servicer: object,
    access: AccessPolicy,
    *,
    verifier: CredentialVerifier,
    rate_rules: Mapping[str, Sequence[RateRule]] | None = None,
) -> Port:
    """A port serving one servicer, with its access policy, verifier and rate rules."""
    return Port(
        kind,
        [grpc_service(descriptor, add_to_server, servicer)],
        access,
        verifier=verifier,
        rate_rules=rate_rules or {},
    )


@dataclass(frozen=True, slots=True)
class CallerVerifiers:
    """The verifiers of the admin and internal ports: operators and peer services present
    tokens the identity provider signed."""

    operators: OperatorTokenVerifier
    services: ServiceTokenVerifier


def caller_verifiers(
    identity_jwks: list[dict[str, str]],
    identity_issuer: str,
    *,
    audience: str,
    allowed_services: Collection[str],
    clock: Clock,
) -> CallerVerifiers:
    """Operator and service token verifiers over the identity provider's keys; a service
    token must name `audience` and come from one of `allowed_services`."""
    identities = StaticKeySet(identity_jwks)
    return CallerVerifiers(
        OperatorTokenVerifier(identities, identity_issuer, clock=clock),
        ServiceTokenVerifier(
            identities,
            identity_issuer,
            audience=audience,
            allowed_services=allowed_services,
            clock=clock,
        ),
    )


# -- keys --------------------------------------------------------------------------------------


def configured_or_development(
    value: SecretStr | None, parse: Callable[[str], _T], development: Callable[[], _T]
) -> _T:
    """The key material a setting configures, or in its absence the development one (the
    production profile refuses to start without the setting, so that only happens there)."""
    spec = None if value is None else value.get_secret_value()
    return parse(spec) if spec else development()


def encryption_ring(value: SecretStr | None, development_label: str) -> KeyRing:
    """The configured AES-256-GCM key ring, else the development one for `development_label`."""
    return configured_or_development(
        value, KeyRing.from_spec, lambda: KeyRing.development(development_label)
    )


def blind_index(value: SecretStr | None, context: str) -> BlindIndex:
    """The configured blind index keys for `context`, else the development ones."""
    return configured_or_development(
        value,
        lambda spec: BlindIndex.from_spec(spec, context=context),
        lambda: BlindIndex.development(context=context),
    )


def subject_key(value: SecretStr | None, development_label: str) -> bytes:
    """The active key of a spec that keys rate-limit subjects, else a development one."""
    return configured_or_development(
        value,
        lambda spec: parse_key_spec(spec)[0].secret,
        lambda: development_keys(development_label)[0].secret,
    )


def request_fingerprints(value: SecretStr | None) -> BlindIndex:
    """The keyed hash of a service's idempotency fingerprints, from its key-spec setting."""
    return configured_or_development(
        value,
        lambda spec: BlindIndex.from_spec(spec, context=REQUEST_FINGERPRINT_CONTEXT),
        lambda: BlindIndex.development(context=REQUEST_FINGERPRINT_CONTEXT),
    )


def identity_jwks(configured: list[dict[str, str]] | None) -> list[dict[str, str]]:
    """The identity provider's public keys (operator and service tokens): the configured
    ones, else the development identity ring's."""
    if configured is not None:
        return configured
    return SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL).public_jwks()


__all__ = [
    "EngineAuditReader",
    "ServiceApp",
    "blind_index",
    "configured_or_development",
    "dispatch_until_shutdown",
    "encryption_ring",
    "grpc_service",
    "identity_jwks",
    "limiter_from_settings",
    "load_settings",
    "prepared_database_url",
    "release_all",
    "request_fingerprints",
    "rpc_policy",
    "run_until_shutdown",
    "serve",
    "subject_key",
]
