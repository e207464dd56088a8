"""Password hashing: argon2id through passlib, off the event loop, with bounded concurrency.

Parameters are explicit (m=19 MiB, t=2, p=1: OWASP's argon2id baseline, SPEC section 3): the
libraries' own defaults (64 MiB, t=3, p=4) cost about five times the CPU per hash. Each hash
runs in a worker thread (argon2-cffi releases the GIL), and at most `max_concurrent` run at
once, so memory stays at about max_concurrent x 19 MiB however many sign-ins arrive together.
The worker threads run at a lower scheduling priority (nice +10; on Linux niceness is per
thread): when the cores are busy, the event loop, which answers every other RPC (freezes,
the other services' status checks), goes first, and sign-ins take the time that is left.

Passwords are NFKC-normalised here as well as by the policy, so that registration and sign-in
hash the same string whatever Unicode form the client sent.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, TypeVar

from passlib.context import CryptContext

from services.auth.domain.passwords import normalize_password

MIN_MEMORY_COST_KIB: Final = 19_456
MIN_TIME_COST: Final = 2
DEFAULT_MAX_CONCURRENT_HASHES: Final = 1
"""The cores less one for the event loop, on the 2-core machines this runs on."""
_LOWEST: Final = 19
HASHING_NICENESS: Final = 10
"""How much lower the hashing threads' priority is than the event loop's (CFS gives a thread
at +10 about a tenth of the weight of one at 0 when both want the same core)."""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    memory_cost_kib: int = MIN_MEMORY_COST_KIB
    time_cost: int = MIN_TIME_COST
    parallelism: int = 1

    def __post_init__(self) -> None:
        if self.memory_cost_kib < MIN_MEMORY_COST_KIB or self.time_cost < MIN_TIME_COST:
            raise ValueError("argon2id needs at least m=19456 KiB and t=2 (SPEC section 3)")
        if self.parallelism < 1:
            raise ValueError("argon2id needs a parallelism of at least 1")

    def crypt_context(self) -> CryptContext:
        return CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=self.memory_cost_kib,
            argon2__rounds=self.time_cost,
            argon2__parallelism=self.parallelism,
        )


class PasswordHasher:
    """Async argon2id hashing and verification.

    `verify_and_update` also returns a new hash when the stored one was made with other
    parameters: store it, and hashes upgrade on the next successful sign-in. `dummy_verify`
    costs what a real verification costs, for unknown accounts: a sign-in or reset must not
    answer faster when there is no account.
    """

    def __init__(
        self,
        parameters: Argon2Parameters | None = None,
        *,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT_HASHES,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("at least one hash must be allowed to run")
        self.parameters = parameters or Argon2Parameters()
        self._context = self.parameters.crypt_context()
        # Waiting happens on the event loop (cheap, cancellable); the executor, sized the same,
        # keeps the bound even when a caller is cancelled while its thread still hashes.
        self._slots = asyncio.Semaphore(max_concurrent)
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrent,
            thread_name_prefix="argon2",
            initializer=_below_the_event_loop,
        )
        # Made once, at start-up, with the same parameters as every real hash.
        self._dummy_hash: str = self._context.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        normalized = normalize_password(password)
        return await self._run(lambda: str(self._context.hash(normalized)))

    async def verify(self, password: str, stored_hash: str) -> bool:
        ok, _ = await self.verify_and_update(password, stored_hash)
        return ok

    async def verify_and_update(self, password: str, stored_hash: str) -> tuple[bool, str | None]:
        """(False, None) for a wrong password; (True, new_hash) when the stored hash should be
        replaced by new_hash; (True, None) otherwise. Raises ValueError for a stored value that
        is not an argon2 hash (corrupt data, not a wrong password)."""
        normalized = normalize_password(password)
        ok, new_hash = await self._run(
            lambda: self._context.verify_and_update(normalized, stored_hash)
        )
        return bool(ok), None if new_hash is None else str(new_hash)

    async def dummy_verify(self) -> None:
        """Spends one verification's time and memory on nothing."""
        await self.verify_and_update(secrets.token_urlsafe(16), self._dummy_hash)

    def needs_update(self, stored_hash: str) -> bool:
        return bool(self._context.needs_update(stored_hash))

    def close(self) -> None:
        """Stops the worker threads once the hashes in progress end."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, work: Callable[[], _T]) -> _T:
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)


def _below_the_event_loop() -> None:
    """Lowers the calling worker thread's priority by HASHING_NICENESS (to at most 19, the
    lowest there is)."""
    thread = threading.get_native_id()
    try:
        niceness = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(niceness + HASHING_NICENESS, _LOWEST))
    except OSError:
        # Not Linux (the id is not a thread's there) or not allowed: hash at the same
        # priority, which is only slower for the other RPCs under load, never wrong.
        return
