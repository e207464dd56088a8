"""The audit chain from the command line: verified on the server, exported as JSON lines
whose last hash is the verified head; and the installed `walletsec` script itself, run as a
separate process, refusing a wrong-role identity with one line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.api.auth.harness import AuthTestApp
from tests.api.walletsec.cli_helpers import Walletsec, operator_token
from walletcore.identity import OperatorRole
from walletsec.connection import ExitCode


async def test_the_audit_chain_verifies_and_its_export_ends_at_the_verified_head(
    auth_app: AuthTestApp, cli: Walletsec, tmp_path: Path
) -> None:
    user = await auth_app.register()
    await cli("freeze", user.account_id, "--reason", "stolen phone", "--ticket", "INC-3")
    await cli("unfreeze", user.account_id, "--reason", "owner verified", "--ticket", "INC-3")
    export_file = tmp_path / "auth-audit.jsonl"

    verified = await cli("--json", "audit", "verify", "auth")
    exported = await cli("audit", "export", "auth", "--output", str(export_file))
    empty_range = await cli("audit", "export", "auth", "--until", "2000-01-01T00:00:00Z")
    bad_time = await cli("audit", "export", "auth", "--since", "yesterday")
    as_reviewer = await cli.as_role(OperatorRole.KYC_REVIEWER)("audit", "verify", "auth")

    verification = verified.json()
    entries = [json.loads(line) for line in export_file.read_text().splitlines()]
    assert verified.exit_code == 0, verified.stderr
    assert verification["intact"] is True
    assert int(verification["entries_checked"]) == len(entries)
    assert [entry["action"] for entry in entries] == ["FREEZE_ACCOUNT", "UNFREEZE_ACCOUNT"]
    assert entries[-1]["hash"] == verification["head_hash"]
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    assert exported.exit_code == 0
    assert f"exported 2 auth audit entries; last hash {entries[-1]['hash']}" in exported.stderr
    assert (empty_range.exit_code, empty_range.stdout) == (0, "")
    assert bad_time.exit_code == ExitCode.BAD_INPUT
    assert "--since must be an ISO 8601 time" in bad_time.stderr
    assert as_reviewer.exit_code == ExitCode.DENIED
    assert "PERMISSION_DENIED" in as_reviewer.stderr


@pytest.mark.parametrize("auth_backend", ["sqlite"], indirect=True)
async def test_the_installed_script_refuses_a_wrong_role_token_file_with_one_line(
    auth_app: AuthTestApp, tmp_path: Path
) -> None:
    token_file = tmp_path / "operator.token"
    token_file.write_text(operator_token(OperatorRole.REFUND_OPERATOR) + "\n", encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "walletsec"),
        "--token-file",
        str(token_file),
        "timeline",
        "abc",
        env={"WALLETSEC_AUTH_ADMIN": f"127.0.0.1:{auth_app.ports['admin']}", "PATH": ""},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()

    assert process.returncode == ExitCode.DENIED
    assert stdout == b""
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("walletsec: error: auth refused the operator identity")
    assert "PERMISSION_DENIED" in lines[0]
