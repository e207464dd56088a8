"""SqlTransactions on SQLite and PostgreSQL: commit on return, roll back on error (outbox
messages included), commit a CommittedRefusal's changes, answer a retried request_id once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.auth.adapters import tables
from services.auth.adapters.transactions import SqlTransactions
from services.auth.domain.events import Actor, SecurityEvent, SecurityEventType
from services.auth.domain.reasons import Reason, code_invalid
from services.auth.service.ports import AuthUnitOfWork
from tests.integration.auth.persistence.builders import START, NewUnitOfWork, make_account
from walletcore.errors import FailedPrecondition, InvalidArgument
from walletcore.idempotency import KEY_REUSED_REASON, CommittedRefusal, IdempotencyKey

CREATED = SecurityEvent(SecurityEventType.ACCOUNT_CREATED, "acc-1", START, Actor.user("acc-1"))


def key(body_digest: str = "a" * 64) -> IdempotencyKey:
    return IdempotencyKey(
        "wallet.auth.v1.AuthService/CompleteRegistration", "anonymous", "r-1", body_digest
    )


async def register(uow: AuthUnitOfWork) -> bytes:
    """Stores an account, records its event and notifies its contacts."""
    account = make_account()
    await uow.accounts.add(account)
    event_id = await uow.security_events.add(CREATED)
    await uow.notifier.security_notice(account.contact_values, CREATED)
    return event_id.encode()


async def count(new_uow: NewUnitOfWork, table_name: str) -> int:
    table = tables.metadata.tables[table_name]
    async with new_uow() as uow:
        return (await uow.session.execute(select(func.count()).select_from(table))).scalar_one()


async def test_run_commits_the_work_and_its_messages(
    transactions: SqlTransactions, new_uow: NewUnitOfWork
) -> None:
    await transactions.run(register)

    assert (await count(new_uow, "accounts"), await count(new_uow, "outbox")) == (1, 2)


async def test_run_rolls_back_the_work_and_its_messages_on_an_error(
    transactions: SqlTransactions, new_uow: NewUnitOfWork
) -> None:
    async def register_then_fail(uow: AuthUnitOfWork) -> None:
        await register(uow)
        raise FailedPrecondition("refused", reason="SOMETHING")

    with pytest.raises(FailedPrecondition):
        await transactions.run(register_then_fail)

    assert (await count(new_uow, "accounts"), await count(new_uow, "outbox")) == (0, 0)


async def count_wrong_code(uow: AuthUnitOfWork) -> bytes:
    """Counts a wrong code in the ledger, and refuses with it committed."""
    ledger = await uow.code_failure_ledgers.get_or_new("acc-1")
    ledger.record_failure(START)
    await uow.code_failure_ledgers.save(ledger)
    raise CommittedRefusal(code_invalid(attempts_left=4))


async def failures_counted(new_uow: NewUnitOfWork) -> int:
    async with new_uow() as uow:
        return len((await uow.code_failure_ledgers.get_or_new("acc-1")).recent_failures)


async def test_run_commits_a_refusals_changes_and_raises_its_error(
    transactions: SqlTransactions, new_uow: NewUnitOfWork
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await transactions.run(count_wrong_code)

    assert refused.value.reason == Reason.CODE_INVALID
    assert await failures_counted(new_uow) == 1


async def test_a_retried_request_id_answers_the_first_response_without_running_again(
    transactions: SqlTransactions, new_uow: NewUnitOfWork
) -> None:
    first = await transactions.run_idempotent(key(), register)
    retried = await transactions.run_idempotent(key(), register)

    assert retried == first
    assert await count(new_uow, "security_events") == 1


async def test_a_request_id_reused_for_another_request_is_refused(
    transactions: SqlTransactions,
) -> None:
    await transactions.run_idempotent(key(), register)

    with pytest.raises(InvalidArgument) as refused:
        await transactions.run_idempotent(key(body_digest="b" * 64), register)

    assert refused.value.reason == KEY_REUSED_REASON


async def test_a_refused_request_commits_its_changes_and_is_checked_again_on_retry(
    transactions: SqlTransactions, new_uow: NewUnitOfWork
) -> None:
    for _ in range(2):
        with pytest.raises(InvalidArgument):
            await transactions.run_idempotent(key(), count_wrong_code)

    assert await failures_counted(new_uow) == 2
