"""The server bootstrap: one grpc.aio server per port, health, reflection, metrics, shutdown.

Public, admin and internal APIs listen on separate ports so that network policy and
authentication differ per surface. A service's composition root reads:

    ports = [
        Port(PortKind.PUBLIC, [Service(AUTH_SERVICE, register_auth)], public_policy,
             verifier=access_tokens, rate_rules=public_limits),
        Port(PortKind.ADMIN, [...], admin_policy, verifier=operator_tokens),
    ]
    server = ServiceServer(settings, ports, limiter, logger, [BackgroundTask("outbox", relay)])
    await server.run_until_signal()

Every port gets the interceptor pipeline of walletcore.grpc.interceptors, the standard health
service (overall and per service SERVING), reflection when settings.reflection is on, and the
receive size limit. Metrics of all ports are served over HTTP on settings.metrics_port.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from walletcore.grpc.access import AccessPolicy
from walletcore.grpc.interceptors import (
    AuthenticationInterceptor,
    ErrorMappingInterceptor,
    RateLimitInterceptor,
    RateRule,
    RequestContextInterceptor,
)
from walletcore.identity import CredentialVerifier
from walletcore.metrics import MetricsEndpoint, RpcMetrics, split_method
from walletcore.ratelimit.base import RateLimiter
from walletcore.settings import ServiceSettings

METRICS_PORT = "metrics"


class PortKind(enum.StrEnum):
    PUBLIC = "public"
    ADMIN = "admin"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Service:
    """A gRPC service to serve: its full proto name and the generated `add_..._to_server`
    call bound to its servicer, e.g. `functools.partial(add_AuthServiceServicer_to_server,
    servicer)`."""

    name: str
    register: Callable[[grpc.aio.Server], None]


@dataclass(frozen=True, slots=True)
class Port:
    """One listening surface and who may call what on it."""

    kind: PortKind
    services: Sequence[Service]
    access: AccessPolicy
    verifier: CredentialVerifier | None = None
    rate_rules: Mapping[str, Sequence[RateRule]] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse policy or rate rule entries for methods of services this port does not serve:
        they are wiring mistakes that would otherwise leave a method silently denied."""
        served = {service.name for service in self.services}
        for full_method in [*self.access, *self.rate_rules]:
            if split_method(full_method)[0] not in served:
                raise ValueError(f"the {self.kind} port does not serve {full_method}")


