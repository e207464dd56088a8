"""The account aggregate on SQLite and PostgreSQL: every field survives, every change is saved,
and a contact belongs to one account even when two transactions race for it."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, timedelta

import pytest

from services.auth.adapters.repositories import CONTACT_IN_USE
from services.auth.domain.account import Account, AccountStatus, FreezeRecord
from services.auth.domain.contacts import Email, Phone, VerifiedContact
from services.auth.domain.events import Actor, Origin
from services.auth.domain.proofs import ChallengePurpose, FactorMethod, VerifiedFactor
from services.auth.domain.recovery import RecoveryCode, RecoveryCodeSet
from services.auth.domain.totp import TotpFactor, TotpState
from tests.integration.auth.persistence.builders import (
    SHANGHAI,
    START,
    NewUnitOfWork,
    make_account,
    postgres_only,
    store,
)
from walletcore.crypto import SecretHasher
from walletcore.errors import Aborted, AlreadyExists

OFFICER = Actor.security_officer("officer-7")


def contact_proof(account_id: str, at_minutes: int) -> VerifiedFactor:
    return VerifiedFactor(
        account_id=account_id,
        method=FactorMethod.SMS,
        purpose=ChallengePurpose.CONTACT_VERIFICATION,
        verified_at=START + timedelta(minutes=at_minutes),
    )


def by_kind(account: Account) -> Account:
    """The account with its contacts in a fixed order (the database returns them in the
    order they were verified, which a replacement changes)."""
    return dataclasses.replace(account, contacts=sorted(account.contacts, key=lambda c: c.kind))


async def load(new_uow: NewUnitOfWork, account_id: str) -> Account:
    async with new_uow() as uow:
        account = await uow.accounts.get(account_id)
    assert account is not None
    return account


async def test_an_account_comes_back_with_every_field(
    new_uow: NewUnitOfWork, hasher: SecretHasher
) -> None:
    account = make_account()
    account.status = AccountStatus.FROZEN
    account.password_changed_at = START.astimezone(SHANGHAI) + timedelta(hours=1)
    account.freeze_history = [
        FreezeRecord(True, OFFICER, "phishing report", "SEC-101", START + timedelta(hours=2)),
        FreezeRecord(False, OFFICER, "owner verified", "SEC-101", START + timedelta(hours=3)),
        FreezeRecord(True, Actor.user(account.id), "", "", START + timedelta(hours=4)),
    ]
    account.totp = TotpFactor(
        id="totp-1",
        account_id=account.id,
        encrypted_secret=b"\x01\x00sealed-secret",
        created_at=START,
        state=TotpState.ACTIVE,
        confirmed_at=START + timedelta(minutes=5),
        last_accepted_step=58_000_001,
        failed_confirmations=2,
    )
    account.recovery_codes = RecoveryCodeSet(
        id="codes-1",
        account_id=account.id,
        created_at=START,
        codes=[
            RecoveryCode(hasher.hash("AAAA0000AAAA0000"), used_at=START + timedelta(hours=1)),
            RecoveryCode(hasher.hash("BBBB1111BBBB1111")),
        ],
    )
    await store(new_uow, account)

    loaded = await load(new_uow, account.id)

    assert loaded == account
    assert loaded.password_changed_at is not None
    assert loaded.password_changed_at.tzinfo is UTC


async def test_save_writes_every_change_of_the_aggregate(
    new_uow: NewUnitOfWork, hasher: SecretHasher
) -> None:
    await store(new_uow, make_account(email=None))
    async with new_uow() as uow:
        account = await uow.accounts.get("acc-1", for_update=True)
        assert account is not None
        new_email = VerifiedContact("email-1", Email.parse("li@example.org"), START)
        account.add_contact(new_email, proof=contact_proof("acc-1", 1), origin=Origin(), now=START)
        account.totp = TotpFactor("totp-1", "acc-1", b"sealed", START, TotpState.ACTIVE)
        account.recovery_codes, _ = RecoveryCodeSet.generate(
            id="codes-1", account_id="acc-1", hasher=hasher, now=START
        )
        account.upgrade_password_hash("$argon2id$upgraded")
        account.freeze_by_officer(
            officer=OFFICER, reason="breach", ticket_ref="SEC-1", origin=Origin(), now=START
        )
        await uow.accounts.save(account)
        await uow.commit()

    assert await load(new_uow, "acc-1") == account


async def test_save_replaces_contacts_codes_and_appends_to_the_freeze_history(
    new_uow: NewUnitOfWork, hasher: SecretHasher
) -> None:
    original = make_account()
    original.totp = TotpFactor("totp-1", original.id, b"sealed", START, TotpState.ACTIVE)
    original.recovery_codes, _ = RecoveryCodeSet.generate(
        id="codes-1", account_id=original.id, hasher=hasher, now=START
    )
    original.freeze_history = [FreezeRecord(True, OFFICER, "breach", "SEC-1", START)]
    original.status = AccountStatus.FROZEN
    await store(new_uow, original)
    later = START + timedelta(days=1)

    async with new_uow() as uow:
        account = await uow.accounts.get(original.id)
        assert account is not None
        account.unfreeze(
            officer=OFFICER, reason="cleared", ticket_ref="SEC-1", origin=Origin(), now=later
        )
        new_phone = VerifiedContact("phone-2", Phone.parse("+8613900139000"), later)
        account.replace_contact(new_phone, actor=OFFICER, origin=Origin(), now=later)
        assert account.recovery_codes is not None
        account.recovery_codes.codes[3].used_at = later
        await uow.accounts.save(account)
        account.recovery_codes, _ = RecoveryCodeSet.generate(
            id="codes-2", account_id=account.id, hasher=hasher, now=later
        )
        account.recovery_codes.codes[0].used_at = later
        await uow.accounts.save(account)
        await uow.commit()

    assert by_kind(await load(new_uow, original.id)) == by_kind(account)


async def test_an_account_is_found_by_its_phone_or_its_email_in_any_case(
    new_uow: NewUnitOfWork,
) -> None:
    await store(new_uow, make_account())

    async with new_uow() as uow:
        by_phone = await uow.accounts.find_by_contact(Phone.parse("+86 138 0013 8000"))
        by_email = await uow.accounts.find_by_contact(Email.parse("ALICE@example.COM"))
        stranger = await uow.accounts.find_by_contact(Phone.parse("+8613900139000"))
        email_in_use = await uow.accounts.contact_in_use(Email.parse("alice@example.com"))
        stranger_in_use = await uow.accounts.contact_in_use(Email.parse("bob@example.com"))

    assert by_phone is not None
    assert by_phone.id == "acc-1"
    assert by_email is not None
    assert by_email.id == "acc-1"
    assert stranger is None
    assert email_in_use
    assert not stranger_in_use


async def test_a_new_account_with_another_accounts_email_is_refused(
    new_uow: NewUnitOfWork,
) -> None:
    await store(new_uow, make_account("acc-1"))

    with pytest.raises(AlreadyExists) as refused:
        await store(new_uow, make_account("acc-2", phone=None, email="ALICE@example.com"))

    assert refused.value.reason == CONTACT_IN_USE


async def test_adding_another_accounts_phone_is_refused_and_saves_nothing(
    new_uow: NewUnitOfWork,
) -> None:
    await store(new_uow, make_account("acc-1"), make_account("acc-2", phone=None, email="b@x.org"))

    async with new_uow() as uow:
        account = await uow.accounts.get("acc-2")
        assert account is not None
        taken = VerifiedContact("phone-2", Phone.parse("+8613800138000"), START)
        account.add_contact(taken, proof=contact_proof("acc-2", 0), origin=Origin(), now=START)
        account.upgrade_password_hash("$argon2id$not-saved-either")
        with pytest.raises(AlreadyExists) as refused:
            await uow.accounts.save(account)
        # The transaction survives the refusal, to commit what the use case must keep.
        assert await uow.used_grants.consume("jti-1", START)
        await uow.commit()

    assert refused.value.reason == CONTACT_IN_USE
    assert await load(new_uow, "acc-2") == make_account("acc-2", phone=None, email="b@x.org")
    async with new_uow() as uow:
        assert not await uow.used_grants.consume("jti-1", START)


@postgres_only
async def test_two_accounts_racing_for_one_phone_leave_it_to_exactly_one(
    new_uow: NewUnitOfWork,
) -> None:
    phone = Phone.parse("+8613800138000")
    await store(
        new_uow,
        make_account("acc-1", phone=None, email="a@x.org"),
        make_account("acc-2", phone=None, email="b@x.org"),
    )
    both_checked = asyncio.Barrier(2)

    async def claim(account_id: str) -> tuple[bool, str]:
        """Whether the phone looked free, and how adding it ended."""
        async with new_uow() as uow:
            account = await uow.accounts.get(account_id, for_update=True)
            assert account is not None
            looked_free = not await uow.accounts.contact_in_use(phone)
            await both_checked.wait()
            contact = VerifiedContact(f"{account_id}-phone", phone, START)
            proof = contact_proof(account_id, 0)
            account.add_contact(contact, proof=proof, origin=Origin(), now=START)
            try:
                await uow.accounts.save(account)
            except AlreadyExists as refused:
                return looked_free, refused.reason
            await uow.commit()
            return looked_free, "committed"

    claims = await asyncio.gather(claim("acc-1"), claim("acc-2"))

    assert [looked_free for looked_free, _ in claims] == [True, True]
    outcomes = [outcome for _, outcome in claims]
    assert sorted(outcomes) == [CONTACT_IN_USE, "committed"]
    async with new_uow() as uow:
        owner = await uow.accounts.find_by_contact(phone)
    assert owner is not None
    assert owner.id == ["acc-1", "acc-2"][outcomes.index("committed")]


@postgres_only
async def test_a_save_over_a_change_committed_since_the_read_is_aborted(
    new_uow: NewUnitOfWork,
) -> None:
    await store(new_uow, make_account())

    async with new_uow() as first, new_uow() as second:
        mine = await first.accounts.get("acc-1")
        theirs = await second.accounts.get("acc-1")
        assert mine is not None
        assert theirs is not None
        mine.upgrade_password_hash("$argon2id$first")
        await first.accounts.save(mine)
        await first.commit()
        theirs.upgrade_password_hash("$argon2id$second")
        with pytest.raises(Aborted):
            await second.accounts.save(theirs)

    assert (await load(new_uow, "acc-1")).password_hash == "$argon2id$first"


def with_factors(account: Account, hasher: SecretHasher, codes: int) -> Account:
    """`account` with a freeze in its history, an active TOTP factor and `codes` recovery codes
    of its own, so that loading many at once shows whose children went where."""
    account.freeze_history = [FreezeRecord(True, OFFICER, f"{account.id} report", "SEC-7", START)]
    account.totp = TotpFactor(f"{account.id}-totp", account.id, b"sealed", START, TotpState.ACTIVE)
    account.recovery_codes = RecoveryCodeSet(
        id=f"{account.id}-codes",
        account_id=account.id,
        created_at=START,
        codes=[RecoveryCode(hasher.hash(f"{account.id}-{n:013d}")) for n in range(codes)],
    )
    return account


async def test_get_many_loads_each_account_whole_with_its_own_children_in_id_order(
    new_uow: NewUnitOfWork, hasher: SecretHasher
) -> None:
    stored = [
        with_factors(make_account("acc-1"), hasher, codes=3),
        with_factors(make_account("acc-2", phone="+8613900139000", email=None), hasher, codes=2),
        make_account("acc-3", phone="+8613900139001", email="third@example.com"),
    ]
    await store(new_uow, *stored)
    asked = [f"missing-{n}" for n in range(1200)] + ["acc-3", "acc-2", "acc-1", "acc-2"]

    async with new_uow() as uow:
        many = await uow.accounts.get_many(asked, for_update=True)

    assert [by_kind(account) for account in many] == [by_kind(account) for account in stored]
