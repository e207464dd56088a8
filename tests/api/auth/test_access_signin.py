"""Signing in through real gRPC calls: passwords, enumeration safety, throttling, TOTP."""

from __future__ import annotations

import time

import grpc
import pyotp

from tests.api.auth.access_helpers import failure
from tests.api.auth.harness import (
    DEFAULT_PASSWORD,
    AuthTestApp,
    bearer,
    phone_contact,
    request_id,
)
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from wallet.common.v1 import contact_pb2

WRONG_PASSWORD = "not the password at all"


async def test_a_password_sign_in_opens_a_session_that_works(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()

    reply = await auth_app.sign_in(user.contact, user.password)

    assert reply.WhichOneof("result") == "tokens"
    listed = await auth_app.public.ListSessions(
        pb.ListSessionsRequest(), metadata=bearer(reply.tokens.access_token)
    )
    current = [s for s in listed.sessions if s.current]
    assert [s.session_id for s in current] == [reply.tokens.session_id]
    assert {s.session_id for s in listed.sessions} == {
        reply.tokens.session_id,
        user.tokens.session_id,
    }
    assert current[0].client_address_masked == "127.0.0.*"
    assert current[0].device.device_id == "api-test-device"


async def test_a_wrong_password_and_an_unknown_account_get_the_same_answer(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()

    wrong_password = await failure(auth_app.sign_in(user.contact, WRONG_PASSWORD))
    unknown = await failure(auth_app.sign_in(phone_contact(auth_app.new_phone())))

    assert (wrong_password.code, wrong_password.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "CREDENTIALS_INVALID",
    )
    assert (unknown.code, unknown.reason, unknown.message) == (
        wrong_password.code,
        wrong_password.reason,
        wrong_password.message,
    )


async def test_repeated_failures_are_throttled_even_for_the_right_password(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    for _ in range(3):
        await failure(auth_app.sign_in(user.contact, WRONG_PASSWORD))

    error = await failure(auth_app.sign_in(user.contact, user.password))

    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SIGN_IN_THROTTLED")
    assert error.retry_after is not None
    assert error.retry_after > 0
    assert [v.subject for v in error.quota_violations] == ["sign_in_failures"]


async def test_with_totp_a_code_computed_from_the_secret_completes_the_sign_in(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    enrollment = await auth_app.public.StartTotpEnrollment(
        pb.StartTotpEnrollmentRequest(request_id=request_id()), metadata=user.metadata
    )
    app = pyotp.TOTP(enrollment.secret)
    step = int(time.time()) // 30
    await auth_app.public.ConfirmTotpEnrollment(
        pb.ConfirmTotpEnrollmentRequest(
            request_id=request_id(),
            enrollment_id=enrollment.enrollment_id,
            code=app.generate_otp(step),
        ),
        metadata=user.metadata,
    )

    reply = await auth_app.sign_in(user.contact, user.password)
    pending = reply.second_factor_required
    complete = pb.CompleteSignInRequest(
        request_id=request_id(),
        ticket=pending.ticket,
        # The step after the one the enrolment used: each step is accepted once.
        second_factor=types_pb2.SecondFactor(totp_code=app.generate_otp(step + 1)),
    )
    completed = await auth_app.public.CompleteSignIn(complete)
    reused = await failure(
        auth_app.public.CompleteSignIn(
            pb.CompleteSignInRequest(
                request_id=request_id(), ticket=pending.ticket, second_factor=complete.second_factor
            )
        )
    )

    assert reply.WhichOneof("result") == "second_factor_required"
    assert list(pending.allowed_methods) == [
        types_pb2.SECOND_FACTOR_METHOD_TOTP,
        types_pb2.SECOND_FACTOR_METHOD_RECOVERY_CODE,
    ]
    account = await auth_app.public.GetAccount(
        pb.GetAccountRequest(), metadata=bearer(completed.tokens.access_token)
    )
    assert account.account.totp_enabled
    assert (reused.code, reused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TICKET_INVALID")


async def test_bad_sign_in_input_names_the_field(auth_app: AuthTestApp) -> None:
    cases = [
        (pb.SignInRequest(request_id=request_id(), password=DEFAULT_PASSWORD), "identifier"),
        (
            pb.SignInRequest(
                request_id=request_id(),
                identifier=contact_pb2.Contact(phone="12345"),
                password=DEFAULT_PASSWORD,
            ),
            "identifier.phone",
        ),
        (
            pb.SignInRequest(
                request_id=request_id(), identifier=phone_contact(auth_app.new_phone())
            ),
            "password",
        ),
        (
            pb.SignInRequest(
                identifier=phone_contact(auth_app.new_phone()), password=DEFAULT_PASSWORD
            ),
            "request_id",
        ),
    ]
    for request, field in cases:
        error = await failure(auth_app.public.SignIn(request))

        assert error.code == grpc.StatusCode.INVALID_ARGUMENT, field
        assert [v.field for v in error.field_violations] == [field]
