"""Whatever a holder's app, a security officer's tool or refund sends to any RPC of binding's
three ports, the answer is a client error or a success, never INTERNAL or UNKNOWN and never a
message naming the server's insides; binding still serves afterwards (SPEC 7). The requests are
drawn from the descriptors (tests/support/fuzz.py), so an RPC added later is covered too."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf.message import Message
from hypothesis import strategies as st

from tests.api.auth.harness import operator_metadata, request_id
from tests.api.binding.conftest import REFUND, BindingTestApp
from tests.api.binding.test_binding_api import OTHER_CARD, UNBIND, bind, bind_request
from tests.support.channels import port_channels
from tests.support.fuzz import Port, hammer
from wallet.binding.v1 import binding_admin_service_pb2 as admin_pb
from wallet.binding.v1 import binding_query_service_pb2 as query_pb
from wallet.binding.v1 import binding_service_pb2 as pb
from wallet.common.v1 import contact_pb2

PHONE = "+8613900139000"

pytestmark = pytest.mark.fuzz

PER_RPC = 12
RAW_PER_RPC = 4


async def test_no_generated_request_to_any_rpc_is_a_server_error(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()
    card = await bind(binding_app, holder)
    # Some requests name the real account and card, so they get past the lookups.
    card_id = st.just(card.card_id)
    known = {
        "account_id": st.just(holder.account_id),
        "card_id": card_id,
        "instrument_id": card_id,
    }
    grant = await binding_app.grant(holder, UNBIND, card.card_id)
    # Requests that would succeed (or get as far as the grant); half the draws spoil one or
    # two fields of one of them.
    well_formed: dict[str, Callable[[], Message]] = {
        "BindCard": lambda: bind_request(OTHER_CARD),
        "UnbindCard": lambda: pb.UnbindCardRequest(
            request_id=request_id(), card_id=card.card_id, grant=grant
        ),
        "StartContactChange": lambda: pb.StartContactChangeRequest(
            request_id=request_id(), new_contact=contact_pb2.Contact(phone=PHONE), grant=grant
        ),
        "CompleteContactChange": lambda: pb.CompleteContactChangeRequest(
            request_id=request_id(), change_id="0" * 32, code="123456"
        ),
        "GetInstrument": lambda: query_pb.GetInstrumentRequest(
            account_id=holder.account_id, instrument_id=card.card_id
        ),
        "GetWithdrawalHold": lambda: query_pb.BindingQueryServiceGetWithdrawalHoldRequest(
            account_id=holder.account_id
        ),
        "PlaceRefundHold": lambda: query_pb.PlaceRefundHoldRequest(
            request_id=request_id(),
            account_id=holder.account_id,
            instrument_id=card.card_id,
            refund_id=request_id(),
        ),
        "ReleaseRefundHold": lambda: query_pb.ReleaseRefundHoldRequest(
            request_id=request_id(), refund_id=request_id()
        ),
    }
    async with port_channels(binding_app.ports) as channels:
        ports = [
            Port(
                "public",
                channels["public"],
                pb.DESCRIPTOR.services_by_name["BindingService"],
                holder.metadata,
                known=known,
                well_formed=well_formed,
            ),
            Port(
                "admin",
                channels["admin"],
                admin_pb.DESCRIPTOR.services_by_name["BindingAdminService"],
                operator_metadata(operator_id="officer-fuzz"),
                known=known,
            ),
            Port(
                "internal",
                channels["internal"],
                query_pb.DESCRIPTOR.services_by_name["BindingQueryService"],
                REFUND,
                known=known,
                well_formed=well_formed,
            ),
        ]

        sent = await hammer(ports, per_rpc=PER_RPC, raw_per_rpc=RAW_PER_RPC)

    print(f"binding: generated requests per port {sent}")
    # A valid call after all of it is answered as before.
    instrument = await binding_app.query.GetInstrument(
        query_pb.GetInstrumentRequest(account_id=holder.account_id, instrument_id=card.card_id),
        metadata=REFUND,
    )
    assert instrument is not None
