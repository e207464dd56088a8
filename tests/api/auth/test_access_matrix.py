"""Every RPC of auth's three ports that needs a caller refuses every credential it must not
accept (no token, garbage, expired, another key's, `alg: none`, a user's on the admin and
internal ports, an operator of the wrong role, a service the RPC does not admit) with
UNAUTHENTICATED or PERMISSION_DENIED and no reply, while the admitted caller gets past (the
matrix printed). The signed-out RPCs (registration, sign-in, refresh, reset, self-freeze)
admit anyone by design and are the generated-input tests' subject instead."""

from __future__ import annotations

import grpc.aio

from tests.api.auth.harness import AuthTestApp
from tests.support.access_matrix import Caller, Issuers, MatrixPort, run_matrix, summary
from wallet.auth.v1 import account_admin_service_pb2 as admin_pb
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import auth_service_pb2 as pb
from walletcore.identity import OperatorRole

SIGNED_OUT = frozenset(
    {
        "StartRegistration",
        "CompleteRegistration",
        "SignIn",
        "CompleteSignIn",
        "RefreshSession",
        "StartCredentialReset",
        "CompleteCredentialReset",
        "StartSelfFreeze",
        "ConfirmSelfFreeze",
    }
)
BINDING_ONLY = frozenset({"binding"})


async def test_every_rpc_refuses_every_credential_it_must_not_accept(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    signing_out = await auth_app.register()
    channels: dict[str, grpc.aio.Channel] = auth_app.channels
    ports = [
        MatrixPort(
            "public",
            channels["public"],
            pb.DESCRIPTOR.services_by_name["AuthService"],
            Caller.USER,
            "auth",
            user.metadata,
            controls={"SignOut": signing_out.metadata},
            signed_out=SIGNED_OUT,
        ),
        MatrixPort(
            "admin",
            channels["admin"],
            admin_pb.DESCRIPTOR.services_by_name["AccountAdminService"],
            Caller.OPERATOR,
            "auth",
            user.metadata,
            default=frozenset({OperatorRole.SECURITY_OFFICER.value}),
        ),
        MatrixPort(
            "internal",
            channels["internal"],
            status_pb.DESCRIPTOR.services_by_name["AccountStatusService"],
            Caller.SERVICE,
            "auth",
            user.metadata,
            default=frozenset({"kyc", "binding", "refund"}),
            per_rpc={
                "StartContactVerification": BINDING_ONLY,
                "CompleteContactChange": BINDING_ONLY,
            },
        ),
    ]

    counts = await run_matrix(ports, Issuers(auth_app.settings.issuer))

    print(summary("auth", counts))
    checked = sum(len(port.service.methods) - len(port.signed_out) for port in ports)
    assert counts["no token"] == checked
