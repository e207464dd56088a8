"""Every RPC of refund's three ports refuses every credential it must not accept (no token,
garbage and malformed tokens, expired, another key's, `alg: none`, a user's on the admin and
internal ports, an operator of the wrong role, a service that is not payments) with
UNAUTHENTICATED or PERMISSION_DENIED and no reply, while the admitted caller gets past."""

from __future__ import annotations

from tests.api.refund.conftest import RefundTestApp
from tests.support.access_matrix import Caller, Issuers, MatrixPort, run_matrix, summary
from tests.support.channels import port_channels
from wallet.refund.v1 import payment_ledger_service_pb2 as ledger_pb
from wallet.refund.v1 import refund_ops_service_pb2 as ops_pb
from wallet.refund.v1 import refund_service_pb2 as refund_pb
from walletcore.identity import OperatorRole

OFFICERS = frozenset({OperatorRole.SECURITY_OFFICER.value})


async def test_every_rpc_refuses_every_credential_it_must_not_accept(
    refund_app: RefundTestApp,
) -> None:
    holder = await refund_app.new_holder()
    async with port_channels(refund_app.ports) as channels:
        ports = [
            MatrixPort(
                "public",
                channels["public"],
                refund_pb.DESCRIPTOR.services_by_name["RefundService"],
                Caller.USER,
                "refund",
                holder.metadata,
            ),
            MatrixPort(
                "admin",
                channels["admin"],
                ops_pb.DESCRIPTOR.services_by_name["RefundOpsService"],
                Caller.OPERATOR,
                "refund",
                holder.metadata,
                default=frozenset({OperatorRole.REFUND_OPERATOR.value}),
                per_rpc={"VerifyAuditLog": OFFICERS, "ExportAuditLog": OFFICERS},
            ),
            MatrixPort(
                "internal",
                channels["internal"],
                ledger_pb.DESCRIPTOR.services_by_name["PaymentLedgerService"],
                Caller.SERVICE,
                "refund",
                holder.metadata,
                default=frozenset({"payments"}),
            ),
        ]

        counts = await run_matrix(ports, Issuers(refund_app.auth.settings.issuer))

    print(summary("refund", counts))
    assert counts["no token"] == sum(len(port.service.methods) for port in ports)
