"""What the fault tests share: the figures they report, and a Redis server of a test's own.

Each fault test records what it tried and what held with `report_fault`; the run's summary
(tests/conftest.py, through tests/support/figures.py) prints one line per fault:

    report_fault("redis stopped and restarted", "limited calls UNAVAILABLE 40/40, ...")

`OwnRedis` is a `redis-server` process on a fixed port of the test's range (a restart must
come back on the same port, where the service's client reconnects), with nothing persisted,
so stopping it loses every counter, as losing a real Redis would.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Self

import grpc
import grpc.aio
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.support.figures import FAULTS, record

POLL_SECONDS = 0.05
POLL_ROUNDS = 200
"""Bounded waits for a condition: 200 looks, 0.05 s apart (10 s at most)."""


def report_fault(fault: str, figures: str) -> None:
    """Records a line for the run's summary: the fault, what was tried and what held."""
    record(fault, figures, kind=FAULTS)


async def code_of(call: Awaitable[object]) -> grpc.StatusCode:
    """The status code a call ended with (OK for a success)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> int:
    """Looks at `condition` until it holds, at most `POLL_ROUNDS` times; returns the number of
    looks it took, or fails the test naming `what`."""
    for look in range(1, POLL_ROUNDS + 1):
        if await condition():
            return look
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"{what} did not happen within {POLL_ROUNDS} looks")


class OwnRedis:
    """`redis-server` on 127.0.0.1:`port`, started and stopped by the test.

    `async with OwnRedis(port, tmp_path) as redis:` starts it; `await redis.stop()` and
    `await redis.start()` take it away and bring it back on the same port."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self._workdir = workdir
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            # As tests/conftest.py treats a missing service: CI (REQUIRE_SERVICES=1) fails.
            if os.environ.get("REQUIRE_SERVICES", "") == "1":
                pytest.fail("redis-server is not installed (REQUIRE_SERVICES=1)", pytrace=False)
            pytest.skip("redis-server is not installed")
        with (self._workdir / f"redis-{self.port}.log").open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
                stdout=log,
                stderr=log,
            )
        await eventually(self.answers, f"redis-server on port {self.port} answering")

    async def stop(self) -> None:
        """Kills the server (SIGKILL: a crash, not a shutdown) and waits until it is gone."""
        if self._process is None or self._process.returncode is not None:
            return
        self._process.kill()
        await self._process.wait()

    async def answers(self) -> bool:
        client = Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(await client.ping())
        except (RedisError, OSError):
            return False
        finally:
            await client.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
