"""`make test` gives the same result on every run: hypothesis draws the same examples under the
default profile, and no test overrides what the profiles decide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.profiles import (
    CI_MAX_EXAMPLES,
    CI_PROFILE,
    FUZZ_PROFILE,
    examples,
    register_profiles,
)

TESTS = Path(__file__).parents[2]


def test_the_default_profile_is_derandomized_and_reads_no_example_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    loaded = settings()
    try:
        register_profiles()
        default = settings()
    finally:
        settings.load_profile(CI_PROFILE if loaded.derandomize else FUZZ_PROFILE)

    assert (default.derandomize, default.database, default.max_examples) == (
        True,
        None,
        CI_MAX_EXAMPLES,
    )
    assert default.print_blob


def test_the_fuzz_profile_draws_at_random_and_many_more_examples() -> None:
    fuzz = settings.get_profile(FUZZ_PROFILE)

    assert not fuzz.derandomize
    assert fuzz.max_examples >= 10 * CI_MAX_EXAMPLES


def test_counts_scale_with_the_loaded_profile() -> None:
    assert examples(40) == 40 * settings().max_examples // CI_MAX_EXAMPLES


# What a test's own @settings(...) must leave to the profile: a fixed count of examples (ask
# `examples(n)` instead), randomness of its own, an example database. A @seed decorator would
# fix the draws of `make fuzz` too.
_SETTINGS_CALL = re.compile(r"\bsettings\(([^)]*)\)", re.DOTALL)
_OVERRIDES = re.compile(r"\b(derandomize|database)\s*=|\bmax_examples\s*=\s*\d")
_SEED = re.compile(r"^@(hypothesis\.)?seed\(", re.MULTILINE)


def test_no_test_overrides_what_the_profiles_decide() -> None:
    offenders = []
    for path in TESTS.rglob("*.py"):
        if path.name == "profiles.py":
            continue
        source = path.read_text()
        offenders += [
            f"{path.relative_to(TESTS)}: settings({arguments.strip()})"
            for arguments in _SETTINGS_CALL.findall(source)
            if _OVERRIDES.search(arguments)
        ]
        if _SEED.search(source):
            offenders.append(f"{path.relative_to(TESTS)}: @seed")

    assert offenders == []
