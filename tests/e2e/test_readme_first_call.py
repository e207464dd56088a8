"""The README's first call, run as written against `make run`'s launcher: the snippet is taken
from README.md, started as its own program, and fed the code the console printed.

Fixed ports from 31440-31479 (the launcher needs fixed ports); the snippet is pointed at them
through its AUTH_TARGET variable, as a user would for a moved public port.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.support.notify import extract_code
from tests.support.stack import ROOT, serving_stack

BASE_PORT = 31440
PHONE = "+8613800138000"
SNIPPET_SECONDS = 30.0
_SMS_BLOCK = re.compile(
    r"===== DEVELOPMENT SMS .*?=====\n(.*?)===== END DEVELOPMENT SMS =====", re.DOTALL
)


def readme_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## A first call") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


def sms_blocks(console: Path) -> list[str]:
    """The console adapter's SMS blocks printed so far."""
    return [str(block) for block in _SMS_BLOCK.findall(console.read_text(errors="replace"))]


async def printed_sms(console: Path, to: str) -> str:
    """The body of the first SMS to `to`: its headers carry an idempotency key whose hex can
    hold six digits in a row."""
    async with asyncio.timeout(SNIPPET_SECONDS):
        while True:
            for block in sms_blocks(console):
                headers, _, body = block.partition("\n\n")
                if f"To: {to}\n" in headers + "\n":
                    return body
            await asyncio.sleep(0.1)


async def test_the_readmes_first_call_registers_signs_in_and_reads_the_account(
    tmp_path: Path,
) -> None:
    program = tmp_path / "first_call.py"
    program.write_text(readme_snippet())

    async with serving_stack(tmp_path, BASE_PORT) as (launcher, environment):
        environment["AUTH_TARGET"] = f"127.0.0.1:{environment['AUTH_PUBLIC_PORT']}"
        first_call = await asyncio.create_subprocess_exec(
            sys.executable,
            str(program),
            cwd=tmp_path,
            env=environment,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        code = extract_code(await printed_sms(launcher.stdout, to=PHONE))
        async with asyncio.timeout(SNIPPET_SECONDS):
            out, err = await first_call.communicate(f"{code}\n".encode())

    assert first_call.returncode == 0, err.decode()
    printed = out.decode()
    assert "status: ACCOUNT_STATUS_ACTIVE" in printed
    assert "masked_value:" in printed
    assert "account_id:" in printed
