"""Binding changes a user's phone through auth's internal port: the user proves themselves on
the OLD phone for a CHANGE_PHONE grant bound to the new number (public StartStepUp and
CompleteStepUp), binding passes the grant on, auth sends a code to the NEW phone, and the code
completes the change."""

from __future__ import annotations

import grpc

from tests.api.auth.harness import AuthTestApp, phone_contact, request_id, service_metadata
from tests.api.auth.recovery_helpers import Holder, new_holder, refused, wrong_code
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import auth_service_pb2 as auth_pb
from wallet.auth.v1 import types_pb2

BINDING = service_metadata("binding")


async def change_phone_grant(app: AuthTestApp, holder: Holder, new_phone: str) -> str:
    """A CHANGE_PHONE grant for `new_phone`, proved with the SMS code sent to the old phone."""
    challenge = await app.public.StartStepUp(
        auth_pb.StartStepUpRequest(
            request_id=request_id(),
            purpose=types_pb2.STEP_UP_PURPOSE_CHANGE_PHONE,
            object_id=new_phone,
            method=types_pb2.STEP_UP_METHOD_SMS,
        ),
        metadata=holder.metadata,
    )
    completed = await app.public.CompleteStepUp(
        auth_pb.CompleteStepUpRequest(
            request_id=request_id(),
            challenge_id=challenge.challenge_id,
            code=await app.next_code(holder.phone),
        ),
        metadata=holder.metadata,
    )
    return completed.grant.token


def start_request(
    holder: Holder, new_phone: str, grant: str
) -> status_pb.StartContactVerificationRequest:
    return status_pb.StartContactVerificationRequest(
        request_id=request_id(),
        account_id=holder.account_id,
        new_contact=phone_contact(new_phone),
        grant=grant,
    )


async def test_binding_changes_the_phone_with_the_grant_and_the_new_phones_code(
    auth_app: AuthTestApp,
) -> None:
    holder = await new_holder(auth_app)
    new_phone = auth_app.new_phone()
    grant = await change_phone_grant(auth_app, holder, new_phone)

    started = await auth_app.internal.StartContactVerification(
        start_request(holder, new_phone, grant), metadata=BINDING
    )
    code = await auth_app.next_code(new_phone)
    wrong = await refused(
        auth_app.internal.CompleteContactChange(
            status_pb.CompleteContactChangeRequest(
                request_id=request_id(),
                verification_id=started.verification_id,
                code=wrong_code(code),
            ),
            metadata=BINDING,
        )
    )
    changed = await auth_app.internal.CompleteContactChange(
        status_pb.CompleteContactChangeRequest(
            request_id=request_id(), verification_id=started.verification_id, code=code
        ),
        metadata=BINDING,
    )

    assert (wrong.code, wrong.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID")
    assert changed.contact.masked_value == started.masked_destination
    assert changed.contact.masked_value.endswith(new_phone[-4:])
    assert "was changed" in await auth_app.next_message_text(holder.phone)
    assert (await auth_app.sign_in(phone_contact(new_phone))).tokens.access_token
    old_phone = await refused(auth_app.sign_in(holder.by_phone))
    assert old_phone.code == grpc.StatusCode.UNAUTHENTICATED


async def test_a_grant_changes_one_phone_once_and_no_change_takes_a_used_phone(
    auth_app: AuthTestApp,
) -> None:
    holder = await new_holder(auth_app)
    taken = await auth_app.register()
    new_phone, other_phone = auth_app.new_phone(), auth_app.new_phone()
    grant = await change_phone_grant(auth_app, holder, new_phone)

    another_number = await refused(
        auth_app.internal.StartContactVerification(
            start_request(holder, other_phone, grant), metadata=BINDING
        )
    )
    await auth_app.internal.StartContactVerification(
        start_request(holder, new_phone, grant), metadata=BINDING
    )
    reused = await refused(
        auth_app.internal.StartContactVerification(
            start_request(holder, new_phone, grant), metadata=BINDING
        )
    )
    # An officer-assisted change (binding checked KYC) is held to the same rule.
    in_use = await refused(
        auth_app.internal.StartContactVerification(
            status_pb.StartContactVerificationRequest(
                request_id=request_id(),
                account_id=holder.account_id,
                new_contact=phone_contact(taken.destination),
                operator_assisted=status_pb.OperatorAssistance(
                    operator_id="officer-7", reason="lost phone, KYC approved", ticket_ref="SUP-9"
                ),
            ),
            metadata=BINDING,
        )
    )

    assert (another_number.code, another_number.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "GRANT_INVALID",
    )
    assert (reused.code, reused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "GRANT_ALREADY_USED")
    assert (in_use.code, in_use.reason) == (grpc.StatusCode.ALREADY_EXISTS, "CONTACT_IN_USE")
