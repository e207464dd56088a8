"""The hypothesis profiles every generated-input test runs under (registered in
tests/conftest.py).

- `ci`, the default (`make test`, CI): derandomized, so every run draws the same examples and
  gives the same result; no example database, so nothing from an earlier run changes it.
- `fuzz` (`HYPOTHESIS_PROFILE=fuzz`, `make fuzz`): random draws, many more examples, and the
  example database in .hypothesis/, so a failure found once is tried first next time.

A test that needs fewer or more examples than the profile's count (one that calls a real
server costs milliseconds per example) asks for a count under `ci` with `examples(n)`, which the
loaded profile scales: `@settings(max_examples=examples(40))`. Inputs that ever broke something
are pinned with `@example` next to the test, so both profiles always try them.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from typing import Final

import grpc
import grpc.aio
from hypothesis import settings

CI_PROFILE: Final = "ci"
FUZZ_PROFILE: Final = "fuzz"
CI_MAX_EXAMPLES: Final = 100
FUZZ_MAX_EXAMPLES: Final = 2_000
"""Twenty times the `ci` count: `make fuzz` sends over 10,000 requests to auth with it."""


def register_profiles() -> None:
    """Registers both profiles and loads HYPOTHESIS_PROFILE's (`ci` when unset)."""
    settings.register_profile(
        CI_PROFILE,
        derandomize=True,
        database=None,
        max_examples=CI_MAX_EXAMPLES,
        deadline=None,
        print_blob=True,
    )
    settings.register_profile(
        FUZZ_PROFILE,
        derandomize=False,
        max_examples=FUZZ_MAX_EXAMPLES,
        deadline=None,
        print_blob=True,
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", CI_PROFILE))


def examples(under_ci: int) -> int:
    """`under_ci` examples under the `ci` profile, scaled as the loaded profile's count is
    (twenty times as many under `fuzz`)."""
    return max(1, under_ci * settings().max_examples // CI_MAX_EXAMPLES)


class _Tally:
    sent = 0
    refused = 0


async def answer_of(call: Awaitable[object]) -> tuple[grpc.StatusCode, str]:
    """The status code and message a generated request got (OK for a success). Every request
    is counted: the run's summary reports how many were sent (`make fuzz` promises a number)."""
    _Tally.sent += 1
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def generated_requests_sent() -> int:
    return _Tally.sent


def count_matrix_refusals(refused: int) -> None:
    """Adds calls the authorization matrix saw refused (tests/support/access_matrix.py); the
    run's summary prints the total next to the generated requests'."""
    _Tally.refused += refused


def matrix_calls_refused() -> int:
    return _Tally.refused
