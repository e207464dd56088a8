"""Whatever an officer's tool or a calling service sends to the admin and internal ports, the
answer is a client error or a success, never INTERNAL or UNKNOWN (SPEC 7)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.api.auth.harness import AuthTestApp, Metadata, operator_metadata, service_metadata
from tests.support.fuzz import SERVER_FAULTS
from tests.support.profiles import answer_of, examples
from wallet.auth.v1 import account_admin_service_pb2 as admin_pb
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.common.v1 import contact_pb2, paging_pb2

pytestmark = pytest.mark.fuzz

OFFICER = operator_metadata(operator_id="officer-fuzz")
BINDING = service_metadata("binding")

texts = st.text(max_size=24)
long_texts = st.text(min_size=120, max_size=700)


def some_text(*known: str) -> st.SearchStrategy[str]:
    return st.one_of(texts, long_texts, st.sampled_from(known or ("",)))


timestamps = st.builds(
    Timestamp,
    seconds=st.integers(min_value=-(2**40), max_value=2**40),
    nanos=st.integers(min_value=-(2**31), max_value=2**31 - 1),
)
contacts = st.one_of(
    st.just(contact_pb2.Contact()),
    st.builds(contact_pb2.Contact, phone=some_text("+8613800138000", "+1 (415) 555-0100")),
    st.builds(contact_pb2.Contact, email=some_text("a@example.test", "@", "a@b")),
)
pages = st.builds(
    paging_pb2.PageRequest,
    page_size=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    page_token=some_text("AAAA", "not-base64!"),
)


def calls(account_id: str) -> st.SearchStrategy[tuple[str, str, Message]]:
    """(port, method, request) for every RPC of both ports, with ids that sometimes exist."""
    ids = some_text(account_id)
    note = {"request_id": texts, "account_id": ids, "reason": some_text(), "ticket_ref": texts}
    admin_calls = {
        "FreezeAccount": st.builds(admin_pb.FreezeAccountRequest, **note),
        "UnfreezeAccount": st.builds(admin_pb.UnfreezeAccountRequest, **note),
        "RevokeAccountSessions": st.builds(admin_pb.RevokeAccountSessionsRequest, **note),
        "BulkFreezeAccounts": st.builds(
            admin_pb.BulkFreezeAccountsRequest,
            request_id=texts,
            account_ids=st.lists(ids, max_size=4),
            reason=some_text(),
            ticket_ref=texts,
        ),
        "GetAccount": st.builds(admin_pb.AccountAdminServiceGetAccountRequest, account_id=ids),
        "FindAccount": st.builds(admin_pb.FindAccountRequest, contact=contacts),
        "ListSecurityEvents": st.builds(
            admin_pb.AccountAdminServiceListSecurityEventsRequest,
            account_id=ids,
            page=pages,
            types=st.lists(st.integers(min_value=-3, max_value=40), max_size=3),
        ),
        "VerifyAuditLog": st.just(admin_pb.VerifyAuditLogRequest()),
        "ExportAuditLog": st.builds(
            admin_pb.ExportAuditLogRequest,
            start_time=st.one_of(st.none(), timestamps),
            end_time=st.one_of(st.none(), timestamps),
            page=pages,
        ),
    }
    assisted = st.builds(
        status_pb.OperatorAssistance, operator_id=texts, reason=some_text(), ticket_ref=texts
    )
    internal_calls = {
        "GetAccountStatus": st.builds(
            status_pb.GetAccountStatusRequest, account_id=ids, session_id=some_text()
        ),
        "ListSigningKeys": st.just(status_pb.ListSigningKeysRequest()),
        "StartContactVerification": st.one_of(
            st.builds(
                status_pb.StartContactVerificationRequest,
                request_id=texts,
                account_id=ids,
                new_contact=contacts,
                grant=some_text("e30.e30.e30"),
            ),
            st.builds(
                status_pb.StartContactVerificationRequest,
                request_id=texts,
                account_id=ids,
                new_contact=contacts,
                operator_assisted=assisted,
            ),
        ),
        "CompleteContactChange": st.builds(
            status_pb.CompleteContactChangeRequest,
            request_id=texts,
            verification_id=some_text(),
            code=some_text("123456"),
        ),
    }
    return st.one_of(
        *(st.tuples(st.just("admin"), st.just(name), s) for name, s in admin_calls.items()),
        *(st.tuples(st.just("internal"), st.just(name), s) for name, s in internal_calls.items()),
    )


async def status_of(app: AuthTestApp, port: str, method: str, request: Message) -> grpc.StatusCode:
    stub: Any = app.admin if port == "admin" else app.internal
    metadata: Metadata = OFFICER if port == "admin" else BINDING
    code, _ = await answer_of(getattr(stub, method)(request, metadata=metadata, timeout=30))
    return code


def _freeze(account_id: str, *, reason: str = "fraud", ticket_ref: str = "SEC-1") -> Message:
    return admin_pb.FreezeAccountRequest(
        request_id="r", account_id=account_id, reason=reason, ticket_ref=ticket_ref
    )


async def test_no_generated_request_is_a_server_error(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()
    loop = asyncio.get_running_loop()

    # Hypothesis drives the calls from a worker thread; each call runs on the app's loop.
    @settings(
        max_examples=examples(120),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(call=calls(user.account_id))
    # Inputs that once broke these ports (pinned, so every run tries them): a ticket reference
    # longer than its 64-character column, and NUL in text that is stored.
    @example(call=("admin", "FreezeAccount", _freeze(user.account_id, ticket_ref="T" * 65)))
    @example(call=("admin", "FreezeAccount", _freeze(user.account_id, reason="fraud\x00")))
    @example(
        call=(
            "internal",
            "GetAccountStatus",
            status_pb.GetAccountStatusRequest(account_id=user.account_id, session_id="\x00"),
        )
    )
    @example(
        call=(
            "internal",
            "StartContactVerification",
            status_pb.StartContactVerificationRequest(
                request_id="r",
                account_id=user.account_id,
                new_contact=contact_pb2.Contact(phone="+8613800138000"),
                grant="\x00.e30.e30",
            ),
        )
    )
    def answers_without_a_server_fault(call: tuple[str, str, Message]) -> None:
        port, method, request = call
        running = asyncio.run_coroutine_threadsafe(status_of(auth_app, port, method, request), loop)
        code = running.result(timeout=60)
        assert code not in SERVER_FAULTS, f"{method} answered {code.name} to {request!r}"

    await asyncio.to_thread(answers_without_a_server_fault)
