"""`make audit` passes only on a real answer: a dependency the vulnerability service could not
audit makes the audit no result (exit 3), a known vulnerability fails it unless it is ignored
with a reason (scripts/audit_deps.py reads pip-audit's JSON report)."""

from __future__ import annotations

from typing import Any

from scripts.audit_deps import CLEAN, NO_ANSWER, VULNERABLE, verdict


def _dep(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": "1.0", "vulns": [], **extra}


def test_every_dependency_audited_and_none_vulnerable_passes() -> None:
    result = verdict({"dependencies": [_dep("a"), _dep("b")]}, ignored={})

    assert result.exit_code == CLEAN
    assert "2 locked dependencies" in result.lines[0]


def test_a_dependency_the_service_skipped_is_no_result_not_a_pass() -> None:
    skipped = {"name": "b", "skip_reason": "Dependency not found on PyPI"}

    result = verdict({"dependencies": [_dep("a"), skipped]}, ignored={})

    assert result.exit_code == NO_ANSWER
    assert "1 of 2" in result.lines[0]
    assert verdict({"dependencies": []}, ignored={}).exit_code == NO_ANSWER


def test_a_known_vulnerability_fails_unless_ignored_by_id_or_alias() -> None:
    vuln = {"id": "PYSEC-1", "aliases": ["GHSA-x"], "fix_versions": ["1.1"]}
    report = {"dependencies": [_dep("a", vulns=[vuln])]}

    failed = verdict(report, ignored={})

    assert failed.exit_code == VULNERABLE
    assert "a 1.0: PYSEC-1 (fixed in 1.1)" in failed.lines
    assert verdict(report, ignored={"GHSA-x": "unused code path"}).exit_code == CLEAN
