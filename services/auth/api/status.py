"""AccountStatusService: what other wallet services ask of auth, on its internal port.

The port's access policy decides which service may call what (the contact change is binding's
alone); the caller's subject is the calling service's name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc.aio
from google.protobuf.duration_pb2 import Duration

from services.auth.api.admin import masked_contact_to_proto
from services.auth.api.convert import (
    code_from,
    contact_from,
    enum_to_proto,
    grant_from,
    id_from,
    idempotent,
    operator_id_from,
    reason_from,
    ticket_ref_from,
    timestamp,
)
from services.auth.service import status
from services.auth.service.context import AuthContext
from services.auth.service.ports import AuthUnitOfWork, Transactions
from wallet.auth.v1 import account_status_service_pb2 as pb
from wallet.auth.v1 import account_status_service_pb2_grpc, types_pb2
from walletcore.errors import InvalidArgument
from walletcore.identity import current_caller

Context = grpc.aio.ServicerContext[Any, Any]
PublicJwks = Callable[[], Sequence[Mapping[str, str]]]


class AccountStatusServicer(account_status_service_pb2_grpc.AccountStatusServiceServicer):
    def __init__(self, ctx: AuthContext, tx: Transactions, public_jwks: PublicJwks) -> None:
        """`public_jwks` is the signing ring's `SigningKeyRing.public_jwks`."""
        self.ctx = ctx
        self.tx = tx
        self.public_jwks = public_jwks

    async def GetAccountStatus(
        self, request: pb.GetAccountStatusRequest, context: Context
    ) -> pb.GetAccountStatusResponse:
        account_id = id_from(request.account_id, "account_id")
        session_id = id_from(request.session_id, "session_id") if request.session_id else None

        async def work(uow: AuthUnitOfWork) -> status.AccountStatusView:
            return await status.get_account_status(
                uow, self.ctx, account_id=account_id, session_id=session_id
            )

        view = await self.tx.run(work)
        response = pb.GetAccountStatusResponse(
            status=enum_to_proto(types_pb2.AccountStatus, view.status),
            totp_enabled=view.totp_enabled,
        )
        if view.frozen_at is not None:
            response.frozen_at.CopyFrom(timestamp(view.frozen_at))
        if view.session_active is not None:
            response.session_active = view.session_active
        return response

    async def ListSigningKeys(
        self, request: pb.ListSigningKeysRequest, context: Context
    ) -> pb.ListSigningKeysResponse:
        cache_ttl = Duration()
        cache_ttl.FromTimedelta(status.SIGNING_KEYS_CACHE_TTL)
        return pb.ListSigningKeysResponse(
            keys=[
                types_pb2.SigningKey(
                    kid=key.kid,
                    alg=key.alg,
                    public_jwk=json.dumps(dict(key.public_jwk), sort_keys=True),
                    current=key.current,
                )
                for key in status.published_signing_keys(self.public_jwks())
            ],
            cache_ttl=cache_ttl,
        )

    async def StartContactVerification(
        self, request: pb.StartContactVerificationRequest, context: Context
    ) -> pb.StartContactVerificationResponse:
        account_id = id_from(request.account_id, "account_id")
        new_contact = contact_from(request.new_contact, "new_contact")
        authorization = _authorization(request)

        async def work(uow: AuthUnitOfWork) -> bytes:
            started = await status.start_contact_verification(
                uow,
                self.ctx,
                service=current_caller().subject,
                account_id=account_id,
                new_contact=new_contact,
                authorization=authorization,
            )
            return pb.StartContactVerificationResponse(
                verification_id=started.verification_id,
                masked_destination=started.masked_destination,
                expires_at=timestamp(started.expires_at),
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.StartContactVerificationResponse, work)

    async def CompleteContactChange(
        self, request: pb.CompleteContactChangeRequest, context: Context
    ) -> pb.CompleteContactChangeResponse:
        verification_id = id_from(request.verification_id, "verification_id")
        code = code_from(request.code)

        async def work(uow: AuthUnitOfWork) -> bytes:
            change = await status.complete_contact_change(
                uow,
                self.ctx,
                service=current_caller().subject,
                verification_id=verification_id,
                code=code,
            )
            return pb.CompleteContactChangeResponse(
                changed_at=timestamp(change.changed_at),
                contact=masked_contact_to_proto(change.contact),
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.CompleteContactChangeResponse, work)


def _authorization(request: pb.StartContactVerificationRequest) -> status.ChangeAuthorization:
    which = request.WhichOneof("authorization")
    if which == "grant":
        return status.GrantAuthorization(grant_from(request.grant))
    if which == "operator_assisted":
        assisted = request.operator_assisted
        return status.OperatorAssistance(
            operator_id=operator_id_from(assisted.operator_id, "operator_assisted.operator_id"),
            reason=reason_from(assisted.reason, "operator_assisted.reason"),
            ticket_ref=ticket_ref_from(assisted.ticket_ref, "operator_assisted.ticket_ref"),
        )
    raise InvalidArgument.field("grant", "give the user's grant or operator_assisted")
