"""Every RPC of kyc's three ports refuses every credential it must not accept (no token,
garbage, expired, another key's, `alg: none`, a user's on the admin and internal ports, an
operator of the wrong role, a service that is not binding) with UNAUTHENTICATED or
PERMISSION_DENIED and no reply, while the admitted caller gets past (the matrix printed)."""

from __future__ import annotations

import grpc

from tests.api.auth.recovery_helpers import refused
from tests.api.kyc.harness import KycTestApp
from tests.support.access_matrix import Caller, Issuers, MatrixPort, run_matrix, summary
from tests.support.channels import port_channels
from wallet.kyc.v1 import kyc_review_service_pb2, kyc_service_pb2, kyc_status_service_pb2
from walletcore.identity import OperatorRole

REVIEWERS = frozenset({OperatorRole.KYC_REVIEWER.value})
OFFICERS = frozenset({OperatorRole.SECURITY_OFFICER.value})


async def test_every_rpc_refuses_every_credential_it_must_not_accept(kyc_app: KycTestApp) -> None:
    user = await kyc_app.auth.register()
    async with port_channels(kyc_app.ports) as channels:
        ports = [
            MatrixPort(
                "public",
                channels["public"],
                kyc_service_pb2.DESCRIPTOR.services_by_name["KycService"],
                Caller.USER,
                "kyc",
                user.metadata,
            ),
            MatrixPort(
                "admin",
                channels["admin"],
                kyc_review_service_pb2.DESCRIPTOR.services_by_name["KycReviewService"],
                Caller.OPERATOR,
                "kyc",
                user.metadata,
                default=REVIEWERS,
                per_rpc={"VerifyAuditLog": OFFICERS, "ExportAuditLog": OFFICERS},
            ),
            MatrixPort(
                "internal",
                channels["internal"],
                kyc_status_service_pb2.DESCRIPTOR.services_by_name["KycStatusService"],
                Caller.SERVICE,
                "kyc",
                user.metadata,
                default=frozenset({"binding"}),
            ),
        ]

        counts = await run_matrix(ports, Issuers(kyc_app.auth.settings.issuer))

    print(summary("kyc", counts))
    assert counts["no token"] == sum(len(port.service.methods) for port in ports)


async def test_another_users_token_never_reads_this_users_verification(
    kyc_app: KycTestApp,
) -> None:
    owner = await kyc_app.auth.register()
    other = await kyc_app.auth.register()
    submitted = await kyc_app.submit(owner.metadata)

    seen = await refused(
        kyc_app.public.GetVerification(
            kyc_service_pb2.GetVerificationRequest(), metadata=other.metadata
        )
    )
    own = await kyc_app.public.GetVerification(
        kyc_service_pb2.GetVerificationRequest(), metadata=owner.metadata
    )

    # The other user has no case of their own; the owner's is not theirs to see.
    assert seen.code == grpc.StatusCode.NOT_FOUND
    assert own.verification.verification_id == submitted.verification_id
