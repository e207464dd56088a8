"""docs/configuration.md stays true: every setting is documented, no documented variable is
made up, and the production example starts past the settings check as written."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel
from pydantic_settings import BaseSettings

from services.auth.settings import AuthSettings

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "configuration.md"
# Where the example stops being about settings: these lines need the real database.
NEEDS_THE_DEPLOYMENT = (
    ".venv/bin/python -m walletcore.migrations",
    ".venv/bin/python -m services.",
)


def environment_names(model: type[BaseModel], prefix: str) -> Iterator[str]:
    """The variable of every field, nested models' fields under `<PREFIX><FIELD>__`."""
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name}".upper()
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            yield from environment_names(nested, f"{variable}__")
        else:
            yield variable


def settings_names(settings: type[BaseSettings]) -> set[str]:
    return set(environment_names(settings, str(settings.model_config.get("env_prefix", ""))))


def documented_rows(prefix: str) -> set[str]:
    """The variables the reference tables describe: the first cell of each row."""
    row = re.compile(rf"^\| `({prefix}[A-Z0-9_]+)` \|", re.MULTILINE)
    return set(row.findall(DOC.read_text()))


def mentioned(prefix: str) -> set[str]:
    return {
        name
        for name in re.findall(rf"\b{prefix}[A-Z0-9_]+", DOC.read_text())
        if not name.endswith("_")
    }


def example_block() -> str:
    text = DOC.read_text()
    heading = text.index("## Example: production")
    start = text.index("```sh\n", heading) + len("```sh\n")
    return text[start : text.index("```", start)]


def test_every_auth_setting_has_a_row() -> None:
    assert settings_names(AuthSettings) - documented_rows("AUTH_") == set()


def test_no_documented_auth_variable_is_made_up() -> None:
    assert mentioned("AUTH_") - settings_names(AuthSettings) == set()


def test_the_nested_notifier_settings_are_walked() -> None:
    names = settings_names(AuthSettings)

    assert {"AUTH_NOTIFIER__SMTP_HOST", "AUTH_CODE_RESEND_INTERVAL_SECONDS"} <= names
    assert "AUTH_NOTIFIER" not in names


def test_the_production_example_is_accepted_by_the_production_profile() -> None:
    example = example_block()
    assert all(needed in example for needed in NEEDS_THE_DEPLOYMENT)
    settings_part = "\n".join(
        line for line in example.splitlines() if not line.startswith(NEEDS_THE_DEPLOYMENT)
    )
    check = (
        ".venv/bin/python -c 'from services.auth.settings import AuthSettings; "
        "s = AuthSettings(); print(s.profile.value, s.rate_limiter, s.notifier.sms_adapter)'"
    )
    clean = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}

    done = subprocess.run(
        ["bash", "-euc", f"{settings_part}\n{check}"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["production", "redis", "webhook"]
