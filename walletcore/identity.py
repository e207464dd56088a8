"""Who is calling: the one shape every port's authentication produces.

The public port authenticates users by access token, the admin port operators (with a role),
the internal port other services. `walletcore.tokens` holds the verifiers that produce a
`Caller`; the server's authentication interceptor stores it for the call, and servicers read it
with `current_caller()`.
"""

from __future__ import annotations

import contextvars
import enum
from dataclasses import dataclass, field
from typing import Protocol


class CallerKind(enum.StrEnum):
    USER = "user"
    OPERATOR = "operator"
    SERVICE = "service"
    ANONYMOUS = "anonymous"


class OperatorRole(enum.StrEnum):
    SECURITY_OFFICER = "security_officer"
    KYC_REVIEWER = "kyc_reviewer"
    REFUND_OPERATOR = "refund_operator"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated (or explicitly anonymous) caller of one RPC."""

    kind: CallerKind
    subject: str
    """Account id for users, operator id for operators, service name for services."""
    roles: frozenset[str] = field(default_factory=frozenset)
    session_id: str | None = None
    """The user's session (access tokens only), so revoked sessions can be refused."""

    def has_role(self, role: str) -> bool:
        return role in self.roles


ANONYMOUS = Caller(kind=CallerKind.ANONYMOUS, subject="")


class CredentialVerifier(Protocol):
    """Turns the bearer token of the `authorization` metadata into a Caller.

    Raises `walletcore.errors.Unauthenticated` for a missing, malformed, expired or
    wrongly-signed token, and `PermissionDenied` for a valid token of the wrong kind. Async
    because a verifier may need to fetch another service's current public keys.
    """

    async def verify(self, token: str) -> Caller: ...


_current_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar(
    "current_caller", default=ANONYMOUS
)


def current_caller() -> Caller:
    return _current_caller.get()


def set_current_caller(caller: Caller) -> contextvars.Token[Caller]:
    return _current_caller.set(caller)


def reset_current_caller(token: contextvars.Token[Caller]) -> None:
    _current_caller.reset(token)
