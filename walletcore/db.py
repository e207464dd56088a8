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

Reads that every request makes and that change nothing (a per-request account check) can skip
the unit of work: `SingleStatementReads` runs one SELECT in one round trip.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import asyncpg
from sqlalchemy import CheckConstraint, DateTime, Dialect, Executable, MetaData, Row, Select, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import greenlet_spawn

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

PING_AFTER_IDLE_SECONDS = 5.0
"""A pooled PostgreSQL connection unused for this long is pinged before it is handed out."""
_RETURNED_AT = "walletcore.returned_at"

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

    PostgreSQL connections are pooled (`pool_size` kept open, `max_overflow` more under load);
    one that sat idle in the pool for `PING_AFTER_IDLE_SECONDS` is pinged before use, so a
    connection the server or a proxy dropped is replaced instead of failing a request. SQLite
    connections get foreign keys, WAL and BEGIN IMMEDIATE.
    """
    async_url = normalize_url(url)
    if async_url.get_backend_name() == "sqlite":
        engine = _create_async_engine(async_url, echo=echo)
        _configure_sqlite(engine)
        return engine
    engine = _create_async_engine(
        async_url, echo=echo, pool_size=pool_size, max_overflow=max_overflow
    )
    _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: AsyncEngine) -> None:
    # Instead of `pool_pre_ping`, which costs a round trip on every checkout: on a busy
    # service that is one per unit of work, for connections whose last statement succeeded
    # milliseconds ago. What the ping guards against (a proxy or firewall dropping an idle
    # connection, a server restart) strikes connections that sat idle, so only those are
    # pinged. A connection that dies while in use fails its request either way (a ping
    # before use never prevented that); SQLAlchemy then invalidates the whole pool, as a
    # failed pre-ping does, so the next requests get fresh connections.
    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        # A new connection has no return time (the pool clears `info` on reconnecting).
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool replaces this connection and every other one opened before now.
            raise InvalidatePoolError("the pooled connection did not answer a ping") from error


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


READ_CONNECTIONS = 4
"""PostgreSQL connections `SingleStatementReads` keeps: a read holds one for a round trip."""

# A connection that failed with one of these is gone (class 08, the server shutting it down,
# a closed socket, or the driver finding the server's goodbye where it expected an answer);
# the statement may run once more on another.
_DRIVER_CONNECTION_LOST = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
)
_CONNECTION_LOST = (*_DRIVER_CONNECTION_LOST, OSError)


def connection_lost(error: BaseException) -> bool:
    """Whether `error` says the database connection went away (the server ended it or
    restarted, the network dropped it) rather than that the statement was wrong: SQLAlchemy's
    disconnect detection (`connection_invalidated`, which misses a connection asyncpg has not
    marked closed yet), or a connection-lost error of asyncpg or the socket, raised directly
    or as the cause SQLAlchemy wrapped. The server answers such a call UNAVAILABLE."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, _DRIVER_CONNECTION_LOST):
            return True
        cause = cause.__cause__
    return False


