"""Client channels to every port of a running service, for tests that call any RPC by path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import grpc.aio

KINDS = ("public", "admin", "internal")


@asynccontextmanager
async def port_channels(ports: Mapping[str, int]) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    """An insecure channel to 127.0.0.1 for each of the public, admin and internal ports."""
    opened = {kind: grpc.aio.insecure_channel(f"127.0.0.1:{ports[kind]}") for kind in KINDS}
    try:
        yield opened
    finally:
        for channel in opened.values():
            await channel.close()
