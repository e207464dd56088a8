"""Everything a use case uses besides the unit of work, wired once by the composition root."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from services.auth.domain.device_tokens import DEVICE_TOKEN_LIFETIME
from services.auth.domain.events import (
    AccountSessionsRevoked,
    DomainEvent,
    NotificationRequested,
    SecurityEvent,
)
from services.auth.domain.ledger import DEFAULT_CODE_FAILURE_POLICY, CodeFailurePolicy
from services.auth.domain.otp import DEFAULT_OTP_LIFETIMES, OtpLifetimes
from services.auth.domain.passwords import PasswordPolicy
from services.auth.domain.proofs import KeyedHasher
from services.auth.domain.sessions import DEFAULT_SESSION_LIFETIMES, SessionLifetimes
from services.auth.domain.stepup import MAX_GRANT_LIFETIME
from services.auth.domain.throttling import SignInThrottle
from services.auth.domain.totp import DEFAULT_TOTP_PARAMETERS, TotpParameters
from services.auth.service.ports import AuthUnitOfWork, PasswordHashing
from walletcore.clock import Clock
from walletcore.crypto import KeyRing
from walletcore.ratelimit.base import Policy, RateLimiter
from walletcore.ratelimit.policies import (
    CODES_SENT_PER_DESTINATION_MINUTE,
    SIGN_IN_PER_ACCOUNT_MINUTE,
    SIGN_IN_PER_DEVICE_TOKEN_MINUTE,
    SIGN_IN_PER_KNOWN_ADDRESS_MINUTE,
)
from walletcore.tokens import GrantVerifier, TokenIssuer


@dataclass(frozen=True, slots=True)
class AuthRules:
    """Tunable rules, each capped by the domain at the SPEC's limits."""

    otp_lifetimes: OtpLifetimes = DEFAULT_OTP_LIFETIMES
    session_lifetimes: SessionLifetimes = DEFAULT_SESSION_LIFETIMES
    code_failure_policy: CodeFailurePolicy = DEFAULT_CODE_FAILURE_POLICY
    totp: TotpParameters = DEFAULT_TOTP_PARAMETERS
    throttle: SignInThrottle = field(default_factory=SignInThrottle)
    access_token_lifetime: timedelta = timedelta(minutes=15)
    grant_lifetime: timedelta = MAX_GRANT_LIFETIME
    totp_issuer: str = "Wallet"
    """The name authenticator apps show next to the account."""
    code_resend: Policy = CODES_SENT_PER_DESTINATION_MINUTE
    """How often one destination may be sent a code (AUTH_CODE_RESEND_INTERVAL_SECONDS)."""
    sign_in_per_identifier: Policy = SIGN_IN_PER_ACCOUNT_MINUTE
    """Sign-in attempts per identifier, for attempts without a valid device token."""
    sign_in_per_device_token: Policy = SIGN_IN_PER_DEVICE_TOKEN_MINUTE
    """Sign-in attempts per device token, instead of the identifier's, for a valid one."""
    sign_in_per_known_address: Policy = SIGN_IN_PER_KNOWN_ADDRESS_MINUTE
    """Sign-in attempts per (account, address) pair that signed in before, without a token."""
    device_token_lifetime: timedelta = DEVICE_TOKEN_LIFETIME


@dataclass(frozen=True, slots=True)
class AuthContext:
    clock: Clock
    new_id: Callable[[], str]
    """Opaque unique ids for rows the client may see (uuid4 hex)."""
    new_code: Callable[[], str]
    """Six random digits for a code sent by SMS or e-mail."""
    new_secret: Callable[[], str]
    """A random URL-safe secret of at least 256 bits (refresh tokens, sign-in tickets)."""
    secrets: KeyedHasher
    """Keyed hashes of codes, tickets, refresh tokens and recovery codes."""
    encryption: KeyRing
    """Encrypts TOTP secrets at rest."""
    passwords: PasswordHashing
    password_policy: PasswordPolicy
    tokens: TokenIssuer
    """Signs access tokens and step-up grants."""
    grants: GrantVerifier
    """Checks auth's own grants (disabling TOTP, regenerating recovery codes)."""
    limiter: RateLimiter
    """Per-destination code sends and per-account code checks (one check per RPC)."""
    device_tokens: KeyedHasher
    """Signs and checks the device tokens a right password earns (`domain.device_tokens`)."""
    rules: AuthRules = field(default_factory=AuthRules)


async def publish(uow: AuthUnitOfWork, events: Iterable[DomainEvent]) -> None:
    """Turns domain events into effects inside the caller's unit of work: timeline rows,
    outbox notifications, and the revocation of every session of an account."""
    for event in events:
        if isinstance(event, SecurityEvent):
            await uow.security_events.add(event)
        elif isinstance(event, NotificationRequested):
            await uow.notifier.security_notice(event.recipients, event.event)
        elif isinstance(event, AccountSessionsRevoked):
            await uow.sessions.revoke_all(event.account_id, event.reason, event.occurred_at)
