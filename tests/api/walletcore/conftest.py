"""Starts the probe service on real ephemeral ports (see probe.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.api.walletcore.probe import FakeLimiter, Running, StartServer, probe_settings
from walletcore.grpc.server import Port, ServiceServer


@pytest.fixture
def start_server() -> StartServer:
    """`async with start_server(ports, limiter=..., **settings) as running:`; stops after."""

    @asynccontextmanager
    async def start(
        ports: Sequence[Port],
        limiter: FakeLimiter | None = None,
        background_tasks: Sequence[Any] = (),
        **settings: Any,
    ) -> AsyncIterator[Running]:
        server_settings = probe_settings(**settings)
        server = ServiceServer(
            server_settings,
            ports,
            limiter or FakeLimiter(),
            logging.getLogger("probe"),
            background_tasks,
        )
        bound = await server.start()
        try:
            yield Running(server, bound, server_settings.host)
        finally:
            await server.stop(grace=0)

    return start
