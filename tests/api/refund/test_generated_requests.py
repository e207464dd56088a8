"""Whatever a holder's app, a refund operator's tool or the payments service sends to any RPC
of refund's three ports, the answer is a client error or a success, never INTERNAL or UNKNOWN
and never a message naming the server's insides; refund still serves afterwards (SPEC 7). The
requests are drawn from the descriptors (tests/support/fuzz.py)."""

from __future__ import annotations

import pytest

from tests.api.refund.conftest import OFFICER, OPERATOR, PAYMENTS, RefundTestApp
from tests.support.channels import port_channels
from tests.support.fuzz import Port, hammer
from wallet.refund.v1 import payment_ledger_service_pb2 as ledger_pb
from wallet.refund.v1 import refund_ops_service_pb2 as ops_pb
from wallet.refund.v1 import refund_service_pb2 as refund_pb

pytestmark = pytest.mark.fuzz

PER_RPC = 8
RAW_PER_RPC = 3


async def test_no_generated_request_to_any_rpc_is_a_server_error(refund_app: RefundTestApp) -> None:
    holder = await refund_app.new_holder()
    async with port_channels(refund_app.ports) as channels:
        ports = [
            Port(
                "public",
                channels["public"],
                refund_pb.DESCRIPTOR.services_by_name["RefundService"],
                holder.metadata,
            ),
            Port(
                "admin",
                channels["admin"],
                ops_pb.DESCRIPTOR.services_by_name["RefundOpsService"],
                OPERATOR,
                metadata_for={"VerifyAuditLog": OFFICER, "ExportAuditLog": OFFICER},
            ),
            Port(
                "internal",
                channels["internal"],
                ledger_pb.DESCRIPTOR.services_by_name["PaymentLedgerService"],
                PAYMENTS,
            ),
        ]

        sent = await hammer(ports, per_rpc=PER_RPC, raw_per_rpc=RAW_PER_RPC)

    print(f"refund: generated requests per port {sent}")
    payments = await refund_app.public.ListPayments(
        refund_pb.ListPaymentsRequest(), metadata=holder.metadata
    )
    assert payments is not None
