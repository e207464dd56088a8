"""Shared builders for auth domain tests: a real keyed hasher, a fixed clock, an account."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from services.auth.domain.account import Account
from services.auth.domain.contacts import Email, Phone, VerifiedContact
from services.auth.domain.events import Device, Origin
from walletcore.crypto import SecretHasher

_NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def now() -> datetime:
    return _NOW


@pytest.fixture
def origin() -> Origin:
    return Origin("203.0.113.7", Device("install-1", "Li's phone"))


@pytest.fixture
def hasher() -> SecretHasher:
    return SecretHasher.development(context="auth.domain-tests")


@pytest.fixture
def make_account() -> Callable[..., Account]:
    def make(*, with_email: bool = True, account_id: str = "acc-1") -> Account:
        contacts = [VerifiedContact("c-phone", Phone.parse("+8613800138000"), _NOW)]
        if with_email:
            contacts.append(VerifiedContact("c-email", Email.parse("alice@example.com"), _NOW))
        return Account(
            id=account_id, password_hash="$argon2id$x", contacts=contacts, created_at=_NOW
        )

    return make
