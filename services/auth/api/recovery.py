"""AuthService's recovery RPCs: credential reset, TOTP and recovery codes, step-up grants and
self-freeze. A mixin of `auth_service.AuthServicer`; it only translates protobuf to use-case
calls and back.

The reset and self-freeze RPCs are signed out and idempotent under the anonymous owner; the
others act for the signed-in caller the public port's verifier admitted. Every one of them
creates or moves something (a challenge, a factor, a grant, a freeze), so every one takes a
request_id, and answers that carry secrets (a TOTP secret, recovery codes, a grant) are
replayed from the encrypted idempotency record.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.auth.api.convert import (
    channel_from,
    code_from,
    contact_from,
    enum_from_proto,
    enum_to_proto,
    grant_from,
    id_from,
    idempotent,
    object_id_from,
    origin_of,
    password_from,
    second_factor_from,
    timestamp,
)
from services.auth.domain.proofs import FactorMethod
from services.auth.domain.stepup import StepUpPurpose
from services.auth.service import reset, self_freeze, stepup, totp
from services.auth.service.context import AuthContext
from services.auth.service.ports import AuthUnitOfWork, Transactions
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from walletcore.identity import current_caller

Context = grpc.aio.ServicerContext[Any, Any]


class RecoveryRpcs:
    def __init__(self, ctx: AuthContext, tx: Transactions) -> None:
        self.ctx = ctx
        self.tx = tx

    # -- credential reset (signed out) ---------------------------------------------------

    async def StartCredentialReset(
        self, request: pb.StartCredentialResetRequest, context: Context
    ) -> pb.StartCredentialResetResponse:
        identifier = contact_from(request.identifier, "identifier")
        channel = channel_from(request.channel)
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            started = await reset.start_credential_reset(
                uow, self.ctx, identifier=identifier, channel=channel, origin=origin
            )
            return pb.StartCredentialResetResponse(
                reset_id=started.challenge_id, expires_at=timestamp(started.expires_at)
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.StartCredentialResetResponse, work)

    async def CompleteCredentialReset(
        self, request: pb.CompleteCredentialResetRequest, context: Context
    ) -> pb.CompleteCredentialResetResponse:
        reset_id = id_from(request.reset_id, "reset_id")
        code = code_from(request.code)
        new_password = password_from(request.new_password, "new_password")
        second_factor = second_factor_from(request.second_factor)
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            await reset.complete_credential_reset(
                uow,
                self.ctx,
                reset_id=reset_id,
                code=code,
                new_password=new_password,
                second_factor=(
                    (second_factor.method, second_factor.code) if second_factor else None
                ),
                origin=origin,
            )
            return pb.CompleteCredentialResetResponse().SerializeToString()

        return await idempotent(self.tx, request, pb.CompleteCredentialResetResponse, work)

    # -- TOTP and recovery codes ---------------------------------------------------------

    async def StartTotpEnrollment(
        self, request: pb.StartTotpEnrollmentRequest, context: Context
    ) -> pb.StartTotpEnrollmentResponse:
        account_id = current_caller().subject

        async def work(uow: AuthUnitOfWork) -> bytes:
            started = await totp.start_totp_enrollment(uow, self.ctx, account_id=account_id)
            return pb.StartTotpEnrollmentResponse(
                enrollment_id=started.enrollment_id,
                otpauth_uri=started.otpauth_uri,
                secret=started.secret,
                expires_at=timestamp(started.expires_at),
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.StartTotpEnrollmentResponse, work)

    async def ConfirmTotpEnrollment(
        self, request: pb.ConfirmTotpEnrollmentRequest, context: Context
    ) -> pb.ConfirmTotpEnrollmentResponse:
        account_id = current_caller().subject
        enrollment_id = id_from(request.enrollment_id, "enrollment_id")
        code = code_from(request.code)
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            recovery_codes = await totp.confirm_totp_enrollment(
                uow,
                self.ctx,
                account_id=account_id,
                enrollment_id=enrollment_id,
                code=code,
                origin=origin,
            )
            return pb.ConfirmTotpEnrollmentResponse(
                recovery_codes=recovery_codes
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.ConfirmTotpEnrollmentResponse, work)

    async def DisableTotp(
        self, request: pb.DisableTotpRequest, context: Context
    ) -> pb.DisableTotpResponse:
        account_id = current_caller().subject
        grant = grant_from(request.grant)
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            await totp.disable_totp(
                uow, self.ctx, account_id=account_id, grant=grant, origin=origin
            )
            return pb.DisableTotpResponse().SerializeToString()

        return await idempotent(self.tx, request, pb.DisableTotpResponse, work)

    async def RegenerateRecoveryCodes(
        self, request: pb.RegenerateRecoveryCodesRequest, context: Context
    ) -> pb.RegenerateRecoveryCodesResponse:
        account_id = current_caller().subject
        grant = grant_from(request.grant)
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            recovery_codes = await totp.regenerate_recovery_codes(
                uow, self.ctx, account_id=account_id, grant=grant, origin=origin
            )
            return pb.RegenerateRecoveryCodesResponse(
                recovery_codes=recovery_codes
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.RegenerateRecoveryCodesResponse, work)

    # -- step-up -------------------------------------------------------------------------

    async def StartStepUp(
        self, request: pb.StartStepUpRequest, context: Context
    ) -> pb.StartStepUpResponse:
        account_id = current_caller().subject
        purpose = enum_from_proto(
            types_pb2.StepUpPurpose, request.purpose, StepUpPurpose, "purpose"
        )
        method = enum_from_proto(types_pb2.StepUpMethod, request.method, FactorMethod, "method")
        object_id = object_id_from(request.object_id)

        async def work(uow: AuthUnitOfWork) -> bytes:
            started = await stepup.start_step_up(
                uow,
                self.ctx,
                account_id=account_id,
                purpose=purpose,
                object_id=object_id,
                method=method,
            )
            return pb.StartStepUpResponse(
                challenge_id=started.challenge_id,
                expires_at=timestamp(started.expires_at),
                masked_destination=started.masked_destination,
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.StartStepUpResponse, work)

    async def CompleteStepUp(
        self, request: pb.CompleteStepUpRequest, context: Context
    ) -> pb.CompleteStepUpResponse:
        account_id = current_caller().subject
        challenge_id = id_from(request.challenge_id, "challenge_id")
        code = code_from(request.code)
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            grant = await stepup.complete_step_up(
                uow,
                self.ctx,
                account_id=account_id,
                challenge_id=challenge_id,
                code=code,
                origin=origin,
            )
            return pb.CompleteStepUpResponse(
                grant=types_pb2.Grant(
                    token=grant.token,
                    purpose=enum_to_proto(types_pb2.StepUpPurpose, grant.purpose),
                    object_id=grant.object_id or "",
                    expires_at=timestamp(grant.expires_at),
                )
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.CompleteStepUpResponse, work)

    # -- self-freeze (signed out) --------------------------------------------------------

    async def StartSelfFreeze(
        self, request: pb.StartSelfFreezeRequest, context: Context
    ) -> pb.StartSelfFreezeResponse:
        identifier = contact_from(request.identifier, "identifier")
        channel = channel_from(request.channel)
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            started = await self_freeze.start_self_freeze(
                uow, self.ctx, identifier=identifier, channel=channel, origin=origin
            )
            return pb.StartSelfFreezeResponse(
                challenge_id=started.challenge_id, expires_at=timestamp(started.expires_at)
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.StartSelfFreezeResponse, work)

    async def ConfirmSelfFreeze(
        self, request: pb.ConfirmSelfFreezeRequest, context: Context
    ) -> pb.ConfirmSelfFreezeResponse:
        challenge_id = id_from(request.challenge_id, "challenge_id")
        code = code_from(request.code)
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            confirmed = await self_freeze.confirm_self_freeze(
                uow, self.ctx, challenge_id=challenge_id, code=code, origin=origin
            )
            return pb.ConfirmSelfFreezeResponse(
                frozen_at=timestamp(confirmed.frozen_at)
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.ConfirmSelfFreezeResponse, work)
