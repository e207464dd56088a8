"""Engines from the URLs operators write, and the SQLite settings the embedded mode relies on."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from walletcore.db import create_engine, normalize_url


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("postgresql://app:pw@db:5432/auth", "postgresql+asyncpg://app:pw@db:5432/auth"),
        ("postgres://app:pw@db/auth", "postgresql+asyncpg://app:pw@db/auth"),
        ("postgresql+psycopg2://app@db/auth", "postgresql+asyncpg://app@db/auth"),
        ("postgresql+asyncpg://app@db/auth", "postgresql+asyncpg://app@db/auth"),
        ("sqlite:///var/auth.db", "sqlite+aiosqlite:///var/auth.db"),
        ("sqlite:////srv/data/auth.db", "sqlite+aiosqlite:////srv/data/auth.db"),
        ("sqlite+aiosqlite:///var/auth.db", "sqlite+aiosqlite:///var/auth.db"),
    ],
)
def test_urls_are_normalised_to_the_async_drivers(configured: str, expected: str) -> None:
    assert normalize_url(configured).render_as_string(hide_password=False) == expected


def test_libpq_sslmode_becomes_the_asyncpg_ssl_argument() -> None:
    url = normalize_url("postgresql://app@db/auth?sslmode=verify-full&application_name=auth")

    assert dict(url.query) == {"ssl": "verify-full", "application_name": "auth"}


def test_an_unsupported_backend_is_refused_without_repeating_the_url() -> None:
    with pytest.raises(ValueError, match="mysql") as refused:
        normalize_url("mysql://app:s3cret-pw@db/auth")

    assert "s3cret-pw" not in str(refused.value)


async def test_the_libpq_spelling_of_a_postgresql_url_connects(postgres_url: str) -> None:
    libpq_url = make_url(postgres_url).set(drivername="postgresql")
    engine = create_engine(libpq_url.render_as_string(hide_password=False))
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_sqlite_connections_enforce_foreign_keys_and_use_wal(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url.replace("sqlite+aiosqlite://", "sqlite://"))
    try:
        async with engine.connect() as connection:
            foreign_keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            journal_mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
    finally:
        await engine.dispose()

    assert foreign_keys == 1
    assert journal_mode == "wal"
