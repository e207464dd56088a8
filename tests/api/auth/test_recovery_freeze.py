"""Self-freeze through real gRPC calls: a code from the SMS webhook freezes the account; from
then on its old tokens, its password and its step-ups are refused with ACCOUNT_FROZEN; an
unknown account gets the same answer as a real one."""

from __future__ import annotations

from datetime import timedelta

import grpc

from tests.api.auth.harness import AuthTestApp, phone_contact, request_id, service_metadata
from tests.api.auth.recovery_helpers import (
    EMAIL,
    Holder,
    confirm_self_freeze,
    new_holder,
    refused,
    start_self_freeze,
)
from wallet.auth.v1 import account_status_service_pb2, types_pb2
from wallet.auth.v1 import auth_service_pb2 as pb

FROZEN = (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")


async def self_freeze(app: AuthTestApp, holder: Holder) -> pb.ConfirmSelfFreezeResponse:
    started = await start_self_freeze(app, holder.by_phone)
    return await confirm_self_freeze(app, started.challenge_id, await app.next_code(holder.phone))


async def test_after_a_self_freeze_old_tokens_passwords_and_step_ups_are_refused(
    auth_app: AuthTestApp,
) -> None:
    holder = await new_holder(auth_app)

    await self_freeze(auth_app, holder)

    old_token = await refused(
        auth_app.public.ListSessions(pb.ListSessionsRequest(), metadata=holder.metadata)
    )
    sign_in = await refused(auth_app.sign_in(holder.by_phone))
    step_up = await refused(
        auth_app.public.StartStepUp(
            pb.StartStepUpRequest(
                request_id=request_id(),
                purpose=types_pb2.STEP_UP_PURPOSE_UNBIND_CARD,
                object_id="card-7",
                method=types_pb2.STEP_UP_METHOD_SMS,
            ),
            metadata=holder.metadata,
        )
    )
    for refusal in (old_token, sign_in, step_up):
        assert (refusal.code, refusal.reason) == FROZEN


async def test_a_self_freeze_is_visible_to_other_services_and_told_to_every_contact(
    auth_app: AuthTestApp,
) -> None:
    holder = await new_holder(auth_app)

    confirmed = await self_freeze(auth_app, holder)

    status = await auth_app.internal.GetAccountStatus(
        account_status_service_pb2.GetAccountStatusRequest(account_id=holder.account_id),
        metadata=service_metadata("refund"),
    )
    assert status.status == types_pb2.ACCOUNT_STATUS_FROZEN
    assert status.frozen_at == confirmed.frozen_at
    for destination in (holder.phone, holder.email):
        assert "frozen" in (await auth_app.next_message_text(destination)).lower()


async def test_confirming_again_answers_with_the_first_freeze(auth_app: AuthTestApp) -> None:
    holder = await new_holder(auth_app)
    first = await self_freeze(auth_app, holder)
    assert "frozen" in (await auth_app.next_message_text(holder.email)).lower()
    started = await start_self_freeze(auth_app, holder.by_email, EMAIL)

    again = await confirm_self_freeze(
        auth_app, started.challenge_id, await auth_app.next_code(holder.email)
    )

    assert again.frozen_at == first.frozen_at


async def test_an_unknown_account_gets_the_same_answer(auth_app: AuthTestApp) -> None:
    holder = await new_holder(auth_app)

    unknown = await start_self_freeze(auth_app, phone_contact(auth_app.new_phone()))
    known = await start_self_freeze(auth_app, holder.by_phone)
    code = await auth_app.next_code(holder.phone)

    assert len(unknown.challenge_id) == len(known.challenge_id)
    gap = known.expires_at.ToDatetime() - unknown.expires_at.ToDatetime()
    assert timedelta(0) <= gap < timedelta(seconds=5)
    refusal = await refused(confirm_self_freeze(auth_app, unknown.challenge_id, code))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID")