@dataclass(frozen=True, slots=True)
class BackgroundTask:
    """Work that runs as long as the server (e.g. the outbox dispatcher); cancelled on stop."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]


class BackgroundTaskFailed(RuntimeError):
    """A background task ended with an error; the server stopped so the process restarts."""


@dataclass(slots=True)
class _RunningPort:
    kind: PortKind
    server: grpc.aio.Server
    health: Any  # grpc_health's aio HealthServicer (untyped)
    port: int


class ServiceServer:
    def __init__(
        self,
        settings: ServiceSettings,
        ports: Sequence[Port],
        limiter: RateLimiter,
        logger: logging.Logger,
        background_tasks: Sequence[BackgroundTask] = (),
    ) -> None:
        kinds = [port.kind for port in ports]
        if len(set(kinds)) != len(kinds):
            raise ValueError("each port kind may appear once")
        for port in ports:
            port.check()
        self._settings = settings
        self._ports = ports
        self._limiter = limiter
        self._logger = logger
        self._background_tasks = background_tasks
        self.registry = CollectorRegistry()
        """Services add their own collectors here; served with the RPC metrics."""
        self._metrics = RpcMetrics(self.registry)
        self._metrics_endpoint = MetricsEndpoint(self.registry)
        self._running: list[_RunningPort] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._failed_tasks: list[str] = []
        self._stop_requested = asyncio.Event()
        self._started = False

    async def start(self) -> dict[str, int]:
        """Bind and start every port; returns the bound port numbers by port kind and
        `metrics` (ephemeral ones when the settings say 0)."""
        if self._started:
            raise RuntimeError("a server starts once")
        self._started = True
        for port in self._ports:
            self._running.append(await self._start_port(port))
        bound: dict[str, int] = {running.kind: running.port for running in self._running}
        bound[METRICS_PORT] = self._metrics_endpoint.start(
            self._settings.host, self._settings.metrics_port
        )
        for task in self._background_tasks:
            self._tasks.append(self._spawn(task))
        self._logger.info("server started", extra={"ports": bound})
        return bound

    async def _start_port(self, port: Port) -> _RunningPort:
        server = grpc.aio.server(
            interceptors=self._interceptors(port),
            options=[
                ("grpc.max_receive_message_length", self._settings.max_receive_message_bytes),
                # Two processes must not silently share one fixed port, unless the settings
                # ask for it (scaling out: the kernel spreads connections across them).
                ("grpc.so_reuseport", int(self._settings.reuse_port)),
            ],
        )
        for service in port.services:
            service.register(server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        for name in [health.OVERALL_HEALTH, *(service.name for service in port.services)]:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self._settings.reflection:
            names = [service.name for service in port.services]
            names += [health.SERVICE_NAME, reflection.SERVICE_NAME]
            reflection.enable_server_reflection(names, server)
        number = getattr(self._settings, f"{port.kind}_port")
        bound = server.add_insecure_port(_address(self._settings.host, number))
        await server.start()
        return _RunningPort(port.kind, server, health_servicer, bound)

    def _interceptors(self, port: Port) -> list[grpc.aio.ServerInterceptor]:
        settings = self._settings
        return [
            RequestContextInterceptor(self._logger, self._metrics, settings.trusted_proxy_header),
            ErrorMappingInterceptor(f"{settings.service_name}.wallet", self._logger),
            AuthenticationInterceptor(port.verifier, port.access),
            RateLimitInterceptor(self._limiter, port.rate_rules),
        ]

    def _spawn(self, background: BackgroundTask) -> asyncio.Task[None]:
        task = asyncio.create_task(background.run(), name=background.name)

        def on_done(done: asyncio.Task[None]) -> None:
            if done.cancelled() or done.exception() is None:
                return
            self._logger.error(
                "background task %s failed; stopping",
                background.name,
                exc_info=done.exception(),
            )
            self._failed_tasks.append(background.name)
            self._stop_requested.set()

        task.add_done_callback(on_done)
        return task

    def request_stop(self) -> None:
        """Ask `run_until_signal` to stop gracefully, as SIGTERM does."""
        self._stop_requested.set()

    async def shutdown_started(self) -> None:
        """Return once a graceful stop has begun: long-lived calls can await it to finish
        within the grace instead of being cancelled at its end."""
        await self._stop_requested.wait()

    async def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, stop accepting calls, let in-flight calls finish within `grace`
        seconds (settings.shutdown_grace_seconds by default), then cancel background tasks."""
        if grace is None:
            grace = self._settings.shutdown_grace_seconds
        self._stop_requested.set()
        running, self._running = self._running, []
        for port in running:
            await port.health.enter_graceful_shutdown()
        await asyncio.gather(*(port.server.stop(grace) for port in running))
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # shutdown() waits for the serving thread's poll loop; keep the event loop free.
        await asyncio.to_thread(self._metrics_endpoint.stop)
        if running:
            self._logger.info("server stopped")

    async def run_until_signal(self) -> None:
        """Start (unless `start` was called), serve until SIGTERM or SIGINT (or `request_stop`),
        then stop gracefully.

        Raises BackgroundTaskFailed when a background task's failure caused the stop, so the
        process exits non-zero and its supervisor restarts it.
        """
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for signum in signals:
            loop.add_signal_handler(signum, self._stop_requested.set)
        try:
            if not self._started:
                await self.start()
            await self._stop_requested.wait()
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
            await self.stop()
        if self._failed_tasks:
            raise BackgroundTaskFailed(", ".join(self._failed_tasks))


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
