"""`make demo` (`python -m services.demo`) against `make run`'s launcher: the narrated
walk-through completes, every step printed, codes read from the development inbox.

Fixed ports 30200-30239 and 30250-30289 (the launcher needs fixed ports; no other test uses
them). Auth resends a code to a number after 1 s instead of a minute here, so the password
reset does not wait out the registration code's interval (the demo waits when it must: auth's
RetryInfo says how long).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.support.stack import ROOT, serving_stack, stack_environment

BASE_PORT = 30200
IDLE_BASE_PORT = 30250
DEMO_SECONDS = 45.0


async def test_the_demo_walks_through_every_step_against_the_launched_stack(
    tmp_path: Path,
) -> None:
    settings = {"AUTH_CODE_RESEND_INTERVAL_SECONDS": "1"}
    async with serving_stack(tmp_path, BASE_PORT, settings) as (launcher, environment):
        demo = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.demo",
            cwd=ROOT,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(DEMO_SECONDS):
            out, err = await demo.communicate()

    printed = out.decode()
    assert demo.returncode == 0, f"{err.decode()}\n{printed}"
    assert err == b""
    inbox = tmp_path / "inbox.jsonl"
    assert f"codes are read from {inbox}" in printed
    assert f"inbox    {inbox}  every SMS and e-mail" in launcher.stdout.read_text()
    for line in (
        "sign-up code is",
        "TOTP enabled; 10 recovery codes",
        "signed out: the old token is refused (UNAUTHENTICATED/SESSION_REVOKED)",
        "signed in: the password, then the TOTP code",
        "password reset code is",
        "the old password is refused (UNAUTHENTICATED/CREDENTIALS_INVALID)",
        "the user sees the case approved",
        "bound: ****4242, holder ZHANG SAN",
        "-> SUCCEEDED",
        "1 session(s) revoked",
        "auth     GetAccount: refused (FAILED_PRECONDITION/ACCOUNT_FROZEN)",
        "kyc      GetVerification: refused (FAILED_PRECONDITION/ACCOUNT_FROZEN)",
        "binding  ListCards: refused (FAILED_PRECONDITION/ACCOUNT_FROZEN)",
        "refund   RequestRefund: refused (FAILED_PRECONDITION/ACCOUNT_FROZEN)",
        "unfrozen at",
        "account_unfrozen",
        "demo complete: 13 steps",
    ):
        assert line in printed, line


def test_without_a_running_stack_the_demo_stops_at_once_with_one_line(tmp_path: Path) -> None:
    # 30250-30289: this file's range, where nothing listens (the stack above uses 30200-30239).
    environment = stack_environment(tmp_path, IDLE_BASE_PORT)

    finished = subprocess.run(
        [sys.executable, "-m", "services.demo"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=DEMO_SECONDS,
        check=False,
    )

    assert finished.returncode == 1
    assert finished.stderr.splitlines() == [
        f"demo: step 1 (the stack is serving) failed: auth public port "
        f"127.0.0.1:{IDLE_BASE_PORT} does not answer (UNAVAILABLE): is `make run` serving?"
    ]
