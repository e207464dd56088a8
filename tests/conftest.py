"""Test tiers and the real backing services.

Tiers follow folders: tests/unit, tests/api, tests/integration, tests/e2e each get the marker of
the same name, so `pytest -m unit` runs the fast tier alone.

PostgreSQL and Redis come from, in order: the DATABASE_URL / REDIS_URL environment variables,
with TEST_COMPOSE_STACK=1 the `postgres` and `redis` services of docker-compose.yml (started
through testcontainers' compose support, so the tests run against the images and settings the
compose stack uses), a testcontainers container when a Docker engine answers, or nowhere, in
which case the tests that need them are skipped with the reason. With REQUIRE_SERVICES=1 (CI)
a missing service fails the run instead of skipping it.

Hypothesis runs under the derandomized `ci` profile unless HYPOTHESIS_PROFILE names another
(`fuzz`): see tests/support/profiles.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.figures import recorded
from tests.support.profiles import (
    generated_requests_sent,
    matrix_calls_refused,
    register_profiles,
)

register_profiles()

_TIERS = ("unit", "api", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
                break


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if sent := generated_requests_sent():
        terminalreporter.write_line(f"generated requests sent to the services: {sent:,}")
    if refused := matrix_calls_refused():
        terminalreporter.write_line(
            f"authorization matrix: calls refused as they should be: {refused:,}"
        )
    for kind, lines in recorded().items():
        terminalreporter.write_line(f"{kind}:")
        for line in lines:
            terminalreporter.write_line(f"  {line}")


def _require_services() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "") == "1"


def _unavailable(what: str, why: str) -> None:
    message = f"{what} unavailable: {why}"
    if _require_services():
        pytest.fail(f"{message} (REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
    pytest.skip(message)


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def to_asyncpg_url(url: str) -> str:
    """Accept the libpq spelling (postgresql://) and return SQLAlchemy's asyncpg one."""
    for prefix in (
        "postgresql+asyncpg://",
        "postgresql+psycopg2://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a PostgreSQL URL")


_COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
# docker-compose.yml's development credentials for its postgres service (never production's).
_COMPOSE_POSTGRES = "postgresql+asyncpg://wallet:wallet-dev-only@{host}:{port}/wallet"


def _compose_requested() -> bool:
    return os.environ.get("TEST_COMPOSE_STACK", "") == "1"


@pytest.fixture(scope="session")
def compose_stack() -> Iterator[Any]:
    """docker-compose.yml's postgres and redis services, up for the whole session."""
    if not _docker_answers():
        _unavailable("the compose stack", "TEST_COMPOSE_STACK=1 but no Docker engine answers")
    from testcontainers.compose import DockerCompose

    with DockerCompose(
        _COMPOSE_FILE.parent,
        compose_file_name=_COMPOSE_FILE.name,
        services=["postgres", "redis"],
        wait=True,
    ) as stack:
        yield stack


@pytest.fixture(scope="session")
def postgres_server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a PostgreSQL server (asyncpg dialect) the whole session may use."""
    if url := os.environ.get("DATABASE_URL"):
        yield to_asyncpg_url(url)
        return
    if _compose_requested():
        host, port = request.getfixturevalue("compose_stack").get_service_host_and_port(
            "postgres", 5432
        )
        yield _COMPOSE_POSTGRES.format(host=host, port=port)
        return
    if not _docker_answers():
        _unavailable("PostgreSQL", "DATABASE_URL is not set and no Docker engine answers")
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
        yield container.get_connection_url()


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a Redis server the whole session may use; tests isolate by key prefix."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    if _compose_requested():
        host, port = request.getfixturevalue("compose_stack").get_service_host_and_port(
            "redis", 6379
        )
        yield f"redis://{host}:{port}/0"
        return
    if not _docker_answers():
        _unavailable("Redis", "REDIS_URL is not set and no Docker engine answers")
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7-alpine") as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6379)
        yield f"redis://{host}:{port}/0"


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses, so tests share one Redis without flushing it."""
    return f"test-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def fresh_postgres_database(server_url: str) -> AsyncIterator[str]:
    """The URL of a fresh, empty PostgreSQL database on `server_url`, dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def postgres_url(postgres_server_url: str) -> AsyncIterator[str]:
    """The URL of a fresh, empty PostgreSQL database created for this test alone.

    Tests may commit for real (concurrency tests must) without seeing each other's rows, and the
    URL works unchanged in a subprocess. Creating a database costs about 0.15 s here.
    """
    async with fresh_postgres_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file, the embedded default."""
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))
