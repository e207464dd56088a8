"""Alembic for each service, configured in code (there is no alembic.ini).

Each service keeps its migrations in `services/<name>/migrations/`:

    script.py.mako   the revision template (copy tests/integration/walletcore/db/example_migrations)
    versions/        the revisions
    env.py           three lines:

        from services.<name>.adapters.tables import metadata
        from walletcore.migrations import run_env

        run_env(metadata)

A service brings its database to the newest revision at start-up or in a deploy job with
`await upgrade_to_head(database_url, migrations_dir)`. From a shell (URLs in any spelling
`walletcore.db.normalize_url` accepts; `--database-url` defaults to $DATABASE_URL):

    python -m walletcore.migrations upgrade <service> [--sql]  # --sql prints the DDL instead
    python -m walletcore.migrations current <service>
    python -m walletcore.migrations check <service>    # fails when the models and migrations differ
    python -m walletcore.migrations revision <service> -m "add refunds.reason" [--empty]

`revision` autogenerates from the difference between the service's metadata and its newest
revision. Without `--database-url` it diffs against a scratch SQLite database that it first
upgrades to head, so no database server is needed; the revisions it writes use batch
operations, which run on SQLite and PostgreSQL alike. Read every generated revision before
committing it, and run `check` against PostgreSQL too (autogenerate cannot see everything).
`<service>` is a service name (`auth`) or a migrations folder's path containing a slash.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from alembic import command, context
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import MetaData, event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from walletcore.db import create_engine, normalize_url

_SERVICES_ROOT = Path(__file__).resolve().parent.parent / "services"
_DATABASE_URL_ATTRIBUTE = "walletcore.database_url"
# Any fixed bigint: each service has a database of its own, so one key serves them all.
_UPGRADE_LOCK_KEY = 0x77616C6C6574  # "wallet"

_ALEMBIC_LOCK = threading.Lock()


def service_migrations_dir(service_or_path: str) -> Path:
    """The migrations folder of the service `service_or_path` names, or that path itself.

    A name without a slash is a service name: `auth` means `services/auth/migrations`.
    """
    if "/" in service_or_path or os.sep in service_or_path:
        candidate = Path(service_or_path)
    else:
        candidate = _SERVICES_ROOT / service_or_path / "migrations"
    if not (candidate / "env.py").is_file():
        raise ValueError(f"no Alembic environment (env.py) in {candidate}")
    return candidate


def alembic_config(migrations_dir: str | Path, database_url: str | URL | None = None) -> Config:
    """An Alembic configuration for one service's migrations folder.

    The URL travels in `Config.attributes`, not in the ini-style options, whose `%`
    interpolation would mangle percent-encoded passwords.
    """
    # Alembic's default stdout is the one at its import; printing goes where stdout is now.
    config = Config(stdout=sys.stdout)
    config.set_main_option("script_location", str(migrations_dir).replace("%", "%%"))
    config.set_main_option("timezone", "UTC")
    if database_url is not None:
        async_url = normalize_url(database_url).render_as_string(hide_password=False)
        config.attributes[_DATABASE_URL_ATTRIBUTE] = async_url
    return config


async def upgrade_to_head(database_url: str | URL, migrations_dir: str | Path) -> None:
    """Apply every revision of `migrations_dir` the database does not have yet.

    Safe when several replicas, or several services of one process, upgrade at once: see
    `run_env`. Alembic runs in a worker thread, so the event loop keeps serving meanwhile.
    """
    config = alembic_config(migrations_dir, database_url)
    await asyncio.to_thread(_run_command, command.upgrade, config, "head")


async def current_revision(database_url: str | URL) -> str | None:
    """The revision the database is at, or None before its first migration."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


def head_revision(migrations_dir: str | Path) -> str | None:
    """The newest revision in `migrations_dir` (None when there is none yet)."""
    return ScriptDirectory.from_config(alembic_config(migrations_dir)).get_current_head()


