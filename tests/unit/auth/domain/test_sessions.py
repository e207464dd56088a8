"""Sessions: refresh-token rotation, reuse detection that revokes the family, lifetimes, and
pending sign-ins awaiting a second factor."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.auth.domain.contacts import Phone
from services.auth.domain.events import (
    NotificationRequested,
    Origin,
    RevokeReason,
    SecurityEvent,
    SecurityEventType,
)
from services.auth.domain.proofs import ChallengePurpose, FactorMethod, VerifiedFactor
from services.auth.domain.sessions import (
    PendingSignIn,
    RefreshToken,
    Rotation,
    Session,
    SessionLifetimes,
)
from walletcore.crypto import SecretHasher
from walletcore.errors import Unauthenticated

PHONE = Phone.parse("+8613800138000")


def start(hasher: SecretHasher, now: datetime, origin: Origin) -> tuple[Session, RefreshToken]:
    return Session.start(
        id="s-1",
        account_id="acc-1",
        origin=origin,
        first_token_id="rt-0",
        first_token="token-0",
        hasher=hasher,
        now=now,
    )


def rotate(
    session: Session, token: RefreshToken, n: int, hasher: SecretHasher, now: datetime
) -> Rotation:
    return session.rotate(
        token,
        new_token_id=f"rt-{n}",
        new_token=f"token-{n}",
        hasher=hasher,
        origin=Origin("198.51.100.9"),
        now=now,
        notify=[PHONE],
    )


def test_start_issues_a_hashed_refresh_token_within_the_lifetimes(
    hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    session, token = start(hasher, now, origin)
    assert hasher.verify("token-0", token.token_hash)
    assert "token-0" not in token.token_hash
    assert token.expires_at == now + timedelta(days=30)
    assert session.expires_at == now + timedelta(days=90)
    assert session.is_active(now)


def test_rotation_uses_up_the_presented_token(
    hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    session, first = start(hasher, now, origin)
    later = now + timedelta(days=1)
    second = rotate(session, first, 1, hasher, later).new_token_or_raise()
    assert first.used_at == later
    assert (second.session_id, second.issued_at) == ("s-1", later)
    assert hasher.verify("token-1", second.token_hash)
    assert session.last_used_at == later
    assert session.origin == Origin("198.51.100.9", origin.device)


def test_reusing_a_used_token_revokes_the_session_and_notifies(
    hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    session, first = start(hasher, now, origin)
    second = rotate(session, first, 1, hasher, now).new_token_or_raise()
    rotation = rotate(session, first, 2, hasher, now)
    with pytest.raises(Unauthenticated) as caught:
        rotation.new_token_or_raise()
    assert caught.value.reason == "REFRESH_TOKEN_REUSED"
    assert (session.revoked_at, session.revoke_reason) == (now, RevokeReason.REFRESH_TOKEN_REUSED)
    event, notice = rotation.events
    assert isinstance(event, SecurityEvent)
    assert event.type is SecurityEventType.REFRESH_TOKEN_REUSED
    assert isinstance(notice, NotificationRequested)
    assert notice.recipients == (PHONE,)
    with pytest.raises(Unauthenticated) as caught:
        rotate(session, second, 3, hasher, now)
    assert caught.value.reason == "REFRESH_TOKEN_INVALID"


def test_expired_token_is_invalid_and_changes_nothing(
    hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    session, first = start(hasher, now, origin)
    with pytest.raises(Unauthenticated, match="not valid"):
        rotate(session, first, 1, hasher, first.expires_at)
    assert first.used_at is None
    assert session.revoked_at is None


def test_no_refresh_outlives_the_session(
    hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    session, token = start(hasher, now, origin)
    for n, day in enumerate(range(25, 90, 25), start=1):
        token = rotate(session, token, n, hasher, now + timedelta(days=day)).new_token_or_raise()
    assert token.expires_at == session.expires_at
    with pytest.raises(Unauthenticated):
        rotate(session, token, 9, hasher, session.expires_at)


def test_revoked_session_ends_its_tokens(
    hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    session, token = start(hasher, now, origin)
    assert session.revoke(RevokeReason.SIGN_OUT, now)
    assert not session.revoke(RevokeReason.ACCOUNT_FROZEN, now)
    assert session.revoke_reason is RevokeReason.SIGN_OUT
    with pytest.raises(Unauthenticated) as caught:
        session.ensure_active(now)
    assert caught.value.reason == "SESSION_REVOKED"
    with pytest.raises(Unauthenticated):
        rotate(session, token, 1, hasher, now)


def test_refresh_tokens_cannot_outlive_sessions_by_configuration() -> None:
    with pytest.raises(ValueError, match="outlive"):
        SessionLifetimes(refresh_token=timedelta(days=91), session=timedelta(days=90))


@given(rotations=st.integers(1, 8), data=st.data())
def test_any_reuse_revokes_the_whole_family(rotations: int, data: st.DataObject) -> None:
    hasher = SecretHasher.development(context="auth.domain-tests")
    now = datetime.fromisoformat("2025-03-01T12:00:00+00:00")
    session, token = start(hasher, now, Origin())
    tokens = [token]
    for n in range(1, rotations + 1):
        tokens.append(rotate(session, tokens[-1], n, hasher, now).new_token_or_raise())
    reused = data.draw(st.sampled_from(tokens[:-1]))
    assert rotate(session, reused, 100, hasher, now).failure is not None
    assert not session.is_active(now)
    for presented in tokens:
        with pytest.raises(Unauthenticated):
            rotate(session, presented, 101, hasher, now).new_token_or_raise()


def sign_in_proof(now: datetime, **changes: Any) -> VerifiedFactor:
    proof = VerifiedFactor(
        account_id="acc-1",
        method=FactorMethod.TOTP,
        purpose=ChallengePurpose.SIGN_IN,
        verified_at=now,
    )
    return dataclasses.replace(proof, **changes)


def test_pending_sign_in_completes_once_within_five_minutes(
    hasher: SecretHasher, now: datetime, origin: Origin
) -> None:
    pending = PendingSignIn.start(
        id="p-1", account_id="acc-1", ticket="ticket", hasher=hasher, origin=origin, now=now
    )
    assert hasher.verify("ticket", pending.ticket_hash)
    assert pending.expires_at == now + timedelta(minutes=5)
    pending.complete(sign_in_proof(now), now)
    with pytest.raises(Unauthenticated) as caught:
        pending.complete(sign_in_proof(now), now)
    assert caught.value.reason == "TICKET_INVALID"


def test_pending_sign_in_expires(hasher: SecretHasher, now: datetime, origin: Origin) -> None:
    pending = PendingSignIn.start(
        id="p-1", account_id="acc-1", ticket="ticket", hasher=hasher, origin=origin, now=now
    )
    with pytest.raises(Unauthenticated):
        pending.ensure_open(pending.expires_at)


@pytest.mark.parametrize(
    "changes",
    [
        {"account_id": "acc-2"},
        {"method": FactorMethod.SMS},
        {"purpose": ChallengePurpose.CREDENTIAL_RESET},
    ],
)
def test_pending_sign_in_needs_this_accounts_second_factor(
    hasher: SecretHasher, now: datetime, origin: Origin, changes: dict[str, Any]
) -> None:
    pending = PendingSignIn.start(
        id="p-1", account_id="acc-1", ticket="ticket", hasher=hasher, origin=origin, now=now
    )
    with pytest.raises(ValueError, match="second factor"):
        pending.complete(sign_in_proof(now, **changes), now)
    assert pending.completed_at is None
