"""The unit of work: what is committed stays, everything else is rolled back (SQLite and PG)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, ForeignKey, Integer, String, Table, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from walletcore.db import UnitOfWork, make_metadata, session_factory

metadata = make_metadata()
accounts = Table("accounts", metadata, Column("id", String(36), primary_key=True))
cards = Table(
    "cards",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
)


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, account_id: str) -> None:
        await self._session.execute(insert(accounts).values(id=account_id))


class AccountsUnitOfWork(UnitOfWork):
    accounts: AccountRepository

    def attach_repositories(self, session: AsyncSession) -> None:
        self.accounts = AccountRepository(session)


@pytest.fixture
async def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return session_factory(engine)


async def account_ids(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return list((await session.scalars(select(accounts.c.id).order_by(accounts.c.id))).all())


async def test_committed_work_is_kept(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with AccountsUnitOfWork(sessions) as uow:
        await uow.accounts.add("a-1")
        await uow.commit()

    assert await account_ids(sessions) == ["a-1"]


async def test_leaving_without_commit_rolls_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with AccountsUnitOfWork(sessions) as uow:
        await uow.accounts.add("a-1")

    assert await account_ids(sessions) == []


async def test_work_after_the_last_commit_is_rolled_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with AccountsUnitOfWork(sessions) as uow:
        await uow.accounts.add("a-1")
        await uow.commit()
        await uow.accounts.add("a-2")

    assert await account_ids(sessions) == ["a-1"]


async def test_an_exception_rolls_back_and_propagates(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def add_then_fail() -> None:
        async with AccountsUnitOfWork(sessions) as uow:
            await uow.accounts.add("a-1")
            raise LookupError("the use case failed")

    with pytest.raises(LookupError):
        await add_then_fail()

    assert await account_ids(sessions) == []


async def test_an_explicit_rollback_discards_the_work(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with AccountsUnitOfWork(sessions) as uow:
        await uow.accounts.add("a-1")
        await uow.rollback()
        await uow.accounts.add("a-2")
        await uow.commit()

    assert await account_ids(sessions) == ["a-2"]


async def test_foreign_keys_are_enforced(sessions: async_sessionmaker[AsyncSession]) -> None:
    async def add_card_of_missing_account() -> None:
        async with UnitOfWork(sessions) as uow:
            await uow.session.execute(insert(cards).values(id=1, account_id="missing"))
            await uow.commit()

    with pytest.raises(IntegrityError):
        await add_card_of_missing_account()

    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(cards)) == 0


async def test_the_session_exists_only_inside_the_block(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    uow = UnitOfWork(sessions)
    with pytest.raises(RuntimeError, match="not open"):
        _ = uow.session

    async with uow:
        with pytest.raises(RuntimeError, match="already open"):
            await uow.__aenter__()

    with pytest.raises(RuntimeError, match="not open"):
        await uow.commit()
