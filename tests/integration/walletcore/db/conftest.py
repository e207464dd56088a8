from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from walletcore.db import create_engine


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database, once on SQLite and once on PostgreSQL."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def example_migrations() -> Path:
    """The tiny migrations folder (env.py, template, two revisions) the Alembic tests run."""
    return Path(__file__).parent / "example_migrations"
