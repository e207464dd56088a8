"""The API tests' client side of auth: stubs for its three ports, credentials, and the flows
a user goes through, reading codes from the real SMTP server and SMS webhook the app sends to.

The fixtures that start auth live in this folder's conftest.py, which also re-exports these
helpers (`from tests.api.auth.conftest import AuthTestApp, bearer`).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

import grpc.aio

from services.auth.bootstrap import AuthApp
from services.auth.settings import AuthSettings
from tests.support.notify import SmsWebhookCatcher, SmtpCatcher, extract_code
from wallet.auth.v1 import (
    account_admin_service_pb2_grpc,
    account_status_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
    types_pb2,
)
from wallet.common.v1 import client_pb2, contact_pb2
from walletcore.clock import Clock
from walletcore.identity import OperatorRole
from walletcore.tokens import (
    DEVELOPMENT_IDENTITY_ISSUER,
    DEVELOPMENT_IDENTITY_KEYS_LABEL,
    SigningKeyRing,
    TokenIssuer,
)

DEFAULT_PASSWORD: Final = "correct horse battery staple"
DEFAULT_CLIENT: Final = client_pb2.ClientContext(
    device_id="api-test-device",
    device_name="API test phone",
    platform=client_pb2.PLATFORM_ANDROID,
    app_version="5.12.0",
)

Metadata = tuple[tuple[str, str], ...]

# Operator and service tokens come from the identity provider; in development its keys are
# the published development ring, which the app trusts by default.
_RING: Final = SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL)
_IDENTITIES: Final = TokenIssuer(DEVELOPMENT_IDENTITY_ISSUER, _RING)


def _identities(clock: Clock | None) -> TokenIssuer:
    return _IDENTITIES if clock is None else TokenIssuer(DEVELOPMENT_IDENTITY_ISSUER, _RING, clock)


def bearer(token: str) -> Metadata:
    """Call metadata presenting `token` (an access, operator or service token)."""
    return (("authorization", f"Bearer {token}"),)


def operator_metadata(
    role: OperatorRole | str = OperatorRole.SECURITY_OFFICER,
    operator_id: str = "officer-1",
    *,
    clock: Clock | None = None,
) -> Metadata:
    """An operator of `role`, as the identity provider would sign them in (on `clock`, the
    real one by default)."""
    token = _identities(clock).operator_token(
        operator_id=operator_id, role=role, ttl=timedelta(hours=1)
    )
    return bearer(token.token)


def service_metadata(
    service: str, audience: str = "auth", *, clock: Clock | None = None
) -> Metadata:
    """The service `service` calling `audience` (auth by default), its token issued on
    `clock` (the real one by default) for a server running on that clock."""
    token = _identities(clock).service_token(
        service=service, audience=audience, ttl=timedelta(hours=1)
    )
    return bearer(token.token)


def request_id() -> str:
    return uuid.uuid4().hex


def phone_contact(e164: str) -> contact_pb2.Contact:
    return contact_pb2.Contact(phone=e164)


def email_contact(address: str) -> contact_pb2.Contact:
    return contact_pb2.Contact(email=address)


@dataclass(frozen=True)
class Registered:
    """An account made through StartRegistration and CompleteRegistration."""

    account_id: str
    tokens: types_pb2.TokenPair
    password: str
    contact: contact_pb2.Contact
    """The contact it registered with, as requests carry it."""
    destination: str
    """That contact as messages are addressed: the E.164 number or the e-mail address."""

    @property
    def metadata(self) -> Metadata:
        """`bearer` of the first session's access token."""
        return bearer(self.tokens.access_token)


@dataclass
class AuthTestApp:
    """A running auth with clients for its three ports and the inboxes of its messages."""

    app: AuthApp
    ports: dict[str, int]
    public: auth_service_pb2_grpc.AuthServiceAsyncStub
    admin: account_admin_service_pb2_grpc.AccountAdminServiceAsyncStub
    internal: account_status_service_pb2_grpc.AccountStatusServiceAsyncStub
    channels: dict[str, grpc.aio.Channel]
    smtp: SmtpCatcher
    sms: SmsWebhookCatcher
    _used: set[str] = field(default_factory=set)

    @property
    def settings(self) -> AuthSettings:
        return self.app.settings

    def new_phone(self) -> str:
        """A mobile number no other account of this test has (China Mobile's 138 range)."""
        while True:
            number = f"+86138{secrets.randbelow(10**8):08d}"
            if number not in self._used:
                self._used.add(number)
                return number

    def new_email(self) -> str:
        return f"user-{uuid.uuid4().hex[:12]}@example.com"

    async def next_message_text(self, to: str) -> str:
        """The text of the next SMS (to an E.164 number) or e-mail (to an address) for `to`."""
        if to.startswith("+"):
            return (await self.sms.wait_for(to=to)).text
        return (await self.smtp.wait_for(to=to)).text

    async def next_code(self, to: str) -> str:
        """The 6-digit code of the next message to `to`, as the user would read it."""
        return extract_code(await self.next_message_text(to))

    async def register(
        self,
        *,
        phone: str | None = None,
        email: str | None = None,
        password: str = DEFAULT_PASSWORD,
        client: client_pb2.ClientContext = DEFAULT_CLIENT,
    ) -> Registered:
        """Registers with `phone` or `email` (a fresh phone when neither is given), reading the
        code from the SMS or e-mail that was sent."""
        if phone is not None and email is not None:
            raise ValueError("register with one contact; add the other with AddContact")
        if phone is None and email is None:
            phone = self.new_phone()
        destination = phone if phone is not None else str(email)
        contact = phone_contact(destination) if phone is not None else email_contact(destination)
        started = await self.public.StartRegistration(
            auth_service_pb2.StartRegistrationRequest(
                request_id=request_id(), password=password, contact=contact
            )
        )
        completed = await self.public.CompleteRegistration(
            auth_service_pb2.CompleteRegistrationRequest(
                request_id=request_id(),
                registration_id=started.registration_id,
                code=await self.next_code(destination),
                client=client,
            )
        )
        return Registered(
            account_id=completed.account_id,
            tokens=completed.tokens,
            password=password,
            contact=contact,
            destination=destination,
        )

    async def sign_in(
        self,
        identifier: contact_pb2.Contact,
        password: str = DEFAULT_PASSWORD,
        client: client_pb2.ClientContext = DEFAULT_CLIENT,
    ) -> auth_service_pb2.SignInResponse:
        return await self.public.SignIn(
            auth_service_pb2.SignInRequest(
                request_id=request_id(), identifier=identifier, password=password, client=client
            )
        )

    async def signed_in(self, user: Registered) -> types_pb2.TokenPair:
        """A new session's tokens for an account without TOTP."""
        reply = await self.sign_in(user.contact, user.password)
        if reply.WhichOneof("result") != "tokens":
            raise AssertionError("the account needs a second factor to sign in")
        return reply.tokens


StartAuth = Callable[..., AbstractAsyncContextManager[AuthTestApp]]
"""`start_auth(clock=..., rules=..., **settings)`: see the `start_auth` fixture."""
