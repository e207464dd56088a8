"""The in-memory fakes keep the promises of the real adapters that use-case tests rely on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.auth.domain.account import Account
from services.auth.domain.contacts import Email, Phone, VerifiedContact
from services.auth.domain.events import NO_CLIENT, Actor, SecurityEvent, SecurityEventType
from services.auth.domain.proofs import ChallengePurpose
from services.auth.service.fakes import (
    FakeClock,
    FakePasswordHasher,
    FakeStore,
    FakeTransactions,
    FakeUnitOfWork,
    RecordingNotifier,
)
from services.auth.service.ports import AuthUnitOfWork
from walletcore.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from walletcore.idempotency import CommittedRefusal, IdempotencyKey

PHONE = Phone("+8613800138000")


def new_account(account_id: str, clock: FakeClock, contact: Phone | Email = PHONE) -> Account:
    account, _ = Account.register(
        id=account_id,
        password_hash="stored-hash",
        contact=VerifiedContact(id=f"{account_id}-contact", value=contact, verified_at=clock()),
        origin=NO_CLIENT,
        now=clock(),
    )
    return account


async def test_a_change_that_is_not_saved_is_not_stored(
    uow: FakeUnitOfWork, store: FakeStore, clock: FakeClock
) -> None:
    async with uow:
        await uow.accounts.add(new_account("a1", clock))
        loaded = await uow.accounts.get("a1")
        assert loaded is not None
        loaded.password_hash = "changed without save"
        await uow.commit()

    assert store.accounts["a1"].password_hash == "stored-hash"


async def test_leaving_without_commit_rolls_back_rows_and_messages(
    uow: FakeUnitOfWork, store: FakeStore, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    async with uow:
        await uow.accounts.add(new_account("a1", clock))
        await uow.notifier.send_code(
            PHONE, code="123456", purpose=ChallengePurpose.REGISTRATION, expires_at=clock()
        )

    assert store.accounts == {}
    assert notifier.codes == []


async def test_an_exception_in_the_work_rolls_everything_back(
    tx: FakeTransactions, store: FakeStore, clock: FakeClock
) -> None:
    async def work(uow: AuthUnitOfWork) -> None:
        await uow.accounts.add(new_account("a1", clock))
        raise FailedPrecondition("refused", reason="TEST")

    with pytest.raises(FailedPrecondition):
        await tx.run(work)

    assert store.accounts == {}


async def test_a_committed_refusal_keeps_its_changes_and_raises_its_error(
    tx: FakeTransactions, store: FakeStore, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    async def work(uow: AuthUnitOfWork) -> None:
        await uow.accounts.add(new_account("a1", clock))
        await uow.notifier.send_code(
            PHONE, code="654321", purpose=ChallengePurpose.REGISTRATION, expires_at=clock()
        )
        raise CommittedRefusal(FailedPrecondition("refused", reason="TEST"))

    with pytest.raises(FailedPrecondition) as refused:
        await tx.run(work)

    assert refused.value.reason == "TEST"
    assert "a1" in store.accounts
    assert notifier.last_code(to=PHONE) == "654321"


async def test_a_repeated_request_id_returns_the_first_answer_without_running_again(
    tx: FakeTransactions,
) -> None:
    key = IdempotencyKey("scope", "owner", "request-1", "fingerprint")

    async def work(uow: AuthUnitOfWork) -> bytes:
        return f"answer {tx.runs}".encode()

    first = await tx.run_idempotent(key, work)
    second = await tx.run_idempotent(key, work)

    assert second == first == b"answer 1"
    assert tx.runs == 1


async def test_a_request_id_reused_with_another_body_is_refused(tx: FakeTransactions) -> None:
    async def work(uow: AuthUnitOfWork) -> bytes:
        return b"answer"

    await tx.run_idempotent(IdempotencyKey("scope", "owner", "request-1", "body-a"), work)

    with pytest.raises(InvalidArgument) as refused:
        await tx.run_idempotent(IdempotencyKey("scope", "owner", "request-1", "body-b"), work)

    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert [v.field for v in refused.value.violations] == ["request_id"]


async def test_a_failed_idempotent_request_is_not_recorded(tx: FakeTransactions) -> None:
    key = IdempotencyKey("scope", "owner", "request-1", "fingerprint")

    async def failing(uow: AuthUnitOfWork) -> bytes:
        raise FailedPrecondition("not yet", reason="TEST")

    async def succeeding(uow: AuthUnitOfWork) -> bytes:
        return b"done"

    with pytest.raises(FailedPrecondition):
        await tx.run_idempotent(key, failing)

    assert await tx.run_idempotent(key, succeeding) == b"done"


async def test_an_email_belongs_to_one_account_whatever_its_case(
    uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    async with uow:
        await uow.accounts.add(new_account("a1", clock, Email("Alice@example.com")))

        with pytest.raises(AlreadyExists) as taken:
            await uow.accounts.add(new_account("a2", clock, Email("alice@example.com")))

        assert taken.value.reason == "CONTACT_IN_USE"
        assert await uow.accounts.contact_in_use(Email("ALICE@example.com"))


async def test_security_events_page_newest_first(uow: FakeUnitOfWork, clock: FakeClock) -> None:
    async with uow:
        for event_type in (
            SecurityEventType.ACCOUNT_CREATED,
            SecurityEventType.SIGN_IN,
            SecurityEventType.SIGN_OUT,
        ):
            await uow.security_events.add(
                SecurityEvent(event_type, "a1", clock(), Actor.user("a1"))
            )
            clock.advance(timedelta(seconds=1))

        first = await uow.security_events.list_for_account("a1", page_size=2, page_token="")
        rest = await uow.security_events.list_for_account(
            "a1", page_size=2, page_token=first.next_page_token
        )

    assert [stored.event.type for stored in first.events + rest.events] == [
        SecurityEventType.SIGN_OUT,
        SecurityEventType.SIGN_IN,
        SecurityEventType.ACCOUNT_CREATED,
    ]
    assert rest.next_page_token == ""


async def test_a_foreign_page_token_is_refused(uow: FakeUnitOfWork) -> None:
    async with uow:
        with pytest.raises(InvalidArgument) as refused:
            await uow.security_events.list_for_account("a1", page_size=2, page_token="nope")

    assert refused.value.reason == "PAGE_TOKEN_INVALID"


async def test_repositories_refuse_use_outside_a_unit_of_work(uow: FakeUnitOfWork) -> None:
    with pytest.raises(RuntimeError):
        await uow.accounts.get("a1")


async def test_the_password_hasher_upgrades_hashes_of_an_older_version() -> None:
    stored = await FakePasswordHasher(version="v1").hash("correct horse")
    hasher = FakePasswordHasher(version="v2")

    assert await hasher.verify_and_update("wrong horse", stored) == (False, None)
    matches, upgraded = await hasher.verify_and_update("correct horse", stored)

    assert matches
    assert upgraded is not None
    assert await hasher.verify_and_update("correct horse", upgraded) == (True, None)
