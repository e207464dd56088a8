"""The Redis limiter on a real Redis Cluster (`cluster=True`, as `<PREFIX>REDIS_CLUSTER` sets).

A one-node cluster owning all 16384 slots, started from the local `redis-server`: the cluster
client must discover it, route the script by its keys' slot, and count exactly. Skipped where no
`redis-server` is installed.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from walletcore.ratelimit import Hit, Policy, RedisRateLimiter


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def cluster_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed to start a Redis Cluster node")
    port, bus = _free_port(), _free_port()
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--cluster-port",
            str(bus),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(tmp_path / "nodes.conf"),
            "--dir",
            str(tmp_path),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def cluster(cluster_url: str) -> str:
    """The node, once it owns every slot and reports the cluster ok."""
    node = Redis.from_url(cluster_url)
    for _ in range(200):
        try:
            await node.ping()
            break
        except RedisConnectionError:
            await asyncio.sleep(0.05)
    await node.cluster("ADDSLOTSRANGE", "0", "16383")
    for _ in range(200):
        info = await node.cluster("INFO")  # parsed into a dict of the INFO fields
        if info.get("cluster_state") == "ok":
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the one-node cluster never reported cluster_state:ok")
    await node.aclose()
    return cluster_url


async def test_the_cluster_client_counts_exactly_and_refuses_past_the_limit(cluster: str) -> None:
    limiter = RedisRateLimiter(cluster, namespace="cluster-probe", cluster=True, timeout=5)
    policy = Policy("codes_sent", 7, 3600)
    other = Policy("per_address", 50, 3600)
    hits = [Hit(policy, "+14155550100"), Hit(other, "10.0.0.1")]
    try:
        decisions = await asyncio.gather(*(limiter.check(hits) for _ in range(20)))
        assert isinstance(limiter._redis, RedisCluster)
    finally:
        await limiter.close()

    assert sum(decision.allowed for decision in decisions) == 7
    refused = [decision for decision in decisions if not decision.allowed]
    assert all(decision.exceeded == (policy,) for decision in refused)
    inspector = RedisCluster.from_url(cluster)
    try:
        # All-or-none across both keys: the address counted only the admitted calls.
        assert await inspector.llen(limiter.key_for(policy, "+14155550100")) == 7
        assert await inspector.llen(limiter.key_for(other, "10.0.0.1")) == 7
    finally:
        await inspector.aclose()
