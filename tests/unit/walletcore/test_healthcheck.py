"""The container health check against a real gRPC server with the standard health service."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from walletcore.grpc.healthcheck import default_target, main


@pytest.fixture
def served() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_serving_server_passes(served: tuple[str, health.HealthServicer]) -> None:
    target, servicer = served
    servicer.set(health.OVERALL_HEALTH, health_pb2.HealthCheckResponse.SERVING)
    assert main([target]) == 0


def test_server_shutting_down_fails(served: tuple[str, health.HealthServicer]) -> None:
    target, servicer = served
    servicer.set(health.OVERALL_HEALTH, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert main([target]) == 1


def test_nothing_listening_fails() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Bound, never listened on, then released: nothing answers there.
    assert main([f"127.0.0.1:{port}"]) == 1


def test_default_target_is_the_services_internal_port() -> None:
    assert default_target({"SERVICE": "refund", "REFUND_INTERNAL_PORT": "50083"}) == (
        "127.0.0.1:50083"
    )


@pytest.mark.parametrize(
    "environ", [{}, {"SERVICE": "auth"}, {"SERVICE": "auth", "AUTH_INTERNAL_PORT": "x"}]
)
def test_usage_errors_exit_2(environ: dict[str, str]) -> None:
    assert main([], environ) == 2
    assert main(["a:1", "b:2"], environ) == 2
