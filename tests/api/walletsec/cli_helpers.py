"""Running `walletsec` against services started in-process, as an operator would.

The CLI is synchronous gRPC; the services run on the test's event loop, so each invocation
runs in a worker thread (`await walletsec(...)`) while the loop keeps serving. Operator tokens
are minted with walletcore.keytool's `operator-token`, the way a development operator gets
one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from typer.testing import CliRunner

from walletcore import keytool
from walletcore.identity import OperatorRole
from walletsec.cli import app as walletsec_app


def operator_token(role: OperatorRole, operator_id: str = "officer-9") -> str:
    return keytool.run(["operator-token", "--operator-id", operator_id, "--role", role.value])


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass(frozen=True)
class Walletsec:
    """`walletsec` with an operator identity and the admin addresses in its environment."""

    env: Mapping[str, str]

    async def __call__(self, *args: str, **env: str) -> Run:
        result = await asyncio.to_thread(
            CliRunner().invoke,
            walletsec_app,
            list(args),
            env={**self.env, **env},
            catch_exceptions=False,
        )
        return Run(result.exit_code, result.stdout, result.stderr)

    def as_role(self, role: OperatorRole) -> Walletsec:
        return Walletsec({**self.env, "WALLETSEC_OPERATOR_TOKEN": operator_token(role)})


def one_line_error(stderr: str) -> str:
    """The one error line a failed command prints, never a traceback."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("walletsec: error: ")
    return lines[0]
