"""A probe server run as its own process by the graceful-shutdown test.

Prints its bound ports as one JSON line, then `slow call started` when its Slow method is
entered. That call answers only once shutdown has begun, so it is in flight when SIGTERM comes.
Usage: python slow_server.py GRACE_SECONDS
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

import grpc
from google.protobuf import empty_pb2, wrappers_pb2

from tests.api.walletcore.probe import PROBE, FakeLimiter, probe_settings
from walletcore.grpc.access import PUBLIC, service_policy
from walletcore.grpc.server import Port, PortKind, Service, ServiceServer
from walletcore.logging import configure_logging


async def main(grace_seconds: float) -> None:
    configure_logging("probe", "INFO")
    server: ServiceServer

    async def slow(request: empty_pb2.Empty, context: Any) -> wrappers_pb2.StringValue:
        print("slow call started", flush=True)
        await server.shutdown_started()
        return wrappers_pb2.StringValue(value="finished after shutdown began")

    handler = grpc.unary_unary_rpc_method_handler(
        slow,
        request_deserializer=empty_pb2.Empty.FromString,
        response_serializer=wrappers_pb2.StringValue.SerializeToString,
    )

    def register(grpc_server: grpc.aio.Server) -> None:
        generic = grpc.method_handlers_generic_handler(PROBE, {"Slow": handler})
        grpc_server.add_generic_rpc_handlers([generic])

    port = Port(
        PortKind.PUBLIC, [Service(PROBE, register)], service_policy(PROBE, {"Slow": PUBLIC})
    )
    server = ServiceServer(
        probe_settings(shutdown_grace_seconds=grace_seconds),
        [port],
        FakeLimiter(),
        logging.getLogger("probe"),
    )
    print(json.dumps(await server.start()), flush=True)
    await server.run_until_signal()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1])))
