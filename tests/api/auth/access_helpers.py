"""What the access and admin API tests share: reading a refusal, and accounts put straight
into the database (for a contact that must not have just received a code, or many at once)."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc.aio

from services.auth.domain.account import Account
from services.auth.domain.contacts import Contact, Email, VerifiedContact
from services.auth.domain.events import NO_CLIENT
from services.auth.service.ports import AuthUnitOfWork
from tests.api.auth.harness import DEFAULT_PASSWORD, AuthTestApp
from walletcore.grpc.status import RpcErrorDetails, error_details


async def failure(call: Awaitable[object]) -> RpcErrorDetails:
    """The status and details of a call that must fail; fails the test when it succeeded."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error_details(error)
    raise AssertionError("the call succeeded")


async def seed_account(auth_app: AuthTestApp, contact: Contact) -> str:
    """An account with DEFAULT_PASSWORD and `contact`, stored without any code being sent, so
    the contact's send limits are untouched. Returns its id."""
    ctx = auth_app.app.ctx
    now = ctx.clock()
    account, _ = Account.register(
        id=ctx.new_id(),
        password_hash=await ctx.passwords.hash(DEFAULT_PASSWORD),
        contact=VerifiedContact(ctx.new_id(), contact, now),
        origin=NO_CLIENT,
        now=now,
    )

    async def work(uow: AuthUnitOfWork) -> None:
        await uow.accounts.add(account)

    await auth_app.app.tx.run(work)
    return account.id


async def add_accounts(app: AuthTestApp, count: int) -> list[str]:
    """Accounts stored directly: registering this many through the API would hit the
    per-address limit on codes sent, which is not what the bulk tests are about."""
    now = app.app.ctx.clock()
    ids = [app.app.ctx.new_id() for _ in range(count)]

    async def work(uow: AuthUnitOfWork) -> None:
        for account_id in ids:
            contact = VerifiedContact(
                f"{account_id}-email", Email(f"{account_id}@example.test"), now
            )
            await uow.accounts.add(
                Account(id=account_id, password_hash="h", contacts=[contact], created_at=now)
            )

    await app.app.tx.run(work)
    return ids
