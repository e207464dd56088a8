"""Generated requests to every recovery RPC: whatever a client sends, the answer is a success or
a documented refusal, never INTERNAL or UNKNOWN (SPEC 7)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.api.auth.harness import AuthTestApp
from tests.api.auth.recovery_helpers import Holder, new_holder
from tests.support.fuzz import SERVER_FAULTS
from tests.support.profiles import answer_of, examples
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from wallet.common.v1 import contact_pb2

pytestmark = pytest.mark.fuzz


# Protobuf strings are UTF-8: surrogates cannot be sent at all. Everything else can.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=140)
ids = st.one_of(texts, st.uuids().map(lambda value: value.hex))
codes = st.one_of(texts, st.from_regex(r"\A[0-9]{6}\Z"), st.from_regex(r"\A[0-9A-Z-]{19}\Z"))
enum_numbers = st.integers(min_value=-1, max_value=8)
contacts = st.one_of(
    st.just(contact_pb2.Contact()),
    texts.map(lambda phone: contact_pb2.Contact(phone=phone)),
    st.from_regex(r"\A\+86138[0-9]{8}\Z").map(lambda phone: contact_pb2.Contact(phone=phone)),
    texts.map(lambda email: contact_pb2.Contact(email=email)),
    st.emails().map(lambda email: contact_pb2.Contact(email=email)),
)
second_factors = st.one_of(
    st.just(types_pb2.SecondFactor()),
    codes.map(lambda code: types_pb2.SecondFactor(totp_code=code)),
    codes.map(lambda code: types_pb2.SecondFactor(recovery_code=code)),
)

Call = Callable[[AuthTestApp, Holder], Awaitable[Any]]


def signed_out(rpc: str, request: Any) -> Call:
    return lambda app, holder: getattr(app.public, rpc)(request)


def signed_in(rpc: str, request: Any) -> Call:
    return lambda app, holder: getattr(app.public, rpc)(request, metadata=holder.metadata)


calls = st.one_of(
    st.builds(
        pb.StartCredentialResetRequest,
        request_id=ids,
        identifier=contacts,
        channel=enum_numbers,
    ).map(lambda request: signed_out("StartCredentialReset", request)),
    st.builds(
        pb.CompleteCredentialResetRequest,
        request_id=ids,
        reset_id=ids,
        code=codes,
        new_password=texts,
        second_factor=second_factors,
    ).map(lambda request: signed_out("CompleteCredentialReset", request)),
    st.builds(pb.StartTotpEnrollmentRequest, request_id=ids).map(
        lambda request: signed_in("StartTotpEnrollment", request)
    ),
    st.builds(pb.ConfirmTotpEnrollmentRequest, request_id=ids, enrollment_id=ids, code=codes).map(
        lambda request: signed_in("ConfirmTotpEnrollment", request)
    ),
    st.builds(pb.DisableTotpRequest, request_id=ids, grant=texts).map(
        lambda request: signed_in("DisableTotp", request)
    ),
    st.builds(pb.RegenerateRecoveryCodesRequest, request_id=ids, grant=texts).map(
        lambda request: signed_in("RegenerateRecoveryCodes", request)
    ),
    st.builds(
        pb.StartStepUpRequest,
        request_id=ids,
        purpose=enum_numbers,
        object_id=st.one_of(texts, st.just("card-1")),
        method=enum_numbers,
    ).map(lambda request: signed_in("StartStepUp", request)),
    st.builds(pb.CompleteStepUpRequest, request_id=ids, challenge_id=ids, code=codes).map(
        lambda request: signed_in("CompleteStepUp", request)
    ),
    st.builds(
        pb.StartSelfFreezeRequest, request_id=ids, identifier=contacts, channel=enum_numbers
    ).map(lambda request: signed_out("StartSelfFreeze", request)),
    st.builds(pb.ConfirmSelfFreezeRequest, request_id=ids, challenge_id=ids, code=codes).map(
        lambda request: signed_out("ConfirmSelfFreeze", request)
    ),
)


@pytest.fixture
async def holder(auth_app: AuthTestApp) -> Holder:
    return await new_holder(auth_app)


# The app and the holder serve every example: starting auth per example would take minutes.
@settings(
    max_examples=examples(40),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(call=calls)
# NUL in what is stored or looked up (pinned, so every run tries them).
@example(
    call=signed_in(
        "StartStepUp",
        pb.StartStepUpRequest(
            request_id="r",
            purpose=types_pb2.STEP_UP_PURPOSE_UNBIND_CARD,
            object_id="card\x00",
            method=types_pb2.STEP_UP_METHOD_SMS,
        ),
    )
)
@example(call=signed_in("DisableTotp", pb.DisableTotpRequest(request_id="r", grant="\x00.e30.e30")))
@example(
    call=signed_out(
        "ConfirmSelfFreeze",
        pb.ConfirmSelfFreezeRequest(request_id="r", challenge_id="\x00", code="\x00"),
    )
)
async def test_no_request_makes_a_recovery_rpc_fail_as_a_server_fault(
    auth_app: AuthTestApp, holder: Holder, call: Call
) -> None:
    code, details = await answer_of(call(auth_app, holder))
    assert code not in SERVER_FAULTS, details
