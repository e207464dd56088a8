"""Alembic per service: upgrade, current revision, drift check, autogenerate, offline SQL."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
from alembic.util import CommandError
from sqlalchemy import inspect

from walletcore.db import create_engine
from walletcore.migrations import current_revision, head_revision, main, upgrade_to_head


async def run_cli(*argv: str) -> int:
    # The command line runs Alembic's env.py under its own event loop, so not on the test's.
    return await asyncio.to_thread(main, list(argv))


async def unique_constraints(database_url: str, table: str) -> list[str | None]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(
                lambda sync: inspect(sync).get_unique_constraints(table)
            )
    finally:
        await engine.dispose()
    return [constraint["name"] for constraint in found]


async def test_upgrade_to_head_brings_a_fresh_database_to_the_newest_revision(
    database_url: str, example_migrations: Path
) -> None:
    assert await current_revision(database_url) is None

    await upgrade_to_head(database_url, example_migrations)

    assert head_revision(example_migrations) == "0002"
    assert await current_revision(database_url) == "0002"
    assert await unique_constraints(database_url, "ledger_entries") == [
        "uq_ledger_entries_account_id_memo"
    ]


async def test_upgrading_an_up_to_date_database_changes_nothing(
    database_url: str, example_migrations: Path
) -> None:
    await upgrade_to_head(database_url, example_migrations)
    await upgrade_to_head(database_url, example_migrations)

    assert await current_revision(database_url) == "0002"


async def test_the_migrated_schema_matches_the_models(
    database_url: str, example_migrations: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await upgrade_to_head(database_url, example_migrations)

    exit_code = await run_cli("check", str(example_migrations), "--database-url", database_url)

    assert exit_code == 0, capsys.readouterr().err


async def test_check_fails_while_a_model_change_has_no_revision(
    sqlite_url: str, example_migrations: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    migrations = shutil.copytree(example_migrations, tmp_path / "migrations")
    (migrations / "versions" / "0002_add_ledger_memo.py").unlink()
    await upgrade_to_head(sqlite_url, migrations)

    exit_code = await run_cli("check", str(migrations), "--database-url", sqlite_url)

    assert exit_code == 1
    assert "New upgrade operations detected" in capsys.readouterr().err


async def test_revision_autogenerates_the_missing_change_without_a_database_server(
    database_url: str,
    example_migrations: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    migrations = shutil.copytree(example_migrations, tmp_path / "migrations")
    (migrations / "versions" / "0002_add_ledger_memo.py").unlink()
    monkeypatch.delenv("DATABASE_URL", raising=False)

    assert await run_cli("revision", str(migrations), "-m", "add memo") == 0

    [generated] = (migrations / "versions").glob("*_add_memo.py")
    source = generated.read_text()
    assert "down_revision: str | Sequence[str] | None = '0001'" in source
    assert "batch_op.add_column(sa.Column('memo', sa.String(length=200)" in source
    assert "uq_ledger_entries_account_id_memo" in source
    # The generated revision runs on both databases and leaves nothing to generate.
    await upgrade_to_head(database_url, migrations)
    assert await run_cli("check", str(migrations), "--database-url", database_url) == 0


async def test_upgrade_sql_prints_the_ddl_without_a_database(
    example_migrations: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = "postgresql://nobody@unreachable.invalid/wallet"

    exit_code = await run_cli(
        "upgrade", str(example_migrations), "--sql", "--database-url", unreachable
    )

    assert exit_code == 0

    ddl = capsys.readouterr().out
    assert "CREATE TABLE ledger_entries" in ddl
    assert "CONSTRAINT pk_idempotency_records PRIMARY KEY (scope, owner, request_id)" in ddl
    assert "ADD CONSTRAINT uq_ledger_entries_account_id_memo UNIQUE (account_id, memo)" in ddl
    assert "UPDATE alembic_version SET version_num='0002'" in ddl


def test_a_service_name_resolves_to_its_migrations_folder_or_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["current", "no-such-service", "--database-url", "sqlite:///unused.db"]) == 1
    assert "services/no-such-service/migrations" in capsys.readouterr().err


async def test_services_of_one_process_upgrading_at_the_same_time_all_succeed(
    database_url: str, example_migrations: Path
) -> None:
    await asyncio.gather(*(upgrade_to_head(database_url, example_migrations) for _ in range(3)))

    assert await current_revision(database_url) == "0002"


async def test_replicas_upgrading_at_the_same_time_all_succeed(
    database_url: str, example_migrations: Path
) -> None:
    async def replica_upgrade() -> tuple[int | None, bytes]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "walletcore.migrations",
            "upgrade",
            str(example_migrations),
            "--database-url",
            database_url,
            stderr=asyncio.subprocess.PIPE,
        )
        _, errors = await process.communicate()
        return process.returncode, errors

    outcomes = await asyncio.gather(*(replica_upgrade() for _ in range(3)))

    assert outcomes == [(0, b"")] * 3
    assert await current_revision(database_url) == "0002"


REBUILD_ACCOUNTS = '''
"""rebuild accounts, which ledger entries refer to"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("accounts", recreate="always") as batch_op:
        batch_op.add_column(sa.Column("nickname", sa.String(50)))
'''

ORPHAN_LEDGER_ENTRIES = '''
"""a faulty data migration: deletes accounts that ledger entries still refer to"""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("DELETE FROM accounts")
'''


async def execute(database_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            result = await connection.exec_driver_sql(sql)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


async def migrated_copy_with_a_ledger_entry(
    database_url: str, example_migrations: Path, tmp_path: Path
) -> Path:
    migrations = shutil.copytree(example_migrations, tmp_path / "migrations")
    await upgrade_to_head(database_url, migrations)
    await execute(
        database_url, "INSERT INTO accounts (id, created_at) VALUES ('a-1', '2024-01-01 00:00:00')"
    )
    await execute(
        database_url, "INSERT INTO ledger_entries (account_id, amount_minor) VALUES ('a-1', 500)"
    )
    return migrations


async def test_rebuilding_a_referenced_sqlite_table_keeps_the_rows_referring_to_it(
    sqlite_url: str, example_migrations: Path, tmp_path: Path
) -> None:
    migrations = await migrated_copy_with_a_ledger_entry(sqlite_url, example_migrations, tmp_path)
    (migrations / "versions" / "0003_rebuild_accounts.py").write_text(REBUILD_ACCOUNTS)

    await upgrade_to_head(sqlite_url, migrations)

    assert await current_revision(sqlite_url) == "0003"
    assert await execute(sqlite_url, "SELECT account_id, amount_minor FROM ledger_entries") == [
        ("a-1", 500)
    ]


async def test_a_sqlite_migration_that_breaks_foreign_keys_is_rolled_back(
    sqlite_url: str, example_migrations: Path, tmp_path: Path
) -> None:
    migrations = await migrated_copy_with_a_ledger_entry(sqlite_url, example_migrations, tmp_path)
    (migrations / "versions" / "0003_orphan_accounts.py").write_text(ORPHAN_LEDGER_ENTRIES)

    with pytest.raises(CommandError, match="broken foreign keys in: ledger_entries"):
        await upgrade_to_head(sqlite_url, migrations)

    assert await current_revision(sqlite_url) == "0002"
    assert await execute(sqlite_url, "SELECT id FROM accounts") == [("a-1",)]
