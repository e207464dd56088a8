"""`python -m services` (what `make run` starts) as a test's subprocess, on fixed ports of the
test's own range: the launcher needs fixed ports, and its defaults (50051...) are the user's."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.__main__ import GATEWAY, STACK

ROOT = Path(__file__).resolve().parents[2]
PORT_KINDS = ("PUBLIC", "ADMIN", "INTERNAL", "METRICS")
STARTUP_SECONDS = 60.0
STOP_SECONDS = 20.0
SERVING_LINE = "all services are serving"


def stack_environment(tmp_path: Path, base_port: int) -> dict[str, str]:
    """The user's environment for the launcher: every member's ports from `base_port` on (ten
    per member), its database and the development inbox under `tmp_path`; nothing else of the
    test run's own."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not any(name.startswith(member.prefix) for member in STACK)
        and name not in ("REDIS_URL", "DATABASE_URL")
    }
    for index, member in enumerate(STACK):
        for offset, kind in enumerate(PORT_KINDS):
            environment[f"{member.prefix}{kind}_PORT"] = str(base_port + 10 * index + offset)
        environment[f"{member.prefix}DATABASE_URL"] = (
            f"sqlite+aiosqlite:///{tmp_path / (member.name + '.db')}"
        )
        environment[f"{member.prefix}NOTIFIER__INBOX_PATH"] = str(tmp_path / "inbox.jsonl")
    # Each member uses 4 of its 10 ports: the simulated gateway takes the last of auth's.
    environment[GATEWAY.port_variable] = str(gateway_port(base_port))
    return environment


def gateway_port(base_port: int) -> int:
    return base_port + 9


def stack_ports(base_port: int) -> range:
    return range(base_port, base_port + 10 * len(STACK))


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


@asynccontextmanager
async def serving_stack(
    tmp_path: Path, base_port: int, settings: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[Launcher, dict[str, str]]]:
    """A launcher serving every member on `base_port`'s range, with the members' `settings`
    (variables) on top, stopped for good afterwards."""
    for port in stack_ports(base_port):
        if not port_is_free(port, reuse_address=port == gateway_port(base_port)):
            pytest.fail(f"port {port} of this test's range is taken before the test")
    environment = {**stack_environment(tmp_path, base_port), **(settings or {})}
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


def port_is_free(port: int, *, reuse_address: bool = False) -> bool:
    """Whether a listener could bind `port` now (one binding with SO_REUSEADDR, like the
    gateway's HTTP server, ignores TIME_WAIT entries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if reuse_address:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
