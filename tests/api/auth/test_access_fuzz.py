"""Whatever a client puts in the fields of the access RPCs, the answer is never INTERNAL or
UNKNOWN (SPEC 7): random text (control characters, NUL, any script, too long), random numbers
and random enum values, on SQLite and on PostgreSQL.

SignOut is left out: its only field is the request id, and a successful call would end the
session every other signed-in RPC here uses.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.api.auth.harness import AuthTestApp, Metadata, Registered
from tests.support.fuzz import SERVER_FAULTS
from tests.support.profiles import answer_of, examples
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from wallet.common.v1 import client_pb2, contact_pb2, paging_pb2

pytestmark = pytest.mark.fuzz

CALL_TIMEOUT_SECONDS = 10.0

text = st.one_of(st.text(max_size=40), st.text(min_size=100, max_size=400))
int32 = st.integers(-(2**31), 2**31 - 1)
enum_value = st.integers(-3, 40)
contact = st.one_of(
    st.builds(contact_pb2.Contact),
    st.builds(contact_pb2.Contact, phone=text),
    st.builds(contact_pb2.Contact, email=text),
)
client = st.builds(
    client_pb2.ClientContext,
    device_id=text,
    device_name=text,
    platform=enum_value,
    app_version=text,
)
second_factor = st.one_of(
    st.builds(types_pb2.SecondFactor),
    st.builds(types_pb2.SecondFactor, totp_code=text),
    st.builds(types_pb2.SecondFactor, recovery_code=text),
)
page = st.builds(paging_pb2.PageRequest, page_size=int32, page_token=text)


@dataclass(frozen=True)
class Call:
    """One generated call; its repr (in a failure report) shows the request."""

    name: str
    request: Any
    signed_in: bool

    def __call__(self, app: AuthTestApp, metadata: Metadata) -> Awaitable[object]:
        method = getattr(app.public, self.name)
        result: Awaitable[object] = method(
            self.request, metadata=metadata if self.signed_in else (), timeout=CALL_TIMEOUT_SECONDS
        )
        return result


def rpc(name: str, request: Any, *, signed_in: bool) -> Call:
    return Call(name, request, signed_in)


signed_out_calls = st.one_of(
    st.builds(
        lambda r: rpc("StartRegistration", r, signed_in=False),
        st.builds(pb.StartRegistrationRequest, request_id=text, password=text, contact=contact),
    ),
    st.builds(
        lambda r: rpc("CompleteRegistration", r, signed_in=False),
        st.builds(
            pb.CompleteRegistrationRequest,
            request_id=text,
            registration_id=text,
            code=text,
            client=client,
        ),
    ),
    st.builds(
        lambda r: rpc("SignIn", r, signed_in=False),
        st.builds(
            pb.SignInRequest, request_id=text, identifier=contact, password=text, client=client
        ),
    ),
    st.builds(
        lambda r: rpc("CompleteSignIn", r, signed_in=False),
        st.builds(
            pb.CompleteSignInRequest, request_id=text, ticket=text, second_factor=second_factor
        ),
    ),
    st.builds(
        lambda r: rpc("RefreshSession", r, signed_in=False),
        st.builds(pb.RefreshSessionRequest, request_id=text, refresh_token=text),
    ),
)
signed_in_calls = st.one_of(
    st.builds(
        lambda r: rpc("ListSessions", r, signed_in=True),
        st.builds(pb.ListSessionsRequest, page=page),
    ),
    st.builds(
        lambda r: rpc("RevokeSession", r, signed_in=True),
        st.builds(pb.RevokeSessionRequest, request_id=text, session_id=text),
    ),
    st.builds(
        lambda r: rpc("GetAccount", r, signed_in=True),
        st.builds(pb.GetAccountRequest),
    ),
    st.builds(
        lambda r: rpc("AddContact", r, signed_in=True),
        st.builds(pb.AddContactRequest, request_id=text, contact=contact),
    ),
    st.builds(
        lambda r: rpc("VerifyContact", r, signed_in=True),
        st.builds(pb.VerifyContactRequest, request_id=text, verification_id=text, code=text),
    ),
    st.builds(
        lambda r: rpc("ListSecurityEvents", r, signed_in=True),
        st.builds(pb.ListSecurityEventsRequest, page=page, types=st.lists(enum_value, max_size=4)),
    ),
)


@pytest.fixture
async def user(auth_app: AuthTestApp) -> Registered:
    return await auth_app.register()


# One app per backend serves every example: the examples share it on purpose.
FUZZ_SETTINGS = settings(
    max_examples=examples(125),  # about 25 per RPC under the ci profile
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# Inputs that once broke a signed-out RPC (pinned, so every run tries them).
@FUZZ_SETTINGS
@given(call=signed_out_calls)
# A NUL in a refresh token reached PostgreSQL: INTERNAL (invalid byte sequence for "UTF8").
@example(
    call=rpc(
        "RefreshSession",
        pb.RefreshSessionRequest(request_id="r", refresh_token="\x00.0"),
        signed_in=False,
    )
)
# The same shape of token as a sign-in ticket, and a NUL in the request id.
@example(
    call=rpc(
        "CompleteSignIn",
        pb.CompleteSignInRequest(
            request_id="r", ticket="\x00.0", second_factor=types_pb2.SecondFactor(totp_code="0")
        ),
        signed_in=False,
    )
)
@example(
    call=rpc(
        "RefreshSession",
        pb.RefreshSessionRequest(request_id="\x00", refresh_token="a.b"),
        signed_in=False,
    )
)
# Letters in a phone number were read as keypad digits and the SMS went to another number.
@example(
    call=rpc(
        "StartRegistration",
        pb.StartRegistrationRequest(
            request_id="r",
            password="correct horse battery staple",
            contact=contact_pb2.Contact(phone="+86138abcd8000"),
        ),
        signed_in=False,
    )
)
async def test_signed_out_rpcs_never_fail_as_the_servers_fault(
    auth_app: AuthTestApp, call: Call
) -> None:
    code, details = await answer_of(call(auth_app, ()))

    assert code not in SERVER_FAULTS, details


@FUZZ_SETTINGS
@given(call=signed_in_calls)
@example(
    call=rpc(
        "RevokeSession",
        pb.RevokeSessionRequest(request_id="r", session_id="\x00"),
        signed_in=True,
    )
)
@example(
    call=rpc(
        "ListSessions",
        pb.ListSessionsRequest(page=paging_pb2.PageRequest(page_token="\x00")),
        signed_in=True,
    )
)
async def test_signed_in_rpcs_never_fail_as_the_servers_fault(
    auth_app: AuthTestApp, user: Registered, call: Call
) -> None:
    code, details = await answer_of(call(auth_app, user.metadata))

    assert code not in SERVER_FAULTS, details
