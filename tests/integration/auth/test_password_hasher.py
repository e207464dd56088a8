"""The argon2id password hasher against the real argon2 library: parameters, rehash on change,
bounded concurrency, and an event loop that keeps running while hashes are computed."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from passlib.context import CryptContext

from services.auth.adapters.passwords import HASHING_NICENESS, Argon2Parameters, PasswordHasher

PASSWORD = "correct horse battery staple"


class ConcurrencyProbe:
    """Wraps the hasher's CryptContext and records how many calls run at once."""

    def __init__(self, context: CryptContext) -> None:
        self._context = context
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.calls = 0
        self.started = threading.Event()

    def _measured(self, name: str, *args: Any) -> Any:
        with self._lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
        self.started.set()
        try:
            return getattr(self._context, name)(*args)
        finally:
            with self._lock:
                self.active -= 1

    def hash(self, secret: str) -> Any:
        return self._measured("hash", secret)

    def verify_and_update(self, secret: str, stored: str) -> Any:
        return self._measured("verify_and_update", secret, stored)


@pytest.fixture
async def hasher() -> AsyncIterator[PasswordHasher]:
    hasher = PasswordHasher(max_concurrent=2)
    yield hasher
    hasher.close()


@pytest.fixture
def probe(hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch) -> ConcurrencyProbe:
    probe = ConcurrencyProbe(hasher._context)
    monkeypatch.setattr(hasher, "_context", probe)
    return probe


async def test_hashes_are_argon2id_at_the_explicit_parameters(hasher: PasswordHasher) -> None:
    stored = await hasher.hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await hasher.verify(PASSWORD, stored)


async def test_a_wrong_password_is_rejected(hasher: PasswordHasher) -> None:
    stored = await hasher.hash(PASSWORD)
    assert await hasher.verify_and_update("correct horse battery stapler", stored) == (False, None)


async def test_unicode_spellings_of_one_password_verify_alike(hasher: PasswordHasher) -> None:
    stored = await hasher.hash("Zq9\ufb01wmR!")  # the "fi" ligature
    assert await hasher.verify("Zq9fiwmR!", stored)


async def test_hashes_are_upgraded_when_parameters_change(hasher: PasswordHasher) -> None:
    old_hash = await hasher.hash(PASSWORD)
    stronger = PasswordHasher(Argon2Parameters(time_cost=3))
    try:
        assert stronger.needs_update(old_hash)
        assert await stronger.verify_and_update("wrong password", old_hash) == (False, None)
        ok, new_hash = await stronger.verify_and_update(PASSWORD, old_hash)
        assert ok
        assert new_hash is not None
        assert new_hash.startswith("$argon2id$v=19$m=19456,t=3,p=1$")
        assert await stronger.verify_and_update(PASSWORD, new_hash) == (True, None)
    finally:
        stronger.close()


async def test_hashes_at_the_library_defaults_are_upgraded(hasher: PasswordHasher) -> None:
    library_default = CryptContext(schemes=["argon2"]).hash(PASSWORD)
    assert "m=65536,t=3,p=4" in library_default
    ok, new_hash = await hasher.verify_and_update(PASSWORD, library_default)
    assert ok
    assert new_hash is not None
    assert "m=19456,t=2,p=1" in new_hash


@pytest.mark.parametrize(
    "parameters",
    [{"memory_cost_kib": 16_384}, {"time_cost": 1}, {"parallelism": 0}],
)
def test_parameters_below_the_spec_are_refused(parameters: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least"):
        Argon2Parameters(**parameters)


async def test_a_corrupt_stored_hash_is_an_error_not_a_wrong_password(
    hasher: PasswordHasher,
) -> None:
    with pytest.raises(ValueError, match="hash could not be identified"):
        await hasher.verify(PASSWORD, "not-a-hash")


async def test_concurrent_hashes_are_bounded(
    hasher: PasswordHasher, probe: ConcurrencyProbe
) -> None:
    stored = await hasher.hash(PASSWORD)
    work: list[Coroutine[Any, Any, object]] = [hasher.hash(f"password {n}") for n in range(4)]
    work += [hasher.verify(PASSWORD, stored) for _ in range(4)]
    results = await asyncio.gather(*work)
    assert all(results[4:])
    assert probe.calls == 9
    assert 1 <= probe.peak <= 2


async def test_cancelled_callers_do_not_loosen_the_bound(
    hasher: PasswordHasher, probe: ConcurrencyProbe
) -> None:
    abandoned = [asyncio.create_task(hasher.hash(f"abandoned {n}")) for n in range(4)]
    await asyncio.to_thread(probe.started.wait)
    for task in abandoned:
        task.cancel()
    await asyncio.gather(*abandoned, return_exceptions=True)
    # The cancelled callers' threads may still be hashing: new callers must wait for them.
    await asyncio.gather(*(hasher.hash(f"next {n}") for n in range(4)))
    assert probe.peak <= 2


async def test_the_event_loop_keeps_running_while_eight_hashes_run(
    hasher: PasswordHasher, probe: ConcurrencyProbe
) -> None:
    ticks_while_hashing = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks_while_hashing
        while not done.is_set():
            if probe.active:
                ticks_while_hashing += 1
            await asyncio.sleep(0.001)

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(*(hasher.hash(f"password number {n}") for n in range(8)))
    done.set()
    await ticking
    assert probe.calls == 8
    assert ticks_while_hashing > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="niceness per thread is Linux's")
async def test_hashes_run_at_a_lower_priority_than_the_event_loop() -> None:
    hasher = PasswordHasher()

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    try:
        in_the_pool = await asyncio.get_running_loop().run_in_executor(hasher._executor, niceness)
    finally:
        hasher.close()

    assert in_the_pool == min(niceness() + HASHING_NICENESS, 19)


async def test_dummy_verification_does_the_work_of_a_real_one(
    hasher: PasswordHasher, probe: ConcurrencyProbe
) -> None:
    await hasher.dummy_verify()
    assert probe.calls == 1
    assert hasher._dummy_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
