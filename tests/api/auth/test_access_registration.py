"""Registration through real gRPC calls, with codes read from the SMS webhook and SMTP."""

from __future__ import annotations

from typing import Any

import grpc

from services.auth.domain.contacts import Phone
from tests.api.auth.access_helpers import failure, seed_account
from tests.api.auth.harness import (
    DEFAULT_CLIENT,
    DEFAULT_PASSWORD,
    AuthTestApp,
    bearer,
    email_contact,
    phone_contact,
    request_id,
)
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from wallet.common.v1 import contact_pb2


async def test_the_code_from_the_message_and_no_other_registers_and_signs_in(
    auth_app: AuthTestApp,
) -> None:
    for destination, contact in (
        (phone := auth_app.new_phone(), phone_contact(phone)),
        (email := auth_app.new_email(), email_contact(email)),
    ):
        started = await auth_app.public.StartRegistration(
            pb.StartRegistrationRequest(
                request_id=request_id(), password=DEFAULT_PASSWORD, contact=contact
            )
        )
        code = await auth_app.next_code(destination)
        wrong = await failure(
            auth_app.public.CompleteRegistration(
                pb.CompleteRegistrationRequest(
                    request_id=request_id(),
                    registration_id=started.registration_id,
                    code=f"{(int(code) + 1) % 10**6:06d}",
                )
            )
        )

        completed = await auth_app.public.CompleteRegistration(
            pb.CompleteRegistrationRequest(
                request_id=request_id(),
                registration_id=started.registration_id,
                code=code,
                client=DEFAULT_CLIENT,
            )
        )

        assert (wrong.code, wrong.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID")
        assert wrong.metadata["attempts_left"] == "4"

        reply = await auth_app.public.GetAccount(
            pb.GetAccountRequest(), metadata=bearer(completed.tokens.access_token)
        )
        assert reply.account.account_id == completed.account_id
        assert reply.account.status == types_pb2.ACCOUNT_STATUS_ACTIVE
        [shown] = reply.account.contacts
        assert shown.kind == (
            contact_pb2.CONTACT_KIND_PHONE
            if destination == phone
            else contact_pb2.CONTACT_KIND_EMAIL
        )
        assert destination not in shown.masked_value


async def test_a_contact_in_use_gets_the_answer_a_fresh_one_gets(auth_app: AuthTestApp) -> None:
    taken = auth_app.new_phone()
    await seed_account(auth_app, Phone.parse(taken))
    start = auth_app.public.StartRegistration

    in_use = await start(
        pb.StartRegistrationRequest(
            request_id=request_id(), password=DEFAULT_PASSWORD, contact=phone_contact(taken)
        )
    )
    fresh = await start(
        pb.StartRegistrationRequest(
            request_id=request_id(),
            password=DEFAULT_PASSWORD,
            contact=phone_contact(auth_app.new_phone()),
        )
    )

    assert len(in_use.registration_id) == len(fresh.registration_id)
    lifetime = in_use.expires_at.ToSeconds() - fresh.expires_at.ToSeconds()
    assert abs(lifetime) <= 1
    assert [f.name for f, _ in in_use.ListFields()] == [f.name for f, _ in fresh.ListFields()]


BAD_INPUT: list[tuple[dict[str, Any], str, str]] = [
    ({"contact": phone_contact("+86 12")}, "contact.phone", "INVALID_ARGUMENT"),
    ({"contact": email_contact("not-an-address")}, "contact.email", "INVALID_ARGUMENT"),
    ({"contact": contact_pb2.Contact()}, "contact", "INVALID_ARGUMENT"),
    ({"password": "short"}, "password", "PASSWORD_REJECTED"),
    ({"password": "password1"}, "password", "PASSWORD_REJECTED"),
    ({"request_id": ""}, "request_id", "INVALID_ARGUMENT"),
]


async def test_bad_input_names_the_field(auth_app: AuthTestApp) -> None:
    for request_fields, field, reason in BAD_INPUT:
        fields: dict[str, Any] = {
            "request_id": request_id(),
            "password": DEFAULT_PASSWORD,
            "contact": phone_contact(auth_app.new_phone()),
            **request_fields,
        }

        error = await failure(
            auth_app.public.StartRegistration(pb.StartRegistrationRequest(**fields))
        )

        assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason), field
        assert [violation.field for violation in error.field_violations] == [field]
