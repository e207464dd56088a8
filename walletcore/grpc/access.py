"""Who may call which method of a port: a deny-by-default access policy.

A policy maps full method names (`/wallet.auth.v1.AuthService/SignIn`) to a rule. A method the
policy does not name is refused with PERMISSION_DENIED, so a new RPC is closed until someone
decides who may call it. The standard health and reflection services are always public.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from walletcore.identity import Caller, CallerKind


@dataclass(frozen=True, slots=True)
class AccessRule:
    """`authenticated`: the port's verifier must have accepted a token. `any_role`: when not
    empty, the caller must also hold at least one of these roles."""

    authenticated: bool
    any_role: frozenset[str] = frozenset()

    def admits(self, caller: Caller) -> bool:
        if not self.authenticated:
            return True
        if caller.kind is CallerKind.ANONYMOUS:
            return False
        return not self.any_role or any(caller.has_role(role) for role in self.any_role)


PUBLIC = AccessRule(authenticated=False)
"""No token needed. A valid token given still identifies the caller (per-caller rate
limits); an invalid one is ignored and the call runs anonymously."""

AUTHENTICATED = AccessRule(authenticated=True)
"""Any caller the port's verifier accepts."""


def require_roles(*roles: str) -> AccessRule:
    """An authenticated caller holding at least one of `roles`."""
    if not roles:
        raise ValueError("require_roles needs at least one role; use AUTHENTICATED otherwise")
    return AccessRule(authenticated=True, any_role=frozenset(roles))


AccessPolicy = Mapping[str, AccessRule]

ALWAYS_PUBLIC_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


def service_policy(service: str, rules: Mapping[str, AccessRule]) -> dict[str, AccessRule]:
    """Spell a policy by method name: `service_policy("wallet.auth.v1.AuthService",
    {"SignIn": PUBLIC, "ListSessions": AUTHENTICATED})`."""
    return {f"/{service}/{method}": rule for method, rule in rules.items()}


def rule_for(policy: AccessPolicy, full_method: str) -> AccessRule | None:
    """The rule of a method, or None when the method is denied."""
    service = full_method.lstrip("/").partition("/")[0]
    if service in ALWAYS_PUBLIC_SERVICES:
        return PUBLIC
    return policy.get(full_method)
