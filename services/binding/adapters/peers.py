"""Binding's gRPC clients of kyc and auth, over walletcore's internal channels.

Each implements a port of `services.binding.service.ports` on the generated stubs; the
channel (`walletcore.grpc.clients.InternalChannel`) attaches binding's service token and the
request id, applies the deadline, and turns a failed call into the remote's DomainError with
its ErrorInfo reason (KYC_NOT_APPROVED, CONTACT_IN_USE, CODE_INVALID, ...), or Unavailable
when the peer cannot be reached.

    kyc = KycStatusClient(clients.channel(kyc_target, reads=KYC_READS))
    contacts = AuthContactVerification(clients.channel(auth_target, reads=AUTH_READS))
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from services.binding.domain.contact_changes import ContactKind
from services.binding.service.ports import NewContact, OperatorAssistance, VerificationStarted
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import account_status_service_pb2_grpc
from wallet.common.v1 import contact_pb2
from wallet.kyc.v1 import kyc_status_service_pb2 as kyc_pb
from wallet.kyc.v1 import kyc_status_service_pb2_grpc, types_pb2
from walletcore.grpc.clients import InternalChannel

KYC_STATUS_SERVICE: Final = "wallet.kyc.v1.KycStatusService"
KYC_READS: Final = (
    (KYC_STATUS_SERVICE, "GetVerificationLevel"),
    (KYC_STATUS_SERVICE, "MatchVerifiedName"),
)
"""Kyc's reads, which the channel may retry on UNAVAILABLE (both only read)."""


class KycStatusClient:
    """The `KycStatus` port on kyc's internal `KycStatusService`."""

    def __init__(self, channel: InternalChannel) -> None:
        self._channel = channel
        self._stub = kyc_status_service_pb2_grpc.KycStatusServiceStub(channel.channel)

    async def match_verified_name(self, account_id: str, name: str) -> bool:
        response: kyc_pb.MatchVerifiedNameResponse = await self._channel.call(
            self._stub.MatchVerifiedName,
            kyc_pb.MatchVerifiedNameRequest(account_id=account_id, name=name),
        )
        return response.matches

    async def is_approved(self, account_id: str) -> bool:
        response: kyc_pb.GetVerificationLevelResponse = await self._channel.call(
            self._stub.GetVerificationLevel,
            kyc_pb.GetVerificationLevelRequest(account_id=account_id),
        )
        return response.level == types_pb2.VERIFICATION_LEVEL_APPROVED


def _contact_message(contact: NewContact) -> contact_pb2.Contact:
    if contact.kind is ContactKind.PHONE:
        return contact_pb2.Contact(phone=contact.value)
    return contact_pb2.Contact(email=contact.value)


class AuthContactVerification:
    """The `ContactVerification` port on auth's internal `StartContactVerification` /
    `CompleteContactChange`, which auth grants to binding's service identity alone. Both
    write, so the channel never retries them; binding's request ids make a caller's retry
    safe (auth answers a repeated id once)."""

    def __init__(self, channel: InternalChannel) -> None:
        self._channel = channel
        self._stub = account_status_service_pb2_grpc.AccountStatusServiceStub(channel.channel)

    async def start(
        self,
        *,
        request_id: str,
        account_id: str,
        new_contact: NewContact,
        grant: str | None = None,
        assistance: OperatorAssistance | None = None,
    ) -> VerificationStarted:
        if (grant is None) == (assistance is None):
            raise ValueError("exactly one of grant and assistance authorises a change")
        request = status_pb.StartContactVerificationRequest(
            request_id=request_id,
            account_id=account_id,
            new_contact=_contact_message(new_contact),
        )
        if grant is not None:
            request.grant = grant
        elif assistance is not None:
            request.operator_assisted.CopyFrom(
                status_pb.OperatorAssistance(
                    operator_id=assistance.operator_id,
                    reason=assistance.reason,
                    ticket_ref=assistance.ticket_ref,
                )
            )
        response: status_pb.StartContactVerificationResponse = await self._channel.call(
            self._stub.StartContactVerification, request
        )
        return VerificationStarted(
            verification_id=response.verification_id,
            masked_destination=response.masked_destination,
            expires_at=response.expires_at.ToDatetime(tzinfo=UTC),
        )

    async def complete(self, *, request_id: str, verification_id: str, code: str) -> datetime:
        response: status_pb.CompleteContactChangeResponse = await self._channel.call(
            self._stub.CompleteContactChange,
            status_pb.CompleteContactChangeRequest(
                request_id=request_id, verification_id=verification_id, code=code
            ),
        )
        return response.changed_at.ToDatetime(tzinfo=UTC)
