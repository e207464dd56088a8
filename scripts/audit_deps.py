"""Audit the locked dependencies (requirements.lock) for known vulnerabilities with pip-audit.

    python scripts/audit_deps.py                      exit 0 clean, 1 vulnerable, 3 no answer
    python scripts/audit_deps.py --allow-unreachable  exit 0 with a warning when no answer

pip-audit asks a vulnerability service (PyPI's JSON API by default, AUDIT_SERVICE=osv for
api.osv.dev) about every pinned version. A service that does not answer for a dependency makes
pip-audit skip it and still say "No known vulnerabilities found": here every skipped
dependency counts as unaudited, and an audit with any unaudited dependency is no result (exit 3,
with the reason), never a pass. Sockets time out after 15 s and the whole audit after 5
minutes, so an unreachable service fails fast instead of hanging.

A known vulnerability that does not apply is ignored only through IGNORED below, each with the
reason it cannot be exploited here (pip-audit's --ignore-vuln for exactly those ids).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
LOCK: Final = REPO_ROOT / "requirements.lock"
SOCKET_TIMEOUT_SECONDS: Final = 15
AUDIT_TIMEOUT_SECONDS: Final = 300

IGNORED: Final[Mapping[str, str]] = {
    # "GHSA-xxxx-xxxx-xxxx": "why it cannot be exploited in these services",
}
"""Vulnerability ids pip-audit must not fail on, each with its justification. Empty: no
known vulnerability has been accepted."""

CLEAN, VULNERABLE, NO_ANSWER = 0, 1, 3


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    lines: tuple[str, ...]


def _describe(dependency: Mapping[str, Any], vuln: Mapping[str, Any]) -> str:
    fixed_in = ", ".join(vuln.get("fix_versions") or ["no release yet"])
    return (
        f"{dependency['name']} {dependency.get('version', '?')}: {vuln['id']} (fixed in {fixed_in})"
    )


def verdict(report: Mapping[str, Any], ignored: Mapping[str, str] = IGNORED) -> Verdict:
    """What pip-audit's JSON report (`-f json`) means for the build."""
    dependencies = list(report.get("dependencies", []))
    unaudited = [d for d in dependencies if d.get("skip_reason")]
    found = [
        _describe(d, v)
        for d in dependencies
        for v in d.get("vulns", [])
        if v["id"] not in ignored and not set(v.get("aliases", [])) & set(ignored)
    ]
    if found:
        return Verdict(VULNERABLE, ("known vulnerabilities in requirements.lock:", *found))
    if unaudited or not dependencies:
        first = unaudited[0]["skip_reason"] if unaudited else "the report lists no dependency"
        return Verdict(
            NO_ANSWER,
            (
                f"no audit: the vulnerability service answered for "
                f"{len(dependencies) - len(unaudited)} of {len(dependencies)} locked "
                f"dependencies (first: {first}); run where it answers",
            ),
        )
    return Verdict(
        CLEAN,
        (
            f"pip-audit: {len(dependencies)} locked dependencies, no known vulnerability "
            f"({len(ignored)} ignored with a reason in scripts/audit_deps.py)",
        ),
    )


def run_pip_audit(service: str) -> Mapping[str, Any] | str:
    """pip-audit's JSON report, or why there is none."""
    argv = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(LOCK),
        "--no-deps",  # every line of the lock is pinned; nothing else to resolve
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--vulnerability-service",
        service,
        "--timeout",
        str(SOCKET_TIMEOUT_SECONDS),
        "--format",
        "json",
    ]
    for vuln_id in IGNORED:
        argv += ["--ignore-vuln", vuln_id]
    try:
        completed = subprocess.run(  # noqa: S603 - this interpreter and fixed arguments, no shell
            argv, capture_output=True, text=True, timeout=AUDIT_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        return f"pip-audit took over {AUDIT_TIMEOUT_SECONDS} s"
    try:
        report: Mapping[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError:
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return f"pip-audit exited {completed.returncode}: {last}"
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--allow-unreachable",
        action="store_true",
        help="exit 0 (with a warning) when the vulnerability service gives no answer",
    )
    args = parser.parse_args()
    service = os.environ.get("AUDIT_SERVICE", "pypi")
    report = run_pip_audit(service)
    result = (
        Verdict(NO_ANSWER, (f"no audit: {report} (service {service})",))
        if isinstance(report, str)
        else verdict(report)
    )
    for line in result.lines:
        print(line, file=sys.stderr if result.exit_code else sys.stdout)
    if result.exit_code == NO_ANSWER and args.allow_unreachable:
        print("WARNING: dependencies NOT audited (--allow-unreachable)", file=sys.stderr)
        return CLEAN
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
