"""AuthService's access RPCs: registration, sign-in, sessions, the account, contacts and the
security timeline. A mixin of `auth_service.AuthServicer`; it only translates protobuf to
use-case calls and back.

Signed-out RPCs (registration, sign-in, refresh) are idempotent under the anonymous owner;
the others act for the caller the public port's verifier admitted (its session is active and
its account not frozen, except that GetAccount and the lists also serve a frozen account).
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.auth.api.convert import (
    bearer_secret_from,
    client_context,
    code_from,
    contact_from,
    device_token_from,
    enum_to_proto,
    id_from,
    idempotent,
    mask_client_address,
    masked_contact,
    origin_of,
    page_of,
    page_response,
    password_from,
    second_factor_from,
    security_event_to_proto,
    security_event_types_from,
    timestamp,
)
from services.auth.domain.account import Account
from services.auth.domain.proofs import FactorMethod
from services.auth.domain.sessions import Session
from services.auth.service import contacts, registration, sessions, signin, timeline
from services.auth.service.context import AuthContext
from services.auth.service.ports import AuthUnitOfWork, Transactions
from services.auth.service.sessions import TokenPair
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from walletcore.errors import InvalidArgument, Unauthenticated
from walletcore.identity import current_caller

Context = grpc.aio.ServicerContext[Any, Any]


class AccessRpcs:
    def __init__(self, ctx: AuthContext, tx: Transactions) -> None:
        self.ctx = ctx
        self.tx = tx

    # -- signed out ----------------------------------------------------------------------

    async def StartRegistration(
        self, request: pb.StartRegistrationRequest, context: Context
    ) -> pb.StartRegistrationResponse:
        password = password_from(request.password, "password")
        contact = contact_from(request.contact, "contact")
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            started = await registration.start_registration(
                uow, self.ctx, password=password, contact=contact, origin=origin
            )
            return pb.StartRegistrationResponse(
                registration_id=started.registration_id,
                expires_at=timestamp(started.expires_at),
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.StartRegistrationResponse, work)

    async def CompleteRegistration(
        self, request: pb.CompleteRegistrationRequest, context: Context
    ) -> pb.CompleteRegistrationResponse:
        registration_id = id_from(request.registration_id, "registration_id")
        code = code_from(request.code)
        origin = origin_of(request.client)

        async def work(uow: AuthUnitOfWork) -> bytes:
            registered = await registration.complete_registration(
                uow, self.ctx, registration_id=registration_id, code=code, origin=origin
            )
            return pb.CompleteRegistrationResponse(
                account_id=registered.account_id, tokens=_token_pair(registered.tokens)
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.CompleteRegistrationResponse, work)

    async def SignIn(self, request: pb.SignInRequest, context: Context) -> pb.SignInResponse:
        identifier = contact_from(request.identifier, "identifier")
        password = password_from(request.password, "password")
        device_token = device_token_from(request.device_token)
        origin = origin_of(request.client)

        async def work(uow: AuthUnitOfWork) -> bytes:
            answer = await signin.sign_in(
                uow,
                self.ctx,
                identifier=identifier,
                password=password,
                origin=origin,
                device_token=device_token,
            )
            return _sign_in_response(answer).SerializeToString()

        return await idempotent(self.tx, request, pb.SignInResponse, work)

    async def CompleteSignIn(
        self, request: pb.CompleteSignInRequest, context: Context
    ) -> pb.CompleteSignInResponse:
        ticket = bearer_secret_from(request.ticket, "ticket")
        code = second_factor_from(request.second_factor)
        if code is None:
            raise InvalidArgument.field("second_factor", "needs a TOTP or a recovery code")
        is_totp = code.method is FactorMethod.TOTP
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            tokens = await signin.complete_sign_in(
                uow,
                self.ctx,
                ticket=ticket,
                totp_code=code.code if is_totp else None,
                recovery_code=None if is_totp else code.code,
                origin=origin,
            )
            return pb.CompleteSignInResponse(tokens=_token_pair(tokens)).SerializeToString()

        return await idempotent(self.tx, request, pb.CompleteSignInResponse, work)

    async def RefreshSession(
        self, request: pb.RefreshSessionRequest, context: Context
    ) -> pb.RefreshSessionResponse:
        refresh_token = bearer_secret_from(request.refresh_token, "refresh_token")
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            tokens = await sessions.refresh_session(
                uow, self.ctx, refresh_token=refresh_token, origin=origin
            )
            return pb.RefreshSessionResponse(tokens=_token_pair(tokens)).SerializeToString()

        return await idempotent(self.tx, request, pb.RefreshSessionResponse, work)

    # -- signed in -----------------------------------------------------------------------

    async def SignOut(self, request: pb.SignOutRequest, context: Context) -> pb.SignOutResponse:
        caller = current_caller()
        session_id = _session_of(caller.session_id)
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            await sessions.sign_out(
                uow, self.ctx, account_id=caller.subject, session_id=session_id, origin=origin
            )
            return pb.SignOutResponse().SerializeToString()

        return await idempotent(self.tx, request, pb.SignOutResponse, work)

    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsResponse:
        caller = current_caller()
        page = page_of(request.page)

        async def work(uow: AuthUnitOfWork) -> sessions.SessionPage:
            return await sessions.list_sessions(
                uow, self.ctx, account_id=caller.subject, page_size=page.size, page_token=page.token
            )

        listed = await self.tx.run(work)
        return pb.ListSessionsResponse(
            sessions=[_session(session, caller.session_id) for session in listed.sessions],
            page=page_response(listed.next_page_token),
        )

    async def RevokeSession(
        self, request: pb.RevokeSessionRequest, context: Context
    ) -> pb.RevokeSessionResponse:
        caller = current_caller()
        session_id = id_from(request.session_id, "session_id")
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            await sessions.revoke_session(
                uow,
                self.ctx,
                account_id=caller.subject,
                session_id=session_id,
                current_session_id=caller.session_id,
                origin=origin,
            )
            return pb.RevokeSessionResponse().SerializeToString()

        return await idempotent(self.tx, request, pb.RevokeSessionResponse, work)

    async def GetAccount(
        self, request: pb.GetAccountRequest, context: Context
    ) -> pb.GetAccountResponse:
        caller = current_caller()

        async def work(uow: AuthUnitOfWork) -> Account:
            return await contacts.get_account(uow, self.ctx, account_id=caller.subject)

        return pb.GetAccountResponse(account=_account(await self.tx.run(work)))

    async def AddContact(
        self, request: pb.AddContactRequest, context: Context
    ) -> pb.AddContactResponse:
        caller = current_caller()
        contact = contact_from(request.contact, "contact")

        async def work(uow: AuthUnitOfWork) -> bytes:
            started = await contacts.add_contact(
                uow, self.ctx, account_id=caller.subject, contact=contact
            )
            return pb.AddContactResponse(
                verification_id=started.verification_id,
                masked_destination=started.masked_destination,
                expires_at=timestamp(started.expires_at),
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.AddContactResponse, work)

    async def VerifyContact(
        self, request: pb.VerifyContactRequest, context: Context
    ) -> pb.VerifyContactResponse:
        caller = current_caller()
        verification_id = id_from(request.verification_id, "verification_id")
        code = code_from(request.code)
        origin = origin_of()

        async def work(uow: AuthUnitOfWork) -> bytes:
            verified = await contacts.verify_contact(
                uow,
                self.ctx,
                account_id=caller.subject,
                verification_id=verification_id,
                code=code,
                origin=origin,
            )
            return pb.VerifyContactResponse(contact=masked_contact(verified)).SerializeToString()

        return await idempotent(self.tx, request, pb.VerifyContactResponse, work)

    async def ListSecurityEvents(
        self, request: pb.ListSecurityEventsRequest, context: Context
    ) -> pb.ListSecurityEventsResponse:
        caller = current_caller()
        page = page_of(request.page)
        types = security_event_types_from(request.types)

        async def work(uow: AuthUnitOfWork) -> timeline.EventsPage:
            return await timeline.list_security_events(
                uow,
                self.ctx,
                account_id=caller.subject,
                page_size=page.size,
                page_token=page.token,
                types=types,
            )

        listed = await self.tx.run(work)
        return pb.ListSecurityEventsResponse(
            events=[
                security_event_to_proto(stored, officer_view=False) for stored in listed.events
            ],
            page=page_response(listed.next_page_token),
        )


def _session_of(session_id: str | None) -> str:
    # The public port admits only access tokens, which always name their session.
    if session_id is None:
        raise Unauthenticated("the token names no session", reason="TOKEN_INVALID")
    return session_id


def _token_pair(tokens: TokenPair) -> types_pb2.TokenPair:
    return types_pb2.TokenPair(
        access_token=tokens.access_token,
        access_token_expires_at=timestamp(tokens.access_token_expires_at),
        refresh_token=tokens.refresh_token,
        refresh_token_expires_at=timestamp(tokens.refresh_token_expires_at),
        session_id=tokens.session_id,
    )


def _sign_in_response(answer: signin.SignInAnswer) -> pb.SignInResponse:
    result = answer.outcome
    if isinstance(result, TokenPair):
        return pb.SignInResponse(tokens=_token_pair(result), device_token=answer.device_token)
    return pb.SignInResponse(
        device_token=answer.device_token,
        second_factor_required=types_pb2.PendingSecondFactor(
            ticket=result.ticket,
            expires_at=timestamp(result.expires_at),
            allowed_methods=[
                enum_to_proto(types_pb2.SecondFactorMethod, method)
                for method in result.allowed_methods
            ],
        ),
    )


def _session(session: Session, current_session_id: str | None) -> types_pb2.Session:
    return types_pb2.Session(
        session_id=session.id,
        device=client_context(session.origin.device),
        created_at=timestamp(session.created_at),
        last_used_at=timestamp(session.last_used_at),
        expires_at=timestamp(session.expires_at),
        client_address_masked=mask_client_address(session.origin.client_address),
        current=session.id == current_session_id,
    )


def _account(account: Account) -> pb.Account:
    recovery_codes = account.recovery_codes
    return pb.Account(
        account_id=account.id,
        status=enum_to_proto(types_pb2.AccountStatus, account.status),
        contacts=[masked_contact(contact) for contact in account.contacts],
        totp_enabled=account.totp_active,
        recovery_codes_remaining=(
            recovery_codes.remaining if account.totp_active and recovery_codes else 0
        ),
        created_at=timestamp(account.created_at),
        frozen_at=timestamp(account.frozen_at) if account.frozen_at is not None else None,
    )
