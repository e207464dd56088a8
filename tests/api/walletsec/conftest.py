"""`walletsec` against a real auth on real ports (tests/api/auth's `start_auth`, on both
backends): `cli` runs it as a security officer pointed at that auth's admin port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.api.auth.conftest import (
    auth_backend,  # noqa: F401 (fixtures this folder's tests use)
    start_auth,  # noqa: F401
)
from tests.api.auth.harness import AuthTestApp, StartAuth
from tests.api.walletsec.cli_helpers import Walletsec, operator_token
from tests.support.notify import (
    sms_webhook_catcher,  # noqa: F401 (fixtures start_auth uses)
    smtp_catcher,  # noqa: F401
)
from walletcore.identity import OperatorRole


@pytest.fixture
async def auth_app(start_auth: StartAuth) -> AsyncIterator[AuthTestApp]:  # noqa: F811
    async with start_auth() as app:
        yield app


@pytest.fixture
def cli(auth_app: AuthTestApp) -> Walletsec:
    return Walletsec(
        {
            "WALLETSEC_OPERATOR_TOKEN": operator_token(OperatorRole.SECURITY_OFFICER),
            "WALLETSEC_AUTH_ADMIN": f"127.0.0.1:{auth_app.ports['admin']}",
        }
    )
