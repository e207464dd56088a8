"""What the recovery API tests share: reading a refusal's status and details, account holders
with a verified phone and e-mail, and calling the recovery RPCs the way the app does.

Holders are stored through the app's own unit of work rather than registered: every
destination takes one code a minute (SPEC 7), and registering would spend the minute of the
very phone or address a test then sends a reset, step-up or self-freeze code to.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

import grpc
import pyotp

from services.auth.domain.account import Account
from services.auth.domain.contacts import Email, Phone, VerifiedContact
from services.auth.service.ports import AuthUnitOfWork
from tests.api.auth.harness import (
    DEFAULT_PASSWORD,
    AuthTestApp,
    Metadata,
    bearer,
    email_contact,
    phone_contact,
    request_id,
)
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from wallet.common.v1 import contact_pb2
from walletcore.grpc.status import RpcErrorDetails, error_details

SMS = types_pb2.DELIVERY_CHANNEL_SMS
EMAIL = types_pb2.DELIVERY_CHANNEL_EMAIL
NEW_PASSWORD = "a much better passphrase"
TOTP_STEP_SECONDS = 30


async def refused(call: Awaitable[object]) -> RpcErrorDetails:
    """The status and details of a call that must fail; fails the test when it succeeded."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error_details(error)
    raise AssertionError("the call succeeded")


@dataclass(frozen=True)
class Holder:
    """An account with a verified phone and e-mail, signed in once (no TOTP yet)."""

    account_id: str
    phone: str
    email: str
    tokens: types_pb2.TokenPair

    @property
    def by_phone(self) -> contact_pb2.Contact:
        return phone_contact(self.phone)

    @property
    def by_email(self) -> contact_pb2.Contact:
        return email_contact(self.email)

    @property
    def metadata(self) -> Metadata:
        return bearer(self.tokens.access_token)


async def new_holder(app: AuthTestApp) -> Holder:
    """A holder of DEFAULT_PASSWORD, a fresh phone and a fresh e-mail, with one session."""
    ctx, phone, email = app.app.ctx, app.new_phone(), app.new_email()
    now = ctx.clock()
    account = Account(
        id=ctx.new_id(),
        password_hash=await ctx.passwords.hash(DEFAULT_PASSWORD),
        contacts=[
            VerifiedContact(ctx.new_id(), Phone.parse(phone), now),
            VerifiedContact(ctx.new_id(), Email.parse(email), now),
        ],
        created_at=now,
    )

    async def store(uow: AuthUnitOfWork) -> None:
        await uow.accounts.add(account)

    await app.app.tx.run(store)
    signed_in = await app.sign_in(phone_contact(phone))
    # A first sign-in from a device is notified to every contact: read those notices now,
    # so the test's next message to each destination is its own.
    for destination in (phone, email):
        await app.next_message_text(destination)
    return Holder(account.id, phone, email, signed_in.tokens)


async def start_reset(
    app: AuthTestApp,
    identifier: contact_pb2.Contact,
    channel: types_pb2.DeliveryChannel.ValueType = SMS,
) -> pb.StartCredentialResetResponse:
    return await app.public.StartCredentialReset(
        pb.StartCredentialResetRequest(
            request_id=request_id(), identifier=identifier, channel=channel
        )
    )


async def start_self_freeze(
    app: AuthTestApp,
    identifier: contact_pb2.Contact,
    channel: types_pb2.DeliveryChannel.ValueType = SMS,
) -> pb.StartSelfFreezeResponse:
    return await app.public.StartSelfFreeze(
        pb.StartSelfFreezeRequest(request_id=request_id(), identifier=identifier, channel=channel)
    )


async def confirm_self_freeze(
    app: AuthTestApp, challenge_id: str, code: str
) -> pb.ConfirmSelfFreezeResponse:
    return await app.public.ConfirmSelfFreeze(
        pb.ConfirmSelfFreezeRequest(request_id=request_id(), challenge_id=challenge_id, code=code)
    )


async def complete_reset(
    app: AuthTestApp,
    reset_id: str,
    code: str,
    *,
    new_password: str = NEW_PASSWORD,
    second_factor: types_pb2.SecondFactor | None = None,
) -> pb.CompleteCredentialResetResponse:
    return await app.public.CompleteCredentialReset(
        pb.CompleteCredentialResetRequest(
            request_id=request_id(),
            reset_id=reset_id,
            code=code,
            new_password=new_password,
            second_factor=second_factor,
        )
    )


async def enrol_totp(app: AuthTestApp, user: Holder, now: float) -> tuple[str, list[str]]:
    """Enables TOTP with a first code computed by pyotp from the secret alone, at unix time
    `now`; returns the secret and the recovery codes."""
    started = await app.public.StartTotpEnrollment(
        pb.StartTotpEnrollmentRequest(request_id=request_id()), metadata=user.metadata
    )
    confirmed = await app.public.ConfirmTotpEnrollment(
        pb.ConfirmTotpEnrollmentRequest(
            request_id=request_id(),
            enrollment_id=started.enrollment_id,
            code=pyotp.TOTP(started.secret).at(now),
        ),
        metadata=user.metadata,
    )
    return started.secret, list(confirmed.recovery_codes)


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"
