"""Calling again after the RetryInfo delay a refusal names (each destination takes one code per
resend interval: tests that send several codes to one destination wait it out this way)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
import grpc.aio

from walletcore.grpc.status import error_details

_T = TypeVar("_T")


async def when_allowed(start: Callable[[], Awaitable[_T]], *, tries: int = 10) -> _T:
    """`start()`, again after the RetryInfo delay while it is refused RATE_LIMITED with one."""
    for _ in range(tries):
        try:
            return await start()
        except grpc.aio.AioRpcError as error:
            refusal = error_details(error)
            limited = (refusal.code, refusal.reason) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "RATE_LIMITED",
            )
            if not limited or refusal.retry_after is None:
                raise
            await asyncio.sleep(refusal.retry_after)
    raise AssertionError("the resend interval never ran out")
