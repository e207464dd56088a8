"""Requests racing a freeze on PostgreSQL: whatever was in flight while FreezeAccount ran, no
request that started after it returned is served, on the public port (the user's token) or
in what the other services are told (GetAccountStatus)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
import pytest

from tests.api.auth.harness import AuthTestApp, Registered, service_metadata
from tests.api.auth.test_admin_freeze import OFFICER, freeze_request
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import auth_service_pb2 as auth_pb
from wallet.auth.v1 import types_pb2
from walletcore.grpc.status import error_details

WORKERS = 16
SERVED_BEFORE_THE_FREEZE = 40
"""The freeze starts once this many requests were served, so it races a full stream."""
CALLS_AFTER_THE_FREEZE = 5
"""Each worker's requests that start after FreezeAccount returned."""
KYC = service_metadata("kyc")

Refusal = tuple[grpc.StatusCode, str | None]


@dataclass(frozen=True)
class Outcome:
    rpc: str
    started_after_the_freeze: bool
    served: bool
    """GetAccount answered OK, or GetAccountStatus answered ACTIVE."""
    refusal: Refusal | None = None


async def get_account(app: AuthTestApp, user: Registered) -> tuple[bool, Refusal | None]:
    try:
        await app.public.GetAccount(auth_pb.GetAccountRequest(), metadata=user.metadata)
    except grpc.aio.AioRpcError as error:
        details = error_details(error)
        return False, (details.code, details.reason)
    return True, None


async def account_status(app: AuthTestApp, user: Registered) -> tuple[bool, Refusal | None]:
    reply = await app.internal.GetAccountStatus(
        status_pb.GetAccountStatusRequest(account_id=user.account_id), metadata=KYC
    )
    return reply.status == types_pb2.ACCOUNT_STATUS_ACTIVE, None


@pytest.mark.parametrize("auth_backend", ["postgresql"], indirect=True)
async def test_no_request_started_after_freeze_account_returned_is_served(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    served = 0
    enough_served = asyncio.Event()
    freeze_returned = asyncio.Event()
    outcomes: list[Outcome] = []

    async def worker(number: int) -> None:
        nonlocal served
        rpc, call = ("GetAccount", get_account) if number % 2 else ("Status", account_status)
        after = 0
        while after < CALLS_AFTER_THE_FREEZE:
            started_after = freeze_returned.is_set()
            was_served, refusal = await call(auth_app, user)
            outcomes.append(Outcome(rpc, started_after, was_served, refusal))
            after += started_after
            served += was_served
            if served >= SERVED_BEFORE_THE_FREEZE:
                enough_served.set()

    async def officer() -> None:
        await enough_served.wait()
        await auth_app.admin.FreezeAccount(freeze_request(user.account_id), metadata=OFFICER)
        freeze_returned.set()

    await asyncio.gather(officer(), *(worker(number) for number in range(WORKERS)))

    after = [outcome for outcome in outcomes if outcome.started_after_the_freeze]
    assert len(after) == WORKERS * CALLS_AFTER_THE_FREEZE
    assert [outcome for outcome in after if outcome.served] == []
    refusals = {outcome.refusal for outcome in outcomes if outcome.refusal is not None}
    assert refusals <= {(grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")}
