"""Which failures `walletcore.db.connection_lost` reads as the database connection going away
(answered UNAVAILABLE, so the client retries) and which stay the server's fault (INTERNAL)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from walletcore.db import connection_lost


def wrapped(cause: BaseException, *, invalidated: bool = False) -> DBAPIError:
    """`cause` as SQLAlchemy raises it from a statement: a DBAPIError whose cause it is."""
    error = DBAPIError("SELECT 1", None, cause, connection_invalidated=invalidated)
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "error",
    [
        wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation")),
        wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")),
        wrapped(ValueError("a driver message"), invalidated=True),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        ConnectionResetError("reset by peer"),
    ],
)
def test_a_connection_that_went_away_is_lost(error: BaseException) -> None:
    assert connection_lost(error)


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("INSERT", None, asyncpg.exceptions.UniqueViolationError("duplicate")),
        wrapped(asyncpg.exceptions.SyntaxOrAccessError("syntax error")),
        FileNotFoundError("a bug, not the database"),
        ValueError("a bug"),
    ],
)
def test_a_failing_statement_or_a_bug_is_not(error: BaseException) -> None:
    assert not connection_lost(error)
