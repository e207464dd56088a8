"""What refund's process tests share: binding's query RPCs as a stand-in gRPC server in the
test process, and the simulated payout gateway as its own process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc.aio
import httpx
import pytest

from wallet.binding.v1 import binding_query_service_pb2 as query_pb
from wallet.binding.v1 import binding_query_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StandInBinding(binding_query_service_pb2_grpc.BindingQueryServiceServicer):
    """Binding's query RPCs as the payout needs them: every hold granted, every card usable
    (binding's own rules have their tests)."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self.open = asyncio.Event()
        """Holds are answered once this is set (set from the start unless a test clears it)."""
        self.open.set()

    async def GetInstrument(self, request: Any, context: Any) -> query_pb.GetInstrumentResponse:
        return query_pb.GetInstrumentResponse(
            instrument=query_pb.Instrument(
                instrument_id=request.instrument_id, usable_for_refund=True
            )
        )

    async def GetWithdrawalHold(
        self, request: Any, context: Any
    ) -> query_pb.BindingQueryServiceGetWithdrawalHoldResponse:
        return query_pb.BindingQueryServiceGetWithdrawalHoldResponse()

    async def PlaceRefundHold(self, request: Any, context: Any) -> query_pb.PlaceRefundHoldResponse:
        await self.open.wait()
        self.held[request.refund_id] = request.instrument_id
        return query_pb.PlaceRefundHoldResponse()

    async def ReleaseRefundHold(
        self, request: Any, context: Any
    ) -> query_pb.ReleaseRefundHoldResponse:
        return query_pb.ReleaseRefundHoldResponse(
            released=self.held.pop(request.refund_id, None) is not None
        )


@pytest.fixture
async def binding() -> AsyncIterator[tuple[str, StandInBinding]]:
    server = grpc.aio.server()
    stand_in = StandInBinding()
    binding_query_service_pb2_grpc.add_BindingQueryServiceServicer_to_server(stand_in, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", stand_in
    await server.stop(0)


@asynccontextmanager
async def simulated_gateway(tmp_path: Path, latency_seconds: float) -> AsyncIterator[str]:
    """The simulated gateway as a process, answering each payout after `latency_seconds`;
    yields its URL."""
    port = free_port()
    environment = {
        **os.environ,
        "REFUND_SIM_PORT": str(port),
        "REFUND_SIM_LATENCY_SECONDS": str(latency_seconds),
    }
    with (tmp_path / "gateway.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.refund.gateway_sim",
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    if (await client.get(f"{url}/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[str]:
    """The simulated gateway, answering each payout after 3 seconds."""
    async with simulated_gateway(tmp_path, latency_seconds=3) as url:
        yield url
