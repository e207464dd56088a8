"""Changing the phone or the email through binding's public port, end to end: the grant from
the old contact, the code read from the SMS webhook or the SMTP server, the withdrawal hold."""

from __future__ import annotations

import grpc

from tests.api.auth.harness import email_contact, phone_contact, request_id
from tests.api.auth.recovery_helpers import Holder, refused
from tests.api.binding.conftest import REFUND, BindingTestApp
from wallet.auth.v1 import types_pb2 as auth_types
from wallet.binding.v1 import binding_query_service_pb2 as query_pb
from wallet.binding.v1 import binding_service_pb2 as pb
from wallet.common.v1 import contact_pb2


async def start(
    app: BindingTestApp, holder: Holder, new_contact: contact_pb2.Contact, grant: str
) -> pb.StartContactChangeResponse:
    return await app.public.StartContactChange(
        pb.StartContactChangeRequest(request_id=request_id(), new_contact=new_contact, grant=grant),
        metadata=holder.metadata,
    )


async def complete(
    app: BindingTestApp, holder: Holder, change_id: str, code: str
) -> pb.CompleteContactChangeResponse:
    return await app.public.CompleteContactChange(
        pb.CompleteContactChangeRequest(request_id=request_id(), change_id=change_id, code=code),
        metadata=holder.metadata,
    )


async def test_a_phone_change_end_to_end_starts_the_withdrawal_hold(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()
    new_phone = binding_app.auth.new_phone()
    before = await binding_app.public.GetWithdrawalHold(
        pb.GetWithdrawalHoldRequest(), metadata=holder.metadata
    )
    grant = await binding_app.grant(holder, auth_types.STEP_UP_PURPOSE_CHANGE_PHONE, new_phone)

    started = await start(binding_app, holder, phone_contact(new_phone), grant)
    completed = await complete(
        binding_app, holder, started.change_id, await binding_app.auth.next_code(new_phone)
    )
    for_refund = await binding_app.query.GetWithdrawalHold(
        query_pb.BindingQueryServiceGetWithdrawalHoldRequest(account_id=holder.account_id),
        metadata=REFUND,
    )

    assert (before.withdrawal_hold.in_window, before.withdrawal_hold.HasField("until")) == (
        False,
        False,
    )
    assert new_phone not in started.masked_destination
    assert completed.withdrawal_hold.in_window
    until = completed.withdrawal_hold.until.ToSeconds() - completed.changed_at.ToSeconds()
    assert until == 24 * 3600
    assert for_refund.withdrawal_hold == completed.withdrawal_hold
    # The old phone is told, and the new one signs in.
    assert await binding_app.auth.next_message_text(holder.phone)
    await binding_app.auth.sign_in(phone_contact(new_phone))


async def test_an_email_change_with_the_code_from_the_mail_server(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()
    new_email = binding_app.auth.new_email()
    grant = await binding_app.grant(
        holder, auth_types.STEP_UP_PURPOSE_CHANGE_EMAIL, new_email, by_email=True
    )

    started = await start(binding_app, holder, email_contact(new_email), grant)
    completed = await complete(
        binding_app, holder, started.change_id, await binding_app.auth.next_code(new_email)
    )

    assert completed.withdrawal_hold.in_window


async def test_a_contact_of_another_account_is_in_use(binding_app: BindingTestApp) -> None:
    holder, other = await binding_app.new_holder(), await binding_app.new_holder()
    grant = await binding_app.grant(holder, auth_types.STEP_UP_PURPOSE_CHANGE_PHONE, other.phone)

    error = await refused(start(binding_app, holder, phone_contact(other.phone), grant))

    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "CONTACT_IN_USE")


async def test_a_grant_for_another_new_phone_is_refused(binding_app: BindingTestApp) -> None:
    holder = await binding_app.new_holder()
    grant = await binding_app.grant(
        holder, auth_types.STEP_UP_PURPOSE_CHANGE_PHONE, binding_app.auth.new_phone()
    )

    error = await refused(
        start(binding_app, holder, phone_contact(binding_app.auth.new_phone()), grant)
    )

    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "GRANT_INVALID")
