"""The account-wide count of wrong codes, which a new code does not reset.

Each code allows 5 wrong tries, but an attacker could request code after code; so every wrong
SMS, email, TOTP or recovery code also counts in the account's `CodeFailureLedger`. Past the
limit within the rolling window, every code check of the account is refused for a cooling
period, whatever code it is for. Successes do not clear the ledger: failures age out.

One ledger is one row: the subject, the times of the recent failures (at most `limit` of
them) and the end of the current cooling period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from walletcore.errors import QuotaViolation, ResourceExhausted


@dataclass(frozen=True, slots=True)
class CodeFailurePolicy:
    limit: int = 10
    window: timedelta = timedelta(hours=1)
    cooling_period: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= timedelta(0) or self.cooling_period <= timedelta(0):
            raise ValueError("a code failure policy needs a positive limit, window and cooling")


DEFAULT_CODE_FAILURE_POLICY: Final = CodeFailurePolicy()


@dataclass(slots=True)
class CodeFailureLedger:
    subject: str
    """The account id; for a registration, which has no account yet, the destination ref."""
    recent_failures: list[datetime] = field(default_factory=list)
    """Times of the failures still inside the window, oldest first."""
    locked_until: datetime | None = None
    policy: CodeFailurePolicy = DEFAULT_CODE_FAILURE_POLICY

    def require_subject(self, subject: str) -> None:
        """Guards against counting one account's failures in another's ledger."""
        if subject != self.subject:
            raise ValueError("the code failure ledger belongs to another subject")

    def ensure_open(self, now: datetime) -> None:
        """Raises ResourceExhausted (RATE_LIMITED, with the time left) while cooling down."""
        if self.locked_until is not None and now < self.locked_until:
            raise ResourceExhausted(
                "too many wrong codes: try again later",
                retry_after_seconds=(self.locked_until - now).total_seconds(),
                violations=[
                    QuotaViolation(
                        "account_code_failures",
                        f"at most {self.policy.limit} wrong codes per "
                        f"{int(self.policy.window.total_seconds() // 60)} minutes",
                    )
                ],
            )

    def record_failure(self, now: datetime) -> None:
        window_start = now - self.policy.window
        self.recent_failures = [at for at in self.recent_failures if at > window_start]
        self.recent_failures.append(now)
        if len(self.recent_failures) >= self.policy.limit:
            self.locked_until = now + self.policy.cooling_period
            # The cooling period has paid for these failures; counting them again after it
            # would lock the account a second time for the same attempts.
            self.recent_failures = []
