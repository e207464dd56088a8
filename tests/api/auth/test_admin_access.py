"""Who may call the admin and internal ports: security officers on the one, the right services
on the other; everyone else is turned away before any work is done."""

from __future__ import annotations

import grpc

from tests.api.auth.harness import (
    AuthTestApp,
    operator_metadata,
    phone_contact,
    request_id,
    service_metadata,
)
from tests.api.auth.recovery_helpers import refused
from wallet.auth.v1 import account_admin_service_pb2 as admin_pb
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import types_pb2
from walletcore.identity import OperatorRole


async def test_only_security_officers_reach_the_admin_api(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()
    request = admin_pb.FreezeAccountRequest(
        request_id=request_id(), account_id=user.account_id, reason="r", ticket_ref="t"
    )

    anonymous = await refused(auth_app.admin.FreezeAccount(request))
    with_user_token = await refused(auth_app.admin.FreezeAccount(request, metadata=user.metadata))
    reviewer = await refused(
        auth_app.admin.FreezeAccount(request, metadata=operator_metadata(OperatorRole.KYC_REVIEWER))
    )
    a_service = await refused(
        auth_app.admin.FreezeAccount(request, metadata=service_metadata("binding"))
    )

    assert (anonymous.code, anonymous.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    # A user's access token is signed by auth, not by the identity provider operators come from.
    assert (with_user_token.code, with_user_token.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_INVALID",
    )
    assert (reviewer.code, reviewer.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")
    assert a_service.code == grpc.StatusCode.PERMISSION_DENIED
    # None of them got as far as freezing (and any wallet service may read the status).
    status = await auth_app.internal.GetAccountStatus(
        status_pb.GetAccountStatusRequest(account_id=user.account_id),
        metadata=service_metadata("refund"),
    )
    assert status.status == types_pb2.ACCOUNT_STATUS_ACTIVE


async def test_only_binding_may_change_a_contact(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()
    start = status_pb.StartContactVerificationRequest(
        request_id=request_id(),
        account_id=user.account_id,
        new_contact=phone_contact(auth_app.new_phone()),
        grant="not-checked-before-the-caller",
    )
    complete = status_pb.CompleteContactChangeRequest(
        request_id=request_id(), verification_id="v-1", code="123456"
    )

    refund_starts = await refused(
        auth_app.internal.StartContactVerification(start, metadata=service_metadata("refund"))
    )
    kyc_completes = await refused(
        auth_app.internal.CompleteContactChange(complete, metadata=service_metadata("kyc"))
    )
    officer_starts = await refused(
        auth_app.internal.StartContactVerification(start, metadata=operator_metadata())
    )

    assert (refund_starts.code, refund_starts.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_REQUIRED",
    )
    assert (kyc_completes.code, kyc_completes.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_REQUIRED",
    )
    assert officer_starts.code == grpc.StatusCode.PERMISSION_DENIED
