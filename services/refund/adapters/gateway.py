"""The payout gateway over HTTP: refund's `PayoutGateway` port on a provider's JSON API, as
the simulated gateway (`python -m services.refund.gateway_sim`) serves it.

    POST /payouts          {"idempotency_key", "instrument_id", "amount_minor", "currency"}
                           -> {"status", "reference", "code"}; a repeated key answers the first
    GET  /payouts/<key>    -> the same, or 404 when the gateway never received the key
    GET  /reversals?after= -> {"reversals": [{"idempotency_key", "code"}], "cursor"}

A call that does not answer within the timeout is `DeadlineExceeded`, one that cannot connect
or gets a 5xx is `Unavailable`: in every such case the payout's outcome is unknown, and the
attempt stays PENDING until the sweep asks again by key.
"""

from __future__ import annotations

from typing import Any, Final

import httpx

from services.refund.domain.money import Money
from services.refund.service.ports import GatewayOutcome, GatewayStatus, Reversal
from walletcore.errors import DeadlineExceeded, Unavailable

_NOT_FOUND: Final = 404


class HttpPayoutGateway:
    def __init__(
        self, base_url: str, *, timeout: float, client: httpx.AsyncClient | None = None
    ) -> None:
        self._client = client or httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout)
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise DeadlineExceeded("the payout gateway did not answer in time") from None
        except httpx.HTTPError:
            raise Unavailable("the payout gateway cannot be reached") from None
        if response.status_code >= 500:
            raise Unavailable("the payout gateway failed to answer")
        return response

    @staticmethod
    def _outcome(body: dict[str, Any]) -> GatewayOutcome:
        return GatewayOutcome(
            GatewayStatus(body["status"]), str(body.get("reference", "")), str(body.get("code", ""))
        )

    async def pay(
        self, *, idempotency_key: str, instrument_id: str, amount: Money
    ) -> GatewayOutcome:
        response = await self._request(
            "POST",
            "/payouts",
            json={
                "idempotency_key": idempotency_key,
                "instrument_id": instrument_id,
                "amount_minor": amount.minor,
                "currency": amount.currency,
            },
            headers={"Idempotency-Key": idempotency_key},
        )
        response.raise_for_status()
        return self._outcome(response.json())

    async def lookup(self, idempotency_key: str) -> GatewayOutcome:
        response = await self._request("GET", f"/payouts/{idempotency_key}")
        if response.status_code == _NOT_FOUND:
            return GatewayOutcome(GatewayStatus.UNKNOWN)
        response.raise_for_status()
        return self._outcome(response.json())

    async def reversals(self, after: str) -> tuple[list[Reversal], str]:
        response = await self._request("GET", "/reversals", params={"after": after})
        response.raise_for_status()
        body = response.json()
        return (
            [Reversal(r["idempotency_key"], r["code"]) for r in body["reversals"]],
            str(body["cursor"]),
        )
