"""`make demo`'s authenticator app: the codes it types are ones auth's TOTP rule accepts, a
second sign-in within the same 30-second step included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.auth.domain.totp import DEFAULT_TOTP_PARAMETERS, generate_totp_secret
from services.demo import Authenticator, StepFailed, User


def test_two_codes_in_a_row_are_both_accepted_and_never_the_same_step() -> None:
    secret = generate_totp_secret()
    app = Authenticator(secret)

    first = app.code()
    first_step = app.last_step
    second = app.code()
    now = datetime.now(UTC)

    assert first_step is not None
    assert app.last_step is not None
    assert app.last_step > first_step, "auth refuses a step it accepted before"
    # Within auth's drift window (one step either side of now), so auth takes it.
    assert DEFAULT_TOTP_PARAMETERS.matching_step(secret, second, now) == app.last_step
    assert DEFAULT_TOTP_PARAMETERS.matching_step(secret, first, now) is not None


def test_each_recovery_code_is_used_once_and_running_out_stops_the_step() -> None:
    user = User("account", (), recovery_codes=["a", "b"])

    used = {user.recovery_code().recovery_code, user.recovery_code().recovery_code}

    assert used == {"a", "b"}
    with pytest.raises(StepFailed, match="no recovery code left"):
        user.recovery_code()