def _run_command(
    alembic_command: Callable[..., object], config: Config, *args: Any, **kwargs: Any
) -> None:
    # Alembic keeps the running environment in process-wide module state (`alembic.context`),
    # so two commands in one process must not interleave.
    with _ALEMBIC_LOCK:
        alembic_command(config, *args, **kwargs)


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py` (Alembic's asyncio pattern).

    Offline (`--sql`) it prints the DDL for the configured URL's dialect (PostgreSQL: SQLite's
    batch operations need the live table, so they cannot run offline). Online it opens an async
    engine and runs every pending revision in one transaction. Concurrent upgraders take turns:
    SQLite's BEGIN IMMEDIATE and, on PostgreSQL, an advisory lock are taken before the current
    revision is read, so a replica that waited finds the work done. SQLite gets batch operations
    (it cannot ALTER most things in place) and runs with foreign keys off, as SQLite requires
    for rebuilding a table other tables refer to; the result is checked before commit.
    Autogenerate compares column types, not only names.
    """
    url = _configured_url(context.config)
    if context.is_offline_mode():
        _run_offline(url, target_metadata)
    else:
        asyncio.run(_run_online(url, target_metadata))


def _configured_url(config: Config) -> str:
    url = config.attributes.get(_DATABASE_URL_ATTRIBUTE)
    if url is None:
        raise CommandError("no database URL: run Alembic through `python -m walletcore.migrations`")
    return str(url)


def _run_offline(url: str, target_metadata: MetaData) -> None:
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=normalize_url(url).get_backend_name() == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str, target_metadata: MetaData) -> None:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        # After walletcore.db's own connect hook; outside any transaction, where it takes effect.
        event.listen(engine.sync_engine, "connect", _disable_sqlite_foreign_keys)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, target_metadata)
            await connection.commit()
    finally:
        await engine.dispose()


def _disable_sqlite_foreign_keys(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=OFF")
    finally:
        cursor.close()


def _migrate(connection: Connection, target_metadata: MetaData) -> None:
    # Begun here, the transaction is the caller's to commit; Alembic runs every revision in it.
    connection.begin()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_UPGRADE_LOCK_KEY})")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "sqlite":
        _refuse_broken_foreign_keys(connection)


def _refuse_broken_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = ", ".join(sorted({str(row[0]) for row in broken}))
        raise CommandError(f"the migration leaves rows with broken foreign keys in: {tables}")


def _render_item(kind: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # A revision must keep working after the application code changes, so a column of a custom
    # type (walletcore.db.UTCDateTime) is written as the plain type it stores. The default
    # rendering would name the custom class without importing it.
    if kind != "type" or not isinstance(item, TypeDecorator):
        return False
    stored_type = item.impl_instance
    if type(stored_type).__module__.startswith("sqlalchemy.sql."):
        return f"sa.{stored_type!r}"
    if autogen_context.imports is not None:
        autogen_context.imports.add(f"import {type(item).__module__}")
    return False


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    database_url = args.database_url or os.environ.get("DATABASE_URL")
    try:
        migrations_dir = service_migrations_dir(args.service)
        if args.command == "revision" and database_url is None:
            _revision_against_scratch_sqlite(migrations_dir, args.message, args.empty)
            return 0
        if database_url is None:
            raise CommandError("no database URL: pass --database-url or set DATABASE_URL")
        config = alembic_config(migrations_dir, database_url)
        if args.command == "upgrade":
            _run_command(command.upgrade, config, "head", sql=args.sql)
        elif args.command == "current":
            _run_command(command.current, config)
        elif args.command == "check":
            _run_command(command.check, config)
        else:
            _run_command(
                command.revision, config, message=args.message, autogenerate=not args.empty
            )
    except (CommandError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _revision_against_scratch_sqlite(migrations_dir: Path, message: str, empty: bool) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        config = alembic_config(migrations_dir, f"sqlite:///{scratch}/scratch.db")
        _run_command(command.upgrade, config, "head")
        _run_command(command.revision, config, message=message, autogenerate=not empty)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m walletcore.migrations",
        description="Alembic migrations of one service.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("upgrade", "apply every revision the database lacks"),
        ("current", "print the database's revision"),
        ("check", "fail when the models differ from the newest revision"),
        ("revision", "write a new revision, autogenerated unless --empty"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("service", help="service name (auth) or a path with a slash")
        sub.add_argument("--database-url", help="defaults to $DATABASE_URL")
        if name == "upgrade":
            sub.add_argument("--sql", action="store_true", help="print the SQL, run nothing")
        if name == "revision":
            sub.add_argument("-m", "--message", required=True)
            sub.add_argument("--empty", action="store_true", help="do not autogenerate")
    return parser


if __name__ == "__main__":
    sys.exit(main())
