"""Async SQLAlchemy 2: metadata, engines, sessions and the unit of work every RPC runs in.

Each service owns one database and one `MetaData` from `make_metadata()`. Its composition root
builds `create_engine(url)` and `session_factory(engine)`; its service layer opens one
`UnitOfWork` per RPC:

    async with uow:
        ...                   # reads and writes through uow.session / its repositories
        await uow.commit()    # leaving without commit, or by an exception, rolls back

Two databases are supported, PostgreSQL through asyncpg (production) and SQLite through
aiosqlite (the embedded mode). Code written against this module behaves the same on both:

- Timestamps are `UTCDateTime` columns and always come back timezone-aware in UTC.
- Concurrent writers never fail with "database is locked" on SQLite: every SQLite transaction
  starts with BEGIN IMMEDIATE, so it takes the database's write lock first and waits (up to
  the busy timeout) for the current writer instead of failing when it later upgrades a read
  lock. The cost is that SQLite transactions run one at a time, which the embedded mode can
  afford. PostgreSQL transactions run concurrently at READ COMMITTED; code that reads a row
  to decide how to change it locks the row with `lock_for_update`.
- `is_unique_violation` recognises a unique-constraint failure on either database.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import CheckConstraint, DateTime, Dialect, MetaData, Select, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

# Constraint and index names derived from the columns, so Alembic autogenerate produces the
# same names on every run and on both databases, and migrations can refer to them.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 15_000
"""How long a SQLite transaction waits for the write lock before failing."""

_ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}
_PG_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE_VIOLATIONS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})

_SelectT = TypeVar("_SelectT", bound=Select[Any])


def enum_check(column: str, values: type[enum.StrEnum]) -> CheckConstraint:
    """CHECK that `column` holds a value of the enum (NULL passes, as CHECK lets it); the
    naming convention makes its name `ck_<table>_<column>_valid`."""
    allowed = ", ".join(f"'{member.value}'" for member in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


def make_metadata() -> MetaData:
    """A fresh MetaData for one service's tables, with the shared naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored in UTC and always returned timezone-aware in UTC.

    PostgreSQL stores it as `timestamp with time zone`. SQLite has no such type, so the value is
    stored as naive UTC text, which also keeps its ordering. Naive datetimes are refused: their
    meaning depends on the machine's clock settings.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime")
        in_utc = value.astimezone(UTC)
        return in_utc if dialect.name == "postgresql" else in_utc.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def normalize_url(url: str | URL) -> URL:
    """Return the async-driver form of a PostgreSQL or SQLite URL.

    Accepts the spellings people and platforms write (`postgresql://`, `postgres://`,
    `postgresql+psycopg2://`, `sqlite:///path`) and returns `postgresql+asyncpg://` or
    `sqlite+aiosqlite://`. libpq's `sslmode` query parameter becomes asyncpg's `ssl`.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        # The URL itself is not repeated: it may carry a password.
        raise ValueError(f"unsupported database backend {backend!r}: use postgresql or sqlite")
    normalized = parsed.set(drivername=_ASYNC_DRIVERS[backend])
    if normalized.get_backend_name() == "postgresql" and "sslmode" in normalized.query:
        sslmode = normalized.query["sslmode"]
        normalized = normalized.difference_update_query(["sslmode"]).update_query_dict(
            {"ssl": sslmode}
        )
    return normalized


def create_engine(
    url: str | URL,
    *,
    echo: bool = False,
    pool_size: int = 10,
    max_overflow: int = 10,
) -> AsyncEngine:
    """An async engine for a PostgreSQL or SQLite URL (any spelling `normalize_url` accepts).

    PostgreSQL connections are pooled (`pool_size` kept open, `max_overflow` more under load)
    and pinged before use, so a connection the server or a proxy dropped is replaced instead of
    failing a request. SQLite connections get foreign keys, WAL and BEGIN IMMEDIATE.
    """
    async_url = normalize_url(url)
    if async_url.get_backend_name() == "sqlite":
        engine = _create_async_engine(async_url, echo=echo)
        _configure_sqlite(engine)
        return engine
    return _create_async_engine(
        async_url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    # Following SQLAlchemy's SQLite transaction notes: the driver's own transaction handling is
    # switched off and SQLAlchemy emits BEGIN itself, here IMMEDIATE so the write lock is taken
    # up front (a deferred transaction that reads and then writes fails at once with "database
    # is locked" when another writer holds the lock; the busy timeout does not apply to that).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for units of work.

    Objects stay readable after commit (`expire_on_commit=False`): with asyncio, reloading an
    expired attribute would be hidden I/O, which async SQLAlchemy cannot do.
    """
    return async_sessionmaker(engine, expire_on_commit=False)


class UnitOfWork:
    """One database transaction, opened per RPC with `async with`.

    `commit()` makes the work durable; leaving the block without committing, or through an
    exception, rolls back whatever was not committed. Subclasses expose repositories by
    overriding `attach_repositories`, which runs on entry with the new session.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is not open: use `async with uow:`")
        return self._session

    def attach_repositories(self, session: AsyncSession) -> None:
        """Bind this unit of work's repositories to `session` (nothing in the base class)."""

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("the unit of work is already open")
        self._session = self._sessions()
        self.attach_repositories(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session, self._session = self.session, None
        try:
            await session.rollback()
        finally:
            await session.close()

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()


def is_unique_violation(exc: BaseException) -> bool:
    """Whether `exc` is a unique or primary-key constraint failure, on PostgreSQL or SQLite."""
    if not isinstance(exc, IntegrityError):
        return False
    driver_error = exc.orig
    if getattr(driver_error, "sqlstate", None) == _PG_UNIQUE_VIOLATION:
        return True
    return getattr(driver_error, "sqlite_errorname", None) in _SQLITE_UNIQUE_VIOLATIONS


def lock_for_update(statement: _SelectT, *, skip_locked: bool = False) -> _SelectT:
    """Lock the rows `statement` selects until the transaction ends.

    Use it when a transaction reads rows to decide how to change them (a balance, a state
    machine). On PostgreSQL this is SELECT ... FOR UPDATE: a concurrent transaction locking the
    same rows waits for this one to end and then reads the committed result. With
    `skip_locked`, rows another transaction holds are left out instead of waited for, which
    lets several workers take different items from one queue. On SQLite the clause is not
    rendered; it is not needed there, as every transaction holds the database's write lock
    from its BEGIN IMMEDIATE (so nothing is ever skipped either).
    """
    return statement.with_for_update(skip_locked=skip_locked)


Executor = AsyncSession | AsyncConnection
"""Anything a caller's transaction runs on (a session or a connection); the caller commits."""


def dialect_name(executor: Executor) -> str:
    bind = executor.get_bind() if isinstance(executor, AsyncSession) else executor
    return bind.dialect.name
