"""`python -m services` (what `make run` starts) as a user runs it: it serves on the ports the
user set, refuses a port clash with one line naming the busy port, and stops every child on
SIGINT or SIGTERM.

Fixed ports from 51400-51499 (the launcher needs fixed ports), never its default 50051...
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.__main__ import STACK, member_environment, present_members

ROOT = Path(__file__).resolve().parents[2]
BASE_PORT = 51400
STARTUP_SECONDS = 60.0
STOP_SECONDS = 20.0
SERVING_LINE = "all services are serving"


def stack_environment(tmp_path: Path) -> dict[str, str]:
    """The user's environment for the launcher: every member's ports from this test's range
    (ten per member) and its database under `tmp_path`; nothing else of the test run's own."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not any(name.startswith(member.prefix) for member in STACK)
        and name not in ("REDIS_URL", "DATABASE_URL")
    }
    for index, member in enumerate(STACK):
        for offset, kind in enumerate(("PUBLIC", "ADMIN", "INTERNAL", "METRICS")):
            environment[f"{member.prefix}{kind}_PORT"] = str(BASE_PORT + 10 * index + offset)
        environment[f"{member.prefix}DATABASE_URL"] = (
            f"sqlite+aiosqlite:///{tmp_path / (member.name + '.db')}"
        )
    return environment


@dataclass
class Launcher:
    process: asyncio.subprocess.Process
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def child_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]


async def launch(environment: dict[str, str], logs: Path, name: str) -> Launcher:
    stdout, stderr = logs / f"{name}.out", logs / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services", cwd=ROOT, env=environment, stdout=out, stderr=err
        )
    return Launcher(process, stdout, stderr)


async def wait_for_serving_line(launcher: Launcher) -> None:
    async with asyncio.timeout(STARTUP_SECONDS):
        while SERVING_LINE not in launcher.stdout.read_text(errors="replace"):
            if launcher.process.returncode is not None:
                pytest.fail(f"the launcher exited early:\n{launcher.output()}")
            await asyncio.sleep(0.1)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose but its exit status.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(") ")[-1][0] != "Z"


@pytest.fixture
async def running_stack(tmp_path: Path) -> AsyncIterator[tuple[Launcher, dict[str, str]]]:
    for port in range(BASE_PORT, BASE_PORT + 10 * len(STACK)):
        if not port_is_free(port):
            pytest.fail(f"port {port} of this test's range is taken before the test")
    environment = stack_environment(tmp_path)
    launcher = await launch(environment, tmp_path, "first")
    try:
        await wait_for_serving_line(launcher)
        yield launcher, environment
    finally:
        await stop_for_good(launcher)


async def stop_for_good(launcher: Launcher) -> None:
    """Teardown after a failure: SIGTERM (the launcher stops its children), then SIGKILL for
    the launcher and each child, so no service outlives the test."""
    if launcher.process.returncode is not None:
        return
    children = launcher.child_pids()
    launcher.process.terminate()
    try:
        async with asyncio.timeout(STOP_SECONDS):
            await launcher.process.wait()
    except TimeoutError:
        launcher.process.kill()
        await launcher.process.wait()
    for pid in children:
        if process_exists(pid):
            os.kill(pid, signal.SIGKILL)


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
    children = first.child_pids()
    assert len(children) == len(members)

    second = await launch(environment, tmp_path, "second")
    async with asyncio.timeout(STARTUP_SECONDS):
        status = await second.process.wait()
    assert status != 0
    assert second.stdout.read_text() == ""
    lines = second.stderr.read_text().splitlines()
    assert lines == [
        "services: port 51400 (AUTH_PUBLIC_PORT) is in use: stop what listens there "
        "(another `make run`?) or set AUTH_PUBLIC_PORT to a free port"
    ]
    assert first.process.returncode is None, "the clash must leave the first stack alone"

    first.process.send_signal(stop_signal)
    async with asyncio.timeout(STOP_SECONDS):
        assert await first.process.wait() == 0, first.output()
    assert "Traceback" not in first.output()
    assert [pid for pid in children if process_exists(pid)] == []
    for member in members:
        for kind in ("PUBLIC", "ADMIN", "INTERNAL", "METRICS"):
            assert port_is_free(int(environment[f"{member.prefix}{kind}_PORT"]))


def test_the_users_variables_win_over_the_launchers_defaults(tmp_path: Path) -> None:
    kyc = next(member for member in STACK if member.name == "kyc")
    environ = {
        "AUTH_INTERNAL_PORT": "51432",
        "KYC_PUBLIC_PORT": "51431",
        "KYC_DATABASE_URL": "postgresql+asyncpg://db.example.test/kyc",
        "KYC_REDIS_URL": "redis://cache.example.test/1",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }

    env = member_environment(kyc, tmp_path, environ)

    assert env["KYC_PUBLIC_PORT"] == "51431"
    assert env["KYC_ADMIN_PORT"] == "50062"
    assert env["KYC_DATABASE_URL"] == "postgresql+asyncpg://db.example.test/kyc"
    assert env["KYC_REDIS_URL"] == "redis://cache.example.test/1"
    assert env["KYC_AUTH_INTERNAL_ADDRESS"] == "127.0.0.1:51432"


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
    assert env["AUTH_REDIS_URL"] == "redis://127.0.0.1:6379/0"
