"""What the shared server bootstrap costs per RPC, against a bare grpc.aio server.

Both servers answer the same unary echo on loopback, measured in the same run so the ratio
holds on a noisy machine. The bootstrap's server runs the whole pipeline a service gets:
request id and JSON logging context, Prometheus metrics, error mapping, bearer-token
verification (a real EdDSA access-token check) and one in-process rate-limit check per call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import grpc.aio
from google.protobuf import wrappers_pb2
from pydantic_settings import SettingsConfigDict

from benchmarks.timing import median_latency
from walletcore.grpc.access import AUTHENTICATED, service_policy
from walletcore.grpc.interceptors import RateRule, by_caller
from walletcore.grpc.server import Port, PortKind, Service, ServiceServer
from walletcore.ratelimit import InMemoryRateLimiter, Policy
from walletcore.settings import ServiceSettings
from walletcore.tokens import AccessTokenVerifier, SigningKeyRing, StaticKeySet, TokenIssuer

SERVICE = "bench.v1.Echo"
METHOD = f"/{SERVICE}/Echo"
ROUNDS = 5
CALLS_PER_ROUND = 400
WARM_UP_CALLS = 100


class BenchSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_SERVER_")

    service_name: str = "bench"


async def _echo(request: wrappers_pb2.StringValue, context: Any) -> wrappers_pb2.StringValue:
    return request


def register_echo(server: grpc.aio.Server) -> None:
    """Adds the unary echo both servers answer (the hotpath bench's ceiling answers it too)."""
    handler = grpc.unary_unary_rpc_method_handler(
        _echo,
        request_deserializer=wrappers_pb2.StringValue.FromString,
        response_serializer=wrappers_pb2.StringValue.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Echo": handler}),)
    )


async def _bare_server() -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    register_echo(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def pipeline_server(ring: SigningKeyRing) -> tuple[ServiceServer, int]:
    """The echo behind the whole pipeline, with `ring`'s access tokens of issuer "bench"."""
    verifier = AccessTokenVerifier(StaticKeySet(ring.public_jwks()), "bench")
    generous = Policy("bench_per_caller", 10_000_000, 60)
    port = Port(
        PortKind.PUBLIC,
        [Service(SERVICE, register_echo)],
        service_policy(SERVICE, {"Echo": AUTHENTICATED}),
        verifier=verifier,
        rate_rules={METHOD: [RateRule(generous, by_caller)]},
    )
    server = ServiceServer(
        BenchSettings(reflection=False),
        [port],
        InMemoryRateLimiter(),
        logging.getLogger("bench"),
    )
    ports = await server.start()
    return server, ports["public"]


async def _mean_latency(call: Callable[[], Awaitable[object]]) -> float:
    return await median_latency(
        call, rounds=ROUNDS, calls_per_round=CALLS_PER_ROUND, warm_up=WARM_UP_CALLS
    )


async def _measure(port: int, metadata: tuple[tuple[str, str], ...]) -> float:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        echo = channel.unary_unary(
            METHOD,
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )
        request = wrappers_pb2.StringValue(value="ping")
        return await _mean_latency(lambda: echo(request, metadata=metadata))


async def _run() -> list[str]:
    # The per-RPC log lines would dominate the measurement with terminal I/O.
    logging.getLogger("bench").setLevel(logging.WARNING)
    ring = SigningKeyRing.development("bench")
    token = TokenIssuer("bench", ring).access_token(
        account_id="acct-bench", session_id="s-bench", ttl=timedelta(minutes=15)
    )
    bare, bare_port = await _bare_server()
    ours, our_port = await pipeline_server(ring)
    try:
        baseline = await _measure(bare_port, ())
        pipeline = await _measure(our_port, (("authorization", f"Bearer {token.token}"),))
    finally:
        await bare.stop(None)
        await ours.stop(0)
    return [
        f"bare grpc.aio unary echo (baseline): {baseline * 1e3:.3f} ms/call, 1.00x",
        f"walletcore server, full pipeline:    {pipeline * 1e3:.3f} ms/call, "
        f"{pipeline / baseline:.2f}x",
        f"({ROUNDS} rounds of {CALLS_PER_ROUND} sequential calls each, median round)",
    ]


def run() -> list[str]:
    return asyncio.run(_run())
