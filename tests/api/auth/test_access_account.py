"""The account, a second contact and the own security timeline, through real gRPC calls."""

from __future__ import annotations

import grpc

from tests.api.auth.access_helpers import failure
from tests.api.auth.harness import AuthTestApp, email_contact, phone_contact, request_id
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from wallet.common.v1 import contact_pb2, paging_pb2

SIGN_IN = types_pb2.SECURITY_EVENT_TYPE_SIGN_IN
SIGN_IN_FAILED = types_pb2.SECURITY_EVENT_TYPE_SIGN_IN_FAILED
ACCOUNT_CREATED = types_pb2.SECURITY_EVENT_TYPE_ACCOUNT_CREATED
CONTACT_ADDED = types_pb2.SECURITY_EVENT_TYPE_CONTACT_ADDED


async def test_an_email_proved_with_its_code_becomes_the_second_and_last_contact(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    address = auth_app.new_email()

    added = await auth_app.public.AddContact(
        pb.AddContactRequest(request_id=request_id(), contact=email_contact(address)),
        metadata=user.metadata,
    )
    verified = await auth_app.public.VerifyContact(
        pb.VerifyContactRequest(
            request_id=request_id(),
            verification_id=added.verification_id,
            code=await auth_app.next_code(address),
        ),
        metadata=user.metadata,
    )

    assert added.masked_destination == verified.contact.masked_value
    assert address not in added.masked_destination
    account = await auth_app.public.GetAccount(pb.GetAccountRequest(), metadata=user.metadata)
    assert [c.kind for c in account.account.contacts] == [
        contact_pb2.CONTACT_KIND_PHONE,
        contact_pb2.CONTACT_KIND_EMAIL,
    ]
    # Both contacts hear of it, the old one first of all.
    notice = await auth_app.next_message_text(user.destination)
    assert address not in notice
    second_phone = await failure(
        auth_app.public.AddContact(
            pb.AddContactRequest(
                request_id=request_id(), contact=phone_contact(auth_app.new_phone())
            ),
            metadata=user.metadata,
        )
    )
    assert (second_phone.code, second_phone.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "CONTACT_KIND_ALREADY_VERIFIED",
    )


async def test_the_timeline_lists_the_own_events_newest_first_in_pages(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    other = await auth_app.register()
    await failure(auth_app.sign_in(user.contact, "not the password at all"))
    await auth_app.signed_in(user)
    await auth_app.signed_in(other)

    first = await auth_app.public.ListSecurityEvents(
        pb.ListSecurityEventsRequest(page=paging_pb2.PageRequest(page_size=2)),
        metadata=user.metadata,
    )
    rest = await auth_app.public.ListSecurityEvents(
        pb.ListSecurityEventsRequest(
            page=paging_pb2.PageRequest(page_size=2, page_token=first.page.next_page_token)
        ),
        metadata=user.metadata,
    )
    only_sign_ins = await auth_app.public.ListSecurityEvents(
        pb.ListSecurityEventsRequest(types=[SIGN_IN]), metadata=user.metadata
    )

    events = [*first.events, *rest.events]
    assert [e.type for e in events] == [SIGN_IN, SIGN_IN_FAILED, ACCOUNT_CREATED]
    assert rest.page.next_page_token == ""
    assert [e.type for e in only_sign_ins.events] == [SIGN_IN]
    assert {e.client_address for e in events} == {"127.0.0.*"}
    assert events[0].summary == "Signed in"
    assert events[0].details["session_id"] != other.tokens.session_id


async def test_a_page_token_of_nothing_issued_is_refused(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()

    error = await failure(
        auth_app.public.ListSecurityEvents(
            pb.ListSecurityEventsRequest(page=paging_pb2.PageRequest(page_token="made-up")),
            metadata=user.metadata,
        )
    )

    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")
    assert [v.field for v in error.field_violations] == ["page.page_token"]