class SingleStatementReads:
    """Reads of one SELECT each, outside any unit of work: the per-request checks and reads
    that change nothing, where the round trips of a transaction would be most of the cost.

        STATUS = select(accounts.c.status).where(accounts.c.id == bindparam("account_id"))
        reads = SingleStatementReads(engine)
        rows = await reads.all(STATUS, {"account_id": account_id})
        rows[0].status

    On PostgreSQL the statement runs in autocommit mode, one round trip: a single statement
    sees one committed state of the database (READ COMMITTED takes a snapshot per statement,
    in a transaction or not), so BEGIN and COMMIT would add two round trips and no
    consistency. It sees everything committed before it started, as a transaction's first
    statement would. It runs on asyncpg directly, over `READ_CONNECTIONS` connections of its
    own: SQLAlchemy's execution and pool checkout cost about five times asyncpg's own work
    per read (0.165 against 0.027 ms of CPU), and the engine's pool, sized for units of work,
    opened and closed overflow connections under load. The statement is compiled once, by
    the engine's dialect, and asyncpg prepares it once per connection; parameters and
    results pass through the columns' types as SQLAlchemy would pass them. A statement that
    fails because its connection was lost runs once more on a fresh one (it wrote nothing);
    the other idle connections, likely dropped the same way, are replaced too. On SQLite it
    runs through SQLAlchemy in a transaction like any other (the embedded mode does not need
    the round trips saved).

    Rows are named tuples: fields by column name, in the statement's order. `close()` closes
    the PostgreSQL connections.
    """

    def __init__(self, engine: AsyncEngine, *, connections: int = READ_CONNECTIONS) -> None:
        self._engine = engine
        self._dialect = engine.dialect
        self._compiled: dict[Executable, _CompiledRead] = {}
        self._connections = (
            _Connections(engine.url, engine.dialect, connections)
            if engine.dialect.name == "postgresql"
            else None
        )

    async def all(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Sequence[Any]:
        """The rows of `statement` with its `bindparam`s set from `parameters`. Build the
        statement once (a module constant) and pass parameters: it is compiled on first use
        and remembered by identity."""
        if self._connections is None:
            return await greenlet_spawn(self._sqlalchemy_rows, statement, parameters)
        compiled = self._compiled.get(statement)
        if compiled is None:
            compiled = _CompiledRead(statement, self._dialect)
            if len(self._compiled) < _COMPILED_KEPT:
                self._compiled[statement] = compiled
        arguments = compiled.arguments(parameters or {})
        try:
            records = await self._connections.fetch(compiled.sql, arguments)
        except _CONNECTION_LOST:
            records = await self._connections.fetch(compiled.sql, arguments)
        return compiled.rows(records)

    async def close(self) -> None:
        if self._connections is not None:
            await self._connections.close()

    def _sqlalchemy_rows(
        self, statement: Executable, parameters: Mapping[str, Any] | None
    ) -> Sequence[Row[Any]]:
        # Checkout, statement and checkin in one switch to SQLAlchemy's synchronous core.
        with self._engine.sync_engine.connect() as connection:
            return connection.execute(statement, parameters).all()


_COMPILED_KEPT = 256
"""Statements remembered compiled; more (a caller building statements per call) compile per
call instead of growing the memory."""

_Processor = Callable[[Any], Any] | None
_REQUIRED: Any = object()


class _CompiledRead:
    """A statement in the dialect's SQL ($1, $2, ... for asyncpg), with the bind and result
    conversions of its columns' types."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        if compiled.post_compile_params or compiled.literal_execute_params:
            # Their SQL depends on the values (`IN` lists): they cannot be compiled once.
            raise ValueError("a single-statement read takes no expanding or literal parameters")
        self.sql: str = compiled.string
        names: Sequence[str] = compiled.positiontup or ()
        # A value the statement itself holds (`.limit(1)`) is its default.
        self._binds = [
            (
                name,
                _REQUIRED
                if compiled.binds[name].required
                else compiled.binds[name].effective_value,
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect),
            )
            for name in names
        ]
        self._row_type: type[tuple[Any, ...]] | None = None
        columns = getattr(statement, "selected_columns", None)
        results = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in columns or ()
        ]
        # None: no column converts its values (a text() statement's are not even known).
        self._results: list[_Processor] | None = results if any(results) else None

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, default, process in self._binds:
            value = parameters.get(name, default)
            if value is _REQUIRED:
                raise KeyError(f"the statement needs a value for {name!r}")
            values.append(value if process is None else process(value))
        return values

    def rows(self, records: Sequence[asyncpg.Record]) -> list[Any]:
        if not records:
            return []
        if self._row_type is None:
            self._row_type = namedtuple("Row", list(records[0].keys()), rename=True)  # type: ignore[misc]
        make = self._row_type._make  # type: ignore[attr-defined]
        processors = self._results
        if processors is None:
            return [make(record.values()) for record in records]
        return [
            make(
                value if process is None else process(value)
                for value, process in zip(record.values(), processors, strict=True)
            )
            for record in records
        ]


class _Connections:
    """A fixed number of asyncpg connections, opened on first need, one read at a time each.

    A free slot holds a connection or None (not opened yet, or closed after a failure).
    """

    def __init__(self, url: URL, dialect: Dialect, size: int) -> None:
        _, params = dialect.create_connect_args(url)
        # SQLAlchemy's own options for its asyncpg adapter, not asyncpg's.
        for option in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            params.pop(option, None)
        self._params = params
        self._free: asyncio.LifoQueue[tuple[int, asyncpg.Connection] | None] = asyncio.LifoQueue()
        for _ in range(size):
            self._free.put_nowait(None)
        self._generation = 0
        self._closed = False

    async def fetch(self, sql: str, arguments: Sequence[Any]) -> list[asyncpg.Record]:
        if self._closed:
            raise RuntimeError("the reads are closed")
        slot = await self._free.get()
        try:
            if slot is None or slot[0] != self._generation or slot[1].is_closed():
                if slot is not None:
                    slot[1].terminate()
                slot = None
                slot = (self._generation, await asyncpg.connect(**self._params))
            records: list[asyncpg.Record] = await slot[1].fetch(sql, *arguments)
        except _CONNECTION_LOST:
            if slot is not None:
                slot[1].terminate()
                if slot[0] == self._generation:
                    # The idle ones, opened before this one failed, are replaced when taken.
                    self._generation += 1
            self._free.put_nowait(None)
            raise
        except asyncpg.PostgresError:
            # The server refused the statement; the connection is still good.
            self._free.put_nowait(slot)
            raise
        except BaseException:
            # Cancelled mid-statement (or worse): the connection's state is unknown.
            if slot is not None:
                slot[1].terminate()
            self._free.put_nowait(None)
            raise
        self._free.put_nowait(slot)
        return records

    async def close(self) -> None:
        self._closed = True
        while not self._free.empty():
            slot = self._free.get_nowait()
            if slot is not None:
                await slot[1].close()


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
