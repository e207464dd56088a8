"""`python -m services` (what `make run` starts) as a user runs it: it serves on the ports the
user set, refuses a port clash with one line naming the busy port, and stops every child on
SIGINT or SIGTERM.

Fixed ports from 31400-31439 and 31480 (the launcher needs fixed ports), never its default
50051...; below Linux's ephemeral range (32768-60999), so no other test's outgoing connection
can hold one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.__main__ import (
    GATEWAY,
    STACK,
    LaunchFailed,
    listens_on,
    member_environment,
    present_members,
    wait_until_serving,
)
from tests.support.stack import (
    PORT_KINDS,
    STARTUP_SECONDS,
    STOP_SECONDS,
    Launcher,
    launch,
    port_is_free,
    process_exists,
    serving_stack,
)

BASE_PORT = 31400


@pytest.fixture
async def running_stack(tmp_path: Path) -> AsyncIterator[tuple[Launcher, dict[str, str]]]:
    async with serving_stack(tmp_path, BASE_PORT) as running:
        yield running


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads children from /proc")
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_serves_on_the_users_ports_refuses_a_clash_and_stops_everything(
    running_stack: tuple[Launcher, dict[str, str]], tmp_path: Path, stop_signal: signal.Signals
) -> None:
    first, environment = running_stack
    members = present_members()
    printed = first.stdout.read_text()
    for member in members:
        public = environment[f"{member.prefix}PUBLIC_PORT"]
        assert f"public 127.0.0.1:{public} " in printed
        async with grpc.aio.insecure_channel(f"127.0.0.1:{public}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    gateway = environment[GATEWAY.port_variable]
    assert f"gateway  http://127.0.0.1:{gateway}  simulated payouts" in printed
    children = first.child_pids()
    assert len(children) == len(members) + 1, "each service and the gateway in its own process"

    second = await launch(environment, tmp_path, "second")
    async with asyncio.timeout(STARTUP_SECONDS):
        status = await second.process.wait()
    assert status != 0
    assert second.stdout.read_text() == ""
    lines = second.stderr.read_text().splitlines()
    assert lines == [
        f"services: port {BASE_PORT} (AUTH_PUBLIC_PORT) is in use: stop what listens there "
        "(another `make run`?) or set AUTH_PUBLIC_PORT to a free port"
    ]
    assert first.process.returncode is None, "the clash must leave the first stack alone"

    first.process.send_signal(stop_signal)
    async with asyncio.timeout(STOP_SECONDS):
        assert await first.process.wait() == 0, first.output()
    assert "Traceback" not in first.output()
    assert [pid for pid in children if process_exists(pid)] == []
    for member in members:
        for kind in PORT_KINDS:
            assert port_is_free(int(environment[f"{member.prefix}{kind}_PORT"]))
    assert port_is_free(int(gateway), reuse_address=True)


def test_the_users_variables_win_over_the_launchers_defaults(tmp_path: Path) -> None:
    kyc = next(member for member in STACK if member.name == "kyc")
    environ = {
        "AUTH_INTERNAL_PORT": "31432",
        "KYC_PUBLIC_PORT": "31431",
        "KYC_DATABASE_URL": "postgresql+asyncpg://db.example.test/kyc",
        "KYC_REDIS_URL": "redis://cache.example.test/1",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }

    env = member_environment(kyc, tmp_path, environ)

    assert env["KYC_PUBLIC_PORT"] == "31431"
    assert env["KYC_ADMIN_PORT"] == "50062"
    assert env["KYC_DATABASE_URL"] == "postgresql+asyncpg://db.example.test/kyc"
    assert env["KYC_REDIS_URL"] == "redis://cache.example.test/1"
    assert env["KYC_AUTH_INTERNAL_ADDRESS"] == "127.0.0.1:31432"


def test_unset_variables_get_the_fixed_local_defaults(tmp_path: Path) -> None:
    auth = STACK[0]

    env = member_environment(auth, tmp_path, {"REDIS_URL": "redis://127.0.0.1:6379/0"})

    assert [env[f"AUTH_{kind}_PORT"] for kind in ("PUBLIC", "ADMIN", "INTERNAL", "METRICS")] == [
        "50051",
        "50052",
        "50053",
        "9101",
    ]
    assert env["AUTH_DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    assert env["AUTH_NOTIFIER__INBOX_PATH"] == str(tmp_path / "inbox.jsonl")
    assert env["AUTH_REDIS_URL"] == "redis://127.0.0.1:6379/0"


def test_refund_pays_through_the_launchers_gateway_unless_the_user_names_one(
    tmp_path: Path,
) -> None:
    refund = next(member for member in STACK if member.name == "refund")

    launched = member_environment(refund, tmp_path, {"REFUND_SIM_PORT": "31449"})
    users_own = member_environment(
        refund, tmp_path, {"REFUND_GATEWAY_URL": "https://payouts.example.test"}
    )

    assert launched["REFUND_GATEWAY_URL"] == "http://127.0.0.1:31449"
    assert users_own["REFUND_GATEWAY_URL"] == "https://payouts.example.test"
    assert GATEWAY.wanted(users_own) is False


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="reads sockets from /proc")
def test_the_listener_of_a_port_is_told_apart_from_other_processes() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])

        assert listens_on(os.getpid(), port) is True
        assert listens_on(os.getppid(), port) is False
    assert listens_on(os.getpid(), port) is False


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="reads sockets from /proc")
async def test_a_health_answer_from_another_process_is_not_taken_for_the_childs() -> None:
    impostor_port = 31480
    impostor = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, impostor)
    await health_servicer.set(health.OVERALL_HEALTH, health_pb2.HealthCheckResponse.SERVING)
    impostor.add_insecure_port(f"127.0.0.1:{impostor_port}")
    await impostor.start()
    # A child that is alive but never listens: as one still importing when the port was taken.
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)"
    )
    try:
        with pytest.raises(LaunchFailed) as refused:
            await wait_until_serving(STACK[0], impostor_port, child, asyncio.Event())
    finally:
        child.kill()
        await child.wait()
        await impostor.stop(None)

    assert str(refused.value) == (
        f"port {impostor_port} (AUTH_INTERNAL_PORT) is in use by another process: "
        "set AUTH_INTERNAL_PORT to a free port"
    )
