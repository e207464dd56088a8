"""Counts of wrong codes across codes, which a new code does not reset, one per kind of code.

Each code allows 5 wrong tries, but an attacker could request code after code; so every wrong
SMS, email, TOTP or recovery code also counts in a `CodeFailureLedger`. Past the limit within
the rolling window, every check of a code the ledger counts is refused for a cooling period.
Successes do not clear a ledger: failures age out.

A ledger counts one kind of code of one account (or, for a code sent to a contact no account
has verified, of that destination): its scope is the purpose of a sent code (or of a TOTP
enrolment's first code), or the second factor. Anyone who knows a phone number can start a
reset or a self-freeze for it and type wrong codes, so one account-wide ledger would let a
stranger lock the owner out of the safety actions (SPEC 3: "wrong codes on challenges someone
else started never stop the owner from freezing the account or from completing their own
second factor"). Scoped, a stranger's wrong reset codes cool down only resets. TOTP and
recovery codes, which only someone holding the password, a session or a right reset code can
try, share the second-factor scope whatever they prove, as the guesses go at one secret.
Self-freeze codes, which strangers can also have sent, have a scope of their own, whose
cooling spares every self-freeze code's first try (see `OtpChallenge.is_untried_self_freeze`).

The bound on guessing stays: at most 5 wrong tries per code, and at most `limit` wrong codes of
one scope per window before it cools down (NIST SP 800-63B 5.2.2, rate limiting per
authenticator); a self-freeze code's spared first try is bounded by how many codes the
destination can be sent (SPEC 7: 10 a day).

One ledger is one row: the subject (scope and owner), the times of the recent failures (at
most `limit` of them) and the end of the current cooling period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from walletcore.errors import QuotaViolation, ResourceExhausted

from .proofs import ChallengePurpose

SECOND_FACTOR_SCOPE: Final = "SECOND_FACTOR"
"""The scope of TOTP and recovery codes, whatever they prove."""


def purpose_ledger_subject(purpose: ChallengePurpose, owner: str) -> str:
    """The subject of `owner`'s ledger of the codes of `purpose`: codes sent by SMS or email,
    or a TOTP enrolment's first codes. `owner` is an account id, or the destination ref of a
    contact no account has verified."""
    if purpose is ChallengePurpose.SIGN_IN:
        raise ValueError("a sign-in's codes count in the second-factor ledger")
    return f"{purpose.value}:{owner}"


def second_factor_ledger_subject(account_id: str) -> str:
    """The subject of the account's ledger of TOTP and recovery codes."""
    return f"{SECOND_FACTOR_SCOPE}:{account_id}"


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
    """`purpose_ledger_subject(...)` or `second_factor_ledger_subject(...)`."""
    recent_failures: list[datetime] = field(default_factory=list)
    """Times of the failures still inside the window, oldest first."""
    locked_until: datetime | None = None
    policy: CodeFailurePolicy = DEFAULT_CODE_FAILURE_POLICY

    def require_subject(self, subject: str) -> None:
        """Guards against counting failures in another account's, or another scope's, ledger."""
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
