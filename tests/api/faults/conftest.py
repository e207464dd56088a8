"""Faults across services: one auth on fixed ports of the tests' range (so a restarted auth
comes back where kyc, binding and refund call it), with those three beside it through their own
API fixtures (tests/api/kyc, tests/api/binding, tests/api/refund)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.auth.conftest import auth_app, start_auth  # noqa: F401 (fixtures used here)
from tests.api.binding.conftest import binding_app, binding_storage  # noqa: F401
from tests.api.kyc.conftest import start_kyc  # noqa: F401
from tests.api.refund.conftest import refund_app, refund_overrides, refund_storage  # noqa: F401
from tests.support.notify import sms_webhook_catcher, smtp_catcher  # noqa: F401

AUTH_PORTS = {"public_port": 30320, "admin_port": 30321, "internal_port": 30322}


@pytest.fixture
def auth_backend(tmp_path: Path) -> dict[str, Any]:
    """Auth on a SQLite file (a restarted auth finds its accounts and sessions again), the
    in-process limiter, and fixed ports."""
    return {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}",
        "rate_limiter": "memory",
        **AUTH_PORTS,
    }


@pytest.fixture
def kyc_backend(sqlite_url: str) -> dict[str, Any]:
    return {"database_url": sqlite_url, "rate_limiter": "memory"}
