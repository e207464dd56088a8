"""Every RPC of auth's three ports, including the ones the hand-written strategies of
test_access_fuzz.py and test_admin_generated_requests.py leave out, gets requests drawn from its
descriptor and bytes that decode as no message (tests/support/fuzz.py): never INTERNAL or
UNKNOWN, never a message naming the server's insides, and auth still serves afterwards."""

from __future__ import annotations

import pytest

from tests.api.auth.harness import AuthTestApp, operator_metadata, service_metadata
from tests.support.fuzz import Port, hammer
from wallet.auth.v1 import account_admin_service_pb2 as admin_pb
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import auth_service_pb2 as pb

pytestmark = pytest.mark.fuzz

PER_RPC = 4
RAW_PER_RPC = 3
CONTACT_CHANGE = ("StartContactVerification", "CompleteContactChange")


async def test_no_generated_request_to_any_rpc_is_a_server_error(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()
    binding = service_metadata("binding")
    ports = [
        Port(
            "public",
            auth_app.channels["public"],
            pb.DESCRIPTOR.services_by_name["AuthService"],
            user.metadata,
        ),
        Port(
            "admin",
            auth_app.channels["admin"],
            admin_pb.DESCRIPTOR.services_by_name["AccountAdminService"],
            operator_metadata(operator_id="officer-fuzz"),
        ),
        Port(
            "internal",
            auth_app.channels["internal"],
            status_pb.DESCRIPTOR.services_by_name["AccountStatusService"],
            service_metadata("refund"),
            metadata_for=dict.fromkeys(CONTACT_CHANGE, binding),
        ),
    ]

    sent = await hammer(ports, per_rpc=PER_RPC, raw_per_rpc=RAW_PER_RPC)

    print(f"auth: generated requests per port {sent}")
    status = await auth_app.internal.GetAccountStatus(
        status_pb.GetAccountStatusRequest(account_id=user.account_id), metadata=binding
    )
    assert status is not None
