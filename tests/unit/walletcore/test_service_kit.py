"""The service kit's pieces that need no server: release order, key fallback, SQLite folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis, RedisCluster

from walletcore.ratelimit.redis import RedisRateLimiter
from walletcore.service_kit import (
    configured_or_development,
    identity_jwks,
    limiter_from_settings,
    prepared_database_url,
    release_all,
)
from walletcore.settings import ServiceSettings
from walletcore.tokens import DEVELOPMENT_IDENTITY_KEYS_LABEL, SigningKeyRing

pytestmark = pytest.mark.unit


async def test_release_all_closes_everything_even_after_a_failure() -> None:
    closed: list[str] = []

    def failing() -> None:
        closed.append("first")
        raise RuntimeError("first failed")

    async def second() -> None:
        closed.append("second")

    def third() -> None:
        closed.append("third")

    with pytest.raises(RuntimeError, match="first failed"):
        await release_all(failing, second, third)
    assert closed == ["first", "second", "third"]


def test_a_configured_key_wins_over_the_development_one() -> None:
    assert configured_or_development(SecretStr("spec"), str.upper, lambda: "dev") == "SPEC"
    assert configured_or_development(None, str.upper, lambda: "dev") == "dev"
    assert configured_or_development(SecretStr(""), str.upper, lambda: "dev") == "dev"


def test_identity_jwks_default_to_the_development_identity_ring() -> None:
    development = SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL).public_jwks()
    assert identity_jwks(None) == development
    configured = SigningKeyRing.development("elsewhere").public_jwks()
    assert identity_jwks(configured) == configured


def test_a_sqlite_file_gets_its_folder(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/var/deep/kyc.db"
    assert prepared_database_url(url) == url
    assert (tmp_path / "var" / "deep").is_dir()


async def test_the_redis_limiter_waits_as_long_as_the_settings_say() -> None:
    settings = ServiceSettings(
        service_name="probe",
        redis_url="redis://127.0.0.1:1/0",
        redis_timeout_seconds=1.5,
    )

    limiter = limiter_from_settings(settings, namespace="probe", subject_key=b"k" * 32)
    try:
        assert isinstance(limiter, RedisRateLimiter)
        # The client's own socket timeouts: nothing connects before the first check.
        client = limiter._redis
        assert isinstance(client, Redis)
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (1.5, 1.5)
    finally:
        await limiter.close()


async def test_a_cluster_url_gets_a_cluster_client_with_the_same_timeouts() -> None:
    settings = ServiceSettings(
        service_name="probe",
        redis_url="redis://127.0.0.1:1/0",
        redis_cluster=True,
        redis_timeout_seconds=0.75,
    )

    limiter = limiter_from_settings(settings, namespace="probe", subject_key=b"k" * 32)
    try:
        assert isinstance(limiter, RedisRateLimiter)
        # Nothing connects before the first check, so no cluster is needed to build it.
        client = limiter._redis
        assert isinstance(client, RedisCluster)
        kwargs = client.nodes_manager.connection_kwargs
        assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.75, 0.75)
    finally:
        await limiter.close()
