"""Signing in with a password, and completing a sign-in with the second factor.

Enumeration safety: an identifier that matches no account costs a dummy password check,
is throttled by counters keyed by a keyed hash of the identifier, and gets the same
UNAUTHENTICATED / CREDENTIALS_INVALID as a wrong password. A frozen account is told apart only
after its password was right.

The throttle (`domain.throttling`) is asked before the password is checked; a wrong password
counts in the account's, the (account, address) pair's and the address's counters, and those
counts are committed with the refusal.

Device tokens (`domain.device_tokens`, docs/decisions/sign-in-device-tokens.md): a right
password earns the device a signed token of the account. An attempt presenting a valid token
of the account its identifier names is charged on the token's own rate limit instead of the
identifier's, and the token takes the address's place in the throttle's pair; anything else
(no token, a forged or expired one, another account's) is ignored, exactly as if no token had
been sent. Without a valid token, an address the account signed in from before (a known
pair) is charged on its own limit, and any other attempt on the identifier's. So a stranger
who keeps the identifier's limit exhausted keeps refusing strangers, not the owner's devices
and addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, NoReturn

from services.auth.domain.account import Account
from services.auth.domain.contacts import Contact
from services.auth.domain.device_tokens import DeviceToken, read_device_token
from services.auth.domain.events import Origin
from services.auth.domain.passwords import normalize_password
from services.auth.domain.proofs import ChallengePurpose, FactorMethod, VerifiedFactor
from services.auth.domain.sessions import PendingSignIn, ticket_invalid
from services.auth.domain.throttling import CounterScope, FailureCounter, SignInCounters
from services.auth.service.codes import check_second_factor, destination_subject
from services.auth.service.context import AuthContext, publish
from services.auth.service.ports import AuthUnitOfWork
from services.auth.service.sessions import TokenPair, open_session, parse_bearer_secret
from walletcore.errors import Unauthenticated
from walletcore.idempotency import CommittedRefusal
from walletcore.ratelimit import Hit, enforce

CREDENTIALS_INVALID: Final = "CREDENTIALS_INVALID"
# Where no connection address is known, all such callers share one address counter.
_UNKNOWN_ADDRESS: Final = "unknown"


@dataclass(frozen=True, slots=True)
class SecondFactorRequired:
    """The password was right; the account has TOTP. `ticket` completes the sign-in."""

    ticket: str
    expires_at: datetime
    allowed_methods: tuple[FactorMethod, ...]


SignInResult = TokenPair | SecondFactorRequired


@dataclass(frozen=True, slots=True)
class SignInAnswer:
    """What a right password gets: the outcome, and the device token for the next sign-in
    (the presented one renewed, when it was valid)."""

    outcome: SignInResult
    device_token: str


def credentials_invalid() -> Unauthenticated:
    return Unauthenticated(
        "the identifier or the password is not correct", reason=CREDENTIALS_INVALID
    )


async def sign_in(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    identifier: Contact,
    password: str,
    origin: Origin,
    device_token: str = "",
) -> SignInAnswer:
    """Tokens of a new session, or a ticket when the account has TOTP, with a device token;
    see the module docstring for what a wrong password, an unknown identifier, a frozen
    account and a device token get."""
    account = await uow.accounts.find_by_contact(identifier)
    subject = account.id if account is not None else _unknown_subject(ctx, identifier)
    now = ctx.clock()
    device = _device_of(ctx, account, device_token, now)
    counters = await _load_counters(uow, subject, origin.client_address or _UNKNOWN_ADDRESS, device)
    await _charge_attempt(ctx, identifier, device, counters, now)
    ctx.rules.throttle.decide(counters, now).raise_if_refused()
    if account is None:
        await ctx.passwords.dummy_verify()
        await _refuse_password(uow, ctx, None, counters, origin, now)
    matches, upgraded_hash = await ctx.passwords.verify_and_update(
        normalize_password(password), account.password_hash
    )
    if not matches:
        await _refuse_password(uow, ctx, account, counters, origin, now)
    account.ensure_active()
    ctx.rules.throttle.record_success(counters, now)
    await _save_counters(uow, counters)
    if upgraded_hash is not None:
        account.upgrade_password_hash(upgraded_hash)
        await uow.accounts.save(account)
    issued = _next_device_token(ctx, account, device, now)
    if account.totp_active:
        return SignInAnswer(await _await_second_factor(uow, ctx, account, origin, now), issued)
    return SignInAnswer(await _complete(uow, ctx, account, origin, second_factor=None), issued)


async def complete_sign_in(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    ticket: str,
    totp_code: str | None,
    recovery_code: str | None,
    origin: Origin,
) -> TokenPair:
    """Completes a pending sign-in with a TOTP or recovery code. The session is recorded with
    the device that gave the password and the address that completed it."""
    pending = await _load_pending(uow, ctx, ticket)
    now = ctx.clock()
    pending.ensure_open(now)
    account = await uow.accounts.get(pending.account_id, for_update=True)
    if account is None:
        raise ticket_invalid()
    session_origin = Origin(origin.client_address, pending.origin.device)
    try:
        proof = await check_second_factor(
            uow,
            ctx,
            account,
            totp_code=totp_code,
            recovery_code=recovery_code,
            purpose=ChallengePurpose.SIGN_IN,
            origin=session_origin,
        )
    except CommittedRefusal:
        await publish(uow, account.record_failed_sign_in(locked=False, origin=origin, now=now))
        raise
    pending.complete(proof, now)
    await uow.pending_sign_ins.save(pending)
    return await _complete(uow, ctx, account, session_origin, second_factor=proof)


def _unknown_subject(ctx: AuthContext, identifier: Contact) -> str:
    """The counters' subject for an identifier without an account: stable, and unrelated to
    any account id or to the identifier in clear."""
    return ctx.secrets.hash(f"sign-in:{destination_subject(identifier)}")


def _device_of(
    ctx: AuthContext, account: Account | None, device_token: str, now: datetime
) -> DeviceToken | None:
    """The presented token, when it is valid and names this account; otherwise None, the
    same as no token (an unknown identifier never has one)."""
    if account is None:
        return None
    token = read_device_token(device_token, ctx.device_tokens, now)
    return token if token is not None and token.is_for(account.id) else None


async def _charge_attempt(
    ctx: AuthContext,
    identifier: Contact,
    device: DeviceToken | None,
    counters: SignInCounters,
    now: datetime,
) -> None:
    """One attempt on the limit of what vouches for the caller: the device token, else an
    address the account signed in from before (its known pair), else the identifier (keyed
    like the code limits, by the normalised identifier, whether or not an account has it)."""
    if device is not None:
        hit = Hit(ctx.rules.sign_in_per_device_token, device.token_id)
    elif counters.pair.is_known_pair(now):
        hit = Hit(ctx.rules.sign_in_per_known_address, counters.pair.key)
    else:
        hit = Hit(ctx.rules.sign_in_per_identifier, destination_subject(identifier))
    await enforce(ctx.limiter, [hit])


def _next_device_token(
    ctx: AuthContext, account: Account, device: DeviceToken | None, now: datetime
) -> str:
    """The presented token renewed (its limits and failures stay with it), or a new one."""
    if device is not None:
        token = device.renewed(now, ctx.rules.device_token_lifetime)
    else:
        token = DeviceToken.issue(
            account_id=account.id,
            token_id=ctx.new_secret(),
            now=now,
            lifetime=ctx.rules.device_token_lifetime,
        )
    return token.signed(ctx.device_tokens)


async def _load_counters(
    uow: AuthUnitOfWork, subject: str, address: str, device: DeviceToken | None
) -> SignInCounters:
    if device is not None:
        pair_key = FailureCounter.for_device(subject, device.token_id).key
    else:
        pair_key = FailureCounter.for_pair(subject, address).key
    return SignInCounters(
        account=await uow.failure_counters.get_or_new(CounterScope.ACCOUNT, subject),
        pair=await uow.failure_counters.get_or_new(CounterScope.ACCOUNT_ADDRESS, pair_key),
        address=await uow.failure_counters.get_or_new(CounterScope.ADDRESS, address),
        vouched=device is not None,
    )


async def _save_counters(uow: AuthUnitOfWork, counters: SignInCounters) -> None:
    for counter in (counters.account, counters.pair, counters.address):
        await uow.failure_counters.save(counter)


async def _refuse_password(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    account: Account | None,
    counters: SignInCounters,
    origin: Origin,
    now: datetime,
) -> NoReturn:
    locked = ctx.rules.throttle.record_failure(counters, now)
    await _save_counters(uow, counters)
    if account is not None:
        await publish(uow, account.record_failed_sign_in(locked=locked, origin=origin, now=now))
    raise CommittedRefusal(credentials_invalid())


async def _await_second_factor(
    uow: AuthUnitOfWork, ctx: AuthContext, account: Account, origin: Origin, now: datetime
) -> SecondFactorRequired:
    secret = ctx.new_secret()
    pending = PendingSignIn.start(
        id=ctx.new_id(),
        account_id=account.id,
        ticket=secret,
        hasher=ctx.secrets,
        origin=origin,
        now=now,
    )
    await uow.pending_sign_ins.add(pending)
    methods = [FactorMethod.TOTP]
    if account.recovery_codes is not None and account.recovery_codes.remaining > 0:
        methods.append(FactorMethod.RECOVERY_CODE)
    return SecondFactorRequired(
        ticket=f"{pending.id}.{secret}",
        expires_at=pending.expires_at,
        allowed_methods=tuple(methods),
    )


async def _load_pending(uow: AuthUnitOfWork, ctx: AuthContext, ticket: str) -> PendingSignIn:
    parsed = parse_bearer_secret(ticket)
    if parsed is None:
        raise ticket_invalid()
    pending_id, secret = parsed
    pending = await uow.pending_sign_ins.get(pending_id, for_update=True)
    if pending is None or not ctx.secrets.verify(secret, pending.ticket_hash):
        raise ticket_invalid()
    return pending


async def _is_new_device(uow: AuthUnitOfWork, account_id: str, origin: Origin) -> bool:
    """Whether no earlier session of the account came from this device (by the app's device
    id) or, when the app named no device, from this client address."""
    sessions = await uow.sessions.list_for_account(account_id)
    if origin.device is None:
        return all(session.origin.client_address != origin.client_address for session in sessions)
    device_id = origin.device.device_id
    return all(
        session.origin.device is None or session.origin.device.device_id != device_id
        for session in sessions
    )


async def _complete(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    account: Account,
    origin: Origin,
    *,
    second_factor: VerifiedFactor | None,
) -> TokenPair:
    new_device = await _is_new_device(uow, account.id, origin)
    tokens = await open_session(uow, ctx, account_id=account.id, origin=origin)
    events = account.record_sign_in(
        session_id=tokens.session_id,
        second_factor=None if second_factor is None else second_factor.method,
        new_device=new_device,
        origin=origin,
        now=ctx.clock(),
    )
    await publish(uow, events)
    return tokens
