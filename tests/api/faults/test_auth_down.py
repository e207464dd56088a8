"""Fault: auth goes away while kyc, binding and refund serve, and comes back on the same port.

Every user RPC of the three checks the caller with auth on each call, so while auth is gone
they fail closed: UNAVAILABLE, never OK and never INTERNAL, and nothing is written. A new auth
on the same ports and database (as after a crash and restart) is found again by their
channels, without restarting them, and the same calls succeed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import grpc
import sqlalchemy as sa

from services.auth.bootstrap import build
from services.binding.adapters import tables as binding_tables
from services.kyc.adapters.tables import verification_cases
from services.refund.adapters import tables as refund_tables
from tests.api.auth.harness import request_id
from tests.api.auth.recovery_helpers import Holder
from tests.api.binding.conftest import HOLDER_NAME, BindingTestApp
from tests.api.kyc.conftest import StartKyc
from tests.api.kyc.harness import submit_request
from tests.api.refund.conftest import CARD, RefundTestApp
from tests.support.faults import code_of, eventually, report_fault
from wallet.binding.v1 import binding_service_pb2 as binding_pb
from wallet.kyc.v1 import kyc_service_pb2 as kyc_pb
from wallet.refund.v1 import refund_service_pb2 as refund_pb
from walletcore.db import create_engine

ROUNDS_WHILE_DOWN = 2
OK, UNAVAILABLE = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE


def bind_request() -> binding_pb.BindCardRequest:
    return binding_pb.BindCardRequest(
        request_id=request_id(),
        card_number="4242 4242 4242 4242",
        expiry_month=12,
        expiry_year=2030,
        holder_name=HOLDER_NAME,
    )


async def rows(database_url: str, table: sa.Table) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
    finally:
        await engine.dispose()


async def test_kyc_binding_and_refund_fail_closed_while_auth_is_down_and_recover_after(
    binding_app: BindingTestApp, refund_app: RefundTestApp, start_kyc: StartKyc
) -> None:
    auth = binding_app.auth
    assert refund_app.auth is auth
    async with start_kyc(auth=auth) as kyc:
        holder: Holder = await binding_app.new_holder()
        refund_app.holds.instruments[f"{CARD}{holder.account_id}"] = (holder.account_id, True)
        payment = await refund_app.capture(holder, 100_000)
        user = holder.metadata

        def calls() -> dict[str, Callable[[], Awaitable[object]]]:
            """One read and one write of each service, each a fresh request."""
            return {
                "kyc.SubmitVerification": lambda: kyc.public.SubmitVerification(
                    submit_request(), metadata=user
                ),
                "kyc.GetVerification": lambda: kyc.public.GetVerification(
                    kyc_pb.GetVerificationRequest(), metadata=user
                ),
                "binding.ListCards": lambda: binding_app.public.ListCards(
                    binding_pb.ListCardsRequest(), metadata=user
                ),
                "binding.BindCard": lambda: binding_app.public.BindCard(
                    bind_request(), metadata=user
                ),
                "refund.ListRefunds": lambda: refund_app.public.ListRefunds(
                    refund_pb.ListRefundsRequest(), metadata=user
                ),
                "refund.RequestRefund": lambda: refund_app.request(
                    holder, payment.payment_id, 1_000
                ),
            }

        async def written() -> tuple[int, int, int]:
            return (
                await rows(str(kyc.app.settings.database_url), verification_cases),
                await rows(str(binding_app.app.settings.database_url), binding_tables.cards),
                await rows(str(refund_app.app.settings.database_url), refund_tables.refunds),
            )

        # Up: the reads answer; nothing written yet. (Each service caches auth's keys now.)
        for name in ("kyc.GetVerification", "binding.ListCards", "refund.ListRefunds"):
            assert await code_of(calls()[name]()) in {OK, grpc.StatusCode.NOT_FOUND}, name
        assert await written() == (0, 0, 0)

        await auth.app.close(grace=0)
        down: Counter[tuple[str, grpc.StatusCode]] = Counter()
        for _ in range(ROUNDS_WHILE_DOWN):
            for name, call in calls().items():
                down[name, await code_of(call())] += 1
        assert down == Counter({(name, UNAVAILABLE): ROUNDS_WHILE_DOWN for name in calls()})
        assert await written() == (0, 0, 0)

        # Auth restarts on the same ports and database; the others are not restarted.
        restarted = build(auth.app.settings)
        await restarted.start()
        try:
            looks: dict[str, int] = {}
            for name in ("kyc.GetVerification", "binding.ListCards", "refund.ListRefunds"):

                async def answers(name: str = name) -> bool:
                    return await code_of(calls()[name]()) != UNAVAILABLE

                looks[name] = await eventually(answers, f"{name} after auth came back")
            after = {name: await code_of(call()) for name, call in calls().items()}
            assert set(after.values()) == {OK}, after
            assert await written() == (1, 1, 1)
        finally:
            await restarted.close(grace=0)

    total_down = sum(down.values())
    report_fault(
        "auth down while kyc, binding and refund serve",
        f"{total_down} user calls while auth was down (a read and a write of each of the 3 "
        f"services, {ROUNDS_WHILE_DOWN} rounds): {total_down} UNAVAILABLE, 0 OK, 0 INTERNAL, "
        f"0 rows written; auth restarted on the same port: reads answered again within "
        f"{max(looks.values())} look(s), then 6/6 calls OK and 1 case, 1 card, 1 refund written",
    )
