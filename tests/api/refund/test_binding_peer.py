"""Refund's binding client (`services.refund.adapters.binding.BindingHolds`) against a real
binding, with refund's own service token: an account's card is usable and held for a refund,
a card binding does not know for the account is INSTRUMENT_NOT_FOUND, and the worker's
repeated calls (a hold under the same request id, a release of a released hold) succeed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.refund.adapters.binding import BINDING_READS, BindingHolds
from services.refund.domain.reasons import Reason
from tests.api.auth.harness import request_id
from tests.api.binding.conftest import BindingTestApp, binding_app, binding_storage  # noqa: F401
from tests.api.binding.test_binding_api import bind
from walletcore.errors import NotFound
from walletcore.grpc.clients import (
    InternalClients,
    InternalTarget,
    InternalTargetOptions,
    ServiceTokens,
    service_token_issuer,
)
from walletcore.tokens import DEVELOPMENT_IDENTITY_ISSUER

pytestmark = pytest.mark.api


@pytest.fixture
async def holds(binding_app: BindingTestApp) -> AsyncIterator[BindingHolds]:  # noqa: F811
    clients = InternalClients(
        ServiceTokens(service_token_issuer(None, DEVELOPMENT_IDENTITY_ISSUER), "refund")
    )
    channel = clients.channel(
        InternalTarget(
            "binding", f"127.0.0.1:{binding_app.ports['internal']}", InternalTargetOptions()
        ),
        reads=BINDING_READS,
    )
    yield BindingHolds(channel)
    await clients.close()


async def test_a_card_is_held_for_a_refund_and_released(
    binding_app: BindingTestApp,  # noqa: F811
    holds: BindingHolds,
) -> None:
    holder = await binding_app.new_holder()
    card = await bind(binding_app, holder)
    assert await holds.is_usable(account_id=holder.account_id, instrument_id=card.card_id)
    hold_id = request_id()
    for _ in range(2):  # the worker's next pass repeats the call with the same request id
        await holds.place(
            request_id=hold_id,
            account_id=holder.account_id,
            instrument_id=card.card_id,
            refund_id="refund0001",
        )
    await holds.release(request_id=request_id(), refund_id="refund0001")
    await holds.release(request_id=request_id(), refund_id="refund0001")


async def test_another_accounts_card_is_not_found(
    binding_app: BindingTestApp,  # noqa: F811
    holds: BindingHolds,
) -> None:
    owner, stranger = await binding_app.new_holder(), await binding_app.new_holder()
    card = await bind(binding_app, owner)
    with pytest.raises(NotFound) as raised:
        await holds.is_usable(account_id=stranger.account_id, instrument_id=card.card_id)
    assert raised.value.reason == Reason.INSTRUMENT_NOT_FOUND
    with pytest.raises(NotFound):
        await holds.place(
            request_id=request_id(),
            account_id=stranger.account_id,
            instrument_id=card.card_id,
            refund_id="refund0002",
        )
