"""Fixtures for the use-case tests: an in-memory store, its transactions, and a context on a
clock the test moves by hand (see services/auth/service/fakes.py)."""

from __future__ import annotations

import pytest

from services.auth.service.context import AuthContext
from services.auth.service.fakes import (
    FakeClock,
    FakeStore,
    FakeTransactions,
    FakeUnitOfWork,
    RecordingNotifier,
    fake_context,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctx(clock: FakeClock) -> AuthContext:
    return fake_context(clock)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def tx(store: FakeStore) -> FakeTransactions:
    return FakeTransactions(store)


@pytest.fixture
def uow(store: FakeStore) -> FakeUnitOfWork:
    """A unit of work on the test's store; open it with `async with uow:`."""
    return FakeUnitOfWork(store)


@pytest.fixture
def notifier(store: FakeStore) -> RecordingNotifier:
    """What committed units of work sent: `notifier.last_code(to=phone)`."""
    return store.notifier
