"""Prometheus metrics of one server, in its own registry, and the HTTP endpoint that serves them.

A registry per server (not prometheus_client's global one) lets several servers live in one
process, as they do in tests and in the embedded development mode. Services register their own
collectors in `ServiceServer.registry`.
"""

from __future__ import annotations

import socket
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

# Security RPCs are mostly fast; the upper buckets catch password hashing and slow peers.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RpcMetrics:
    """Handled RPCs by method and code, and their latency, named as go-grpc-prometheus does."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=registry,
        )
        self._latency = Histogram(
            "grpc_server_handling_seconds",
            "Time to handle an RPC, from its start to its status.",
            ["grpc_service", "grpc_method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, full_method: str, code: grpc.StatusCode, seconds: float) -> None:
        service, method = split_method(full_method)
        self._handled.labels(service, method, code.name).inc()
        self._latency.labels(service, method).observe(seconds)


def split_method(full_method: str) -> tuple[str, str]:
    """`/pkg.Service/Method` -> (`pkg.Service`, `Method`)."""
    service, _, method = full_method.lstrip("/").partition("/")
    return service, method


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a stderr line each (and these would not be JSON)."""


class MetricsEndpoint:
    """Serves a registry at http://host:port/metrics from a daemon thread.

    Built like prometheus_client's start_http_server, with a short poll interval: stopping
    waits for the serving loop's next poll, and half a second per stop adds up in tests.
    """

    _POLL_SECONDS = 0.05

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> int:
        """Start serving; returns the bound port (an ephemeral one when `port` is 0)."""

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        server = make_server(
            host, port, make_wsgi_app(self._registry), Server, handler_class=_QuietHandler
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self._POLL_SECONDS},
            name="metrics-endpoint",
            daemon=True,
        )
        self._thread.start()
        return server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None
