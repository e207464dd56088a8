"""Refund's HTTP payout gateway client against the simulated gateway: one payout per key, a
lost request is UNKNOWN to the gateway, a late answer is DeadlineExceeded and the gateway's
ledger still shows the payout, reversals come with a cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from services.refund.adapters.gateway import HttpPayoutGateway
from services.refund.domain.money import Money
from services.refund.gateway_sim import SimulatorConfig, serve
from services.refund.service.ports import GatewayStatus, Reversal
from walletcore.errors import DeadlineExceeded, Unavailable

pytestmark = pytest.mark.integration


@pytest.fixture
def sim_url() -> Iterator[str]:
    server = serve("127.0.0.1", 0, SimulatorConfig(timeout_seconds=1.0))
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
async def gateway(sim_url: str) -> AsyncIterator[HttpPayoutGateway]:
    gateway = HttpPayoutGateway(sim_url, timeout=0.3)
    yield gateway
    await gateway.close()


async def script(sim_url: str, *behaviours: str) -> None:
    async with httpx.AsyncClient() as client:
        (
            await client.post(f"{sim_url}/control/script", json={"behaviours": behaviours})
        ).raise_for_status()


async def ledger(sim_url: str) -> dict[str, dict[str, object]]:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{sim_url}/ledger")).json()["paid"]  # type: ignore[no-any-return]


async def test_a_key_pays_once(gateway: HttpPayoutGateway, sim_url: str) -> None:
    first = await gateway.pay(
        idempotency_key="r1-1", instrument_id="card-1", amount=Money(500, "CNY")
    )
    again = await gateway.pay(
        idempotency_key="r1-1", instrument_id="card-1", amount=Money(500, "CNY")
    )
    assert first.status is GatewayStatus.SUCCEEDED
    assert again == first
    assert list(await ledger(sim_url)) == ["r1-1"]
    assert (await gateway.lookup("r1-1")) == first
    assert (await gateway.lookup("r9-1")).status is GatewayStatus.UNKNOWN


async def test_scripted_refusals(gateway: HttpPayoutGateway, sim_url: str) -> None:
    await script(sim_url, "DECLINE", "INSTRUMENT_GONE", "ERROR")
    outcomes = [
        await gateway.pay(idempotency_key=f"k{n}", instrument_id="c", amount=Money(1, "CNY"))
        for n in range(3)
    ]
    assert [o.status for o in outcomes] == [
        GatewayStatus.DECLINED,
        GatewayStatus.INSTRUMENT_UNAVAILABLE,
        GatewayStatus.ERROR,
    ]
    assert await ledger(sim_url) == {}


async def test_a_late_answer_is_a_deadline_and_the_ledger_shows_the_payout(
    gateway: HttpPayoutGateway, sim_url: str
) -> None:
    await script(sim_url, "PAY_THEN_TIME_OUT")
    with pytest.raises(DeadlineExceeded):
        await gateway.pay(idempotency_key="r2-1", instrument_id="card-1", amount=Money(7, "CNY"))
    assert (await gateway.lookup("r2-1")).status is GatewayStatus.SUCCEEDED
    assert list(await ledger(sim_url)) == ["r2-1"]


async def test_reversals_are_read_after_a_cursor(gateway: HttpPayoutGateway, sim_url: str) -> None:
    await gateway.pay(idempotency_key="r3-1", instrument_id="card-1", amount=Money(7, "CNY"))
    async with httpx.AsyncClient() as client:
        await client.post(
            f"{sim_url}/control/reverse", json={"idempotency_key": "r3-1", "code": "CHARGEBACK"}
        )
    items, cursor = await gateway.reversals("")
    assert items == [Reversal("r3-1", "CHARGEBACK")]
    assert await gateway.reversals(cursor) == ([], cursor)
    assert await ledger(sim_url) == {}


async def test_an_unreachable_gateway_is_unavailable() -> None:
    gateway = HttpPayoutGateway("http://127.0.0.1:9", timeout=0.5)
    with pytest.raises(Unavailable):
        await gateway.lookup("x")
    await gateway.close()
