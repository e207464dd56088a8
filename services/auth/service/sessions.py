"""Sessions as their holder sees them: opening one, refreshing it, signing out, listing and
revoking them.

A refresh token given to a client is `"<token id>.<secret>"`: the id finds the row, and the
secret must match the row's keyed hash. The same shape serves the sign-in ticket
(`parse_bearer_secret`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from services.auth.domain.account import Account
from services.auth.domain.events import Actor, Origin, RevokeReason
from services.auth.domain.sessions import RefreshToken, Session, refresh_token_invalid
from services.auth.service.context import AuthContext, publish
from services.auth.service.ports import AuthUnitOfWork
from walletcore.errors import FieldViolation, InvalidArgument, NotFound
from walletcore.idempotency import CommittedRefusal

SESSION_NOT_FOUND: Final = "SESSION_NOT_FOUND"
PAGE_TOKEN_INVALID: Final = "PAGE_TOKEN_INVALID"  # noqa: S105 (a reason, not a password)
# Ids are uuid hex and secrets 256-bit url-safe text; anything much longer is not ours.
_MAX_ID_LENGTH: Final = 128
_MAX_SECRET_LENGTH: Final = 256


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    access_token_expires_at: datetime
    refresh_token: str
    refresh_token_expires_at: datetime
    session_id: str


@dataclass(frozen=True, slots=True)
class SessionPage:
    sessions: list[Session]
    """Active sessions, most recently used first."""
    next_page_token: str


def parse_bearer_secret(raw: str) -> tuple[str, str] | None:
    """`(id, secret)` of a `"<id>.<secret>"` string, or None when it cannot be one of ours."""
    row_id, dot, secret = raw.partition(".")
    if not (dot and row_id and secret):
        return None
    if len(row_id) > _MAX_ID_LENGTH or len(secret) > _MAX_SECRET_LENGTH:
        return None
    return row_id, secret


async def open_session(
    uow: AuthUnitOfWork, ctx: AuthContext, *, account_id: str, origin: Origin
) -> TokenPair:
    """A new session for a signed-in account and its first pair of tokens."""
    secret = ctx.new_secret()
    session, first_token = Session.start(
        id=ctx.new_id(),
        account_id=account_id,
        origin=origin,
        first_token_id=ctx.new_id(),
        first_token=secret,
        hasher=ctx.secrets,
        now=ctx.clock(),
        lifetimes=ctx.rules.session_lifetimes,
    )
    await uow.sessions.add(session, first_token)
    return _token_pair(ctx, session, first_token, secret)


async def refresh_session(
    uow: AuthUnitOfWork, ctx: AuthContext, *, refresh_token: str, origin: Origin
) -> TokenPair:
    """Rotates the presented refresh token. A token used before revokes its whole session
    (committed, then REFRESH_TOKEN_REUSED); anything unknown is REFRESH_TOKEN_INVALID."""
    presented, session, account = await _load_refresh(uow, ctx, refresh_token)
    secret = ctx.new_secret()
    rotation = account.refresh_session(
        session,
        presented,
        new_token_id=ctx.new_id(),
        new_token=secret,
        hasher=ctx.secrets,
        origin=origin,
        now=ctx.clock(),
        lifetimes=ctx.rules.session_lifetimes,
    )
    await uow.sessions.save(session)
    await publish(uow, rotation.events)
    if rotation.new_token is None:
        if rotation.failure is None:  # an invariant, checked also under python -O
            raise RuntimeError("a refused rotation holds its failure")
        raise CommittedRefusal(rotation.failure)
    await uow.sessions.save_refresh_token(presented)
    await uow.sessions.add_refresh_token(rotation.new_token)
    return _token_pair(ctx, session, rotation.new_token, secret)


async def _load_refresh(
    uow: AuthUnitOfWork, ctx: AuthContext, refresh_token: str
) -> tuple[RefreshToken, Session, Account]:
    parsed = parse_bearer_secret(refresh_token)
    if parsed is None:
        raise refresh_token_invalid()
    token_id, secret = parsed
    presented = await uow.sessions.get_refresh_token(token_id, for_update=True)
    if presented is None or not ctx.secrets.verify(secret, presented.token_hash):
        raise refresh_token_invalid()
    session = await uow.sessions.get(presented.session_id, for_update=True)
    account = None if session is None else await uow.accounts.get(session.account_id)
    if session is None or account is None:
        raise refresh_token_invalid()
    return presented, session, account


async def sign_out(
    uow: AuthUnitOfWork, ctx: AuthContext, *, account_id: str, session_id: str, origin: Origin
) -> None:
    """Ends the caller's own current session; signing out twice changes nothing more."""
    await revoke_session(
        uow,
        ctx,
        account_id=account_id,
        session_id=session_id,
        current_session_id=session_id,
        origin=origin,
    )


async def revoke_session(
    uow: AuthUnitOfWork,
    ctx: AuthContext,
    *,
    account_id: str,
    session_id: str,
    current_session_id: str | None,
    origin: Origin,
) -> None:
    """Revokes one of the account's own sessions; revoking the current one is a sign-out.

    Another account's session is NOT_FOUND exactly like one that does not exist: a session id
    must not tell anyone that it is real.
    """
    session = await uow.sessions.get(session_id, for_update=True)
    account = await uow.accounts.get(account_id)
    if session is None or account is None or session.account_id != account_id:
        raise NotFound("no such session", reason=SESSION_NOT_FOUND)
    reason = (
        RevokeReason.SIGN_OUT if session_id == current_session_id else RevokeReason.REVOKED_BY_USER
    )
    events = account.revoke_session(
        session, reason=reason, actor=Actor.user(account_id), origin=origin, now=ctx.clock()
    )
    await uow.sessions.save(session)
    await publish(uow, events)


async def list_sessions(
    uow: AuthUnitOfWork, ctx: AuthContext, *, account_id: str, page_size: int, page_token: str
) -> SessionPage:
    """The account's active sessions, most recently used first. The page token is the id of
    the last session of the page before; one that is not an active session of this account
    is PAGE_TOKEN_INVALID."""
    now = ctx.clock()
    active = [s for s in await uow.sessions.list_for_account(account_id) if s.is_active(now)]
    active.sort(key=lambda session: (session.last_used_at, session.id), reverse=True)
    start = 0
    if page_token:
        ids = [session.id for session in active]
        if page_token not in ids:
            raise InvalidArgument(
                [FieldViolation("page.page_token", "is not a token of this list")],
                "the page token does not fit this list",
                reason=PAGE_TOKEN_INVALID,
            )
        start = ids.index(page_token) + 1
    page = active[start : start + page_size]
    more = start + page_size < len(active)
    return SessionPage(sessions=page, next_page_token=page[-1].id if more else "")


def _token_pair(ctx: AuthContext, session: Session, token: RefreshToken, secret: str) -> TokenPair:
    access = ctx.tokens.access_token(
        account_id=session.account_id,
        session_id=session.id,
        ttl=ctx.rules.access_token_lifetime,
    )
    return TokenPair(
        access_token=access.token,
        access_token_expires_at=access.expires_at,
        refresh_token=f"{token.id}.{secret}",
        refresh_token_expires_at=token.expires_at,
        session_id=session.id,
    )
