"""SIGTERM to a real server process: the in-flight call completes and the process exits 0."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import grpc.aio
from google.protobuf import empty_pb2, wrappers_pb2

from tests.api.walletcore.probe import PROBE, Client, method

PROGRAM = Path(__file__).with_name("slow_server.py")
REPOSITORY = Path(__file__).parents[3]
GRACE_SECONDS = 10.0


async def test_sigterm_lets_the_in_flight_call_finish_and_exits_cleanly() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROGRAM),
        str(GRACE_SECONDS),
        cwd=REPOSITORY,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ports = json.loads(await process.stdout.readline())
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['public']}") as channel:
            call = Client(channel).unary(method(PROBE, "Slow"))(empty_pb2.Empty())
            assert await process.stdout.readline() == b"slow call started\n"

            process.send_signal(signal.SIGTERM)
            response: wrappers_pb2.StringValue = await call

        exit_code = await asyncio.wait_for(process.wait(), timeout=GRACE_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert response.value == "finished after shutdown began"
    assert exit_code == 0
    assert process.stderr is not None
    logged = [json.loads(line) for line in (await process.stderr.read()).splitlines()]
    slow_calls = [entry for entry in logged if entry.get("grpc_method") == method(PROBE, "Slow")]
    assert [entry["grpc_code"] for entry in slow_calls] == ["OK"]
