"""BindingAdminService on binding's admin port: a security officer changes the phone or email
of a user who lost the old one (KYC approved, the code read from the new contact), every step
in binding's verifiable audit chain; nobody but a security officer gets in."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.api.auth.harness import email_contact, operator_metadata, phone_contact, request_id
from tests.api.auth.recovery_helpers import Holder, refused
from tests.api.binding.conftest import OFFICER, BindingTestApp
from wallet.binding.v1 import binding_admin_service_pb2 as pb
from wallet.common.v1 import contact_pb2
from walletcore.identity import OperatorRole

REASON = "lost phone; identity checked by video call against the KYC document"
TICKET = "SUP-1042"


def start_request(
    account_id: str, new_contact: contact_pb2.Contact, **fields: Any
) -> pb.StartAssistedContactChangeRequest:
    values: dict[str, Any] = {
        "request_id": request_id(),
        "account_id": account_id,
        "new_contact": new_contact,
        "reason": REASON,
        "ticket_ref": TICKET,
        **fields,
    }
    return pb.StartAssistedContactChangeRequest(**values)


async def audit_entries(app: BindingTestApp) -> list[Any]:
    export = await app.admin.ExportAuditLog(pb.ExportAuditLogRequest(), metadata=OFFICER)
    return list(export.entries)


async def assisted_change(
    app: BindingTestApp, account_id: str, new_contact: contact_pb2.Contact, destination: str
) -> tuple[pb.StartAssistedContactChangeResponse, pb.CompleteAssistedContactChangeResponse]:
    """Start, then complete with the code read from `destination` (the new contact)."""
    started = await app.admin.StartAssistedContactChange(
        start_request(account_id, new_contact), metadata=OFFICER
    )
    completed = await app.admin.CompleteAssistedContactChange(
        pb.CompleteAssistedContactChangeRequest(
            request_id=request_id(),
            change_id=started.change_id,
            code=await app.auth.next_code(destination),
        ),
        metadata=OFFICER,
    )
    return started, completed


async def test_an_officer_changes_a_lost_phone_and_it_is_audited(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()
    new_phone = binding_app.auth.new_phone()

    started, completed = await assisted_change(
        binding_app, holder.account_id, phone_contact(new_phone), new_phone
    )
    check = await binding_app.admin.VerifyAuditLog(pb.VerifyAuditLogRequest(), metadata=OFFICER)
    entries = await audit_entries(binding_app)

    assert new_phone not in started.masked_destination
    assert completed.withdrawal_hold.in_window
    assert completed.withdrawal_hold.until.ToSeconds() - completed.changed_at.ToSeconds() == (
        24 * 3600
    )
    # The user signs in with the new phone.
    await binding_app.auth.sign_in(phone_contact(new_phone))
    assert (check.verification.intact, check.verification.entries_checked) == (True, 2)
    assert [
        (e.action, e.operator_id, e.operator_role, e.target, e.details["ticket_ref"])
        for e in entries
    ] == [
        (
            "START_ASSISTED_CONTACT_CHANGE",
            "officer-7",
            "security_officer",
            f"account:{holder.account_id}",
            TICKET,
        ),
        (
            "COMPLETE_ASSISTED_CONTACT_CHANGE",
            "officer-7",
            "security_officer",
            f"account:{holder.account_id}",
            TICKET,
        ),
    ]
    assert entries[0].details["reason"] == REASON
    assert entries[0].details["change_id"] == started.change_id
    assert entries[-1].hash == check.verification.head_hash
    # Neither contact is in binding's audit trail.
    assert all(
        contact not in str(entry) for entry in entries for contact in (new_phone, holder.phone)
    )


async def test_an_assisted_email_change_with_the_code_from_the_mail_server(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()
    new_email = binding_app.auth.new_email()

    _, completed = await assisted_change(
        binding_app, holder.account_id, email_contact(new_email), new_email
    )

    assert completed.withdrawal_hold.in_window
    await binding_app.auth.sign_in(email_contact(new_email))


async def test_a_retried_start_sends_no_second_code_and_audits_once(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()
    request = start_request(holder.account_id, phone_contact(binding_app.auth.new_phone()))

    first = await binding_app.admin.StartAssistedContactChange(request, metadata=OFFICER)
    again = await binding_app.admin.StartAssistedContactChange(request, metadata=OFFICER)

    assert again == first
    assert [e.action for e in await audit_entries(binding_app)] == ["START_ASSISTED_CONTACT_CHANGE"]


async def test_an_account_without_approved_kyc_is_refused_and_nothing_is_audited(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder(kyc_name=None)

    error = await refused(
        binding_app.admin.StartAssistedContactChange(
            start_request(holder.account_id, phone_contact(binding_app.auth.new_phone())),
            metadata=OFFICER,
        )
    )

    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "KYC_NOT_APPROVED")
    assert await audit_entries(binding_app) == []


async def test_a_contact_of_another_account_is_in_use(binding_app: BindingTestApp) -> None:
    holder, other = await binding_app.new_holder(), await binding_app.new_holder()

    error = await refused(
        binding_app.admin.StartAssistedContactChange(
            start_request(holder.account_id, phone_contact(other.phone)), metadata=OFFICER
        )
    )

    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "CONTACT_IN_USE")


async def test_an_officer_cannot_complete_a_users_own_change(binding_app: BindingTestApp) -> None:
    error = await refused(
        binding_app.admin.CompleteAssistedContactChange(
            pb.CompleteAssistedContactChangeRequest(
                request_id=request_id(), change_id="0" * 32, code="123456"
            ),
            metadata=OFFICER,
        )
    )

    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "CHANGE_NOT_FOUND")


async def test_only_security_officers_get_in(binding_app: BindingTestApp) -> None:
    holder: Holder = await binding_app.new_holder()
    new_contact = phone_contact(binding_app.auth.new_phone())
    callers = {
        "reviewer": operator_metadata(OperatorRole.KYC_REVIEWER, "reviewer-1"),
        "user": holder.metadata,
        "anonymous": (),
    }
    expected = {
        "reviewer": grpc.StatusCode.PERMISSION_DENIED,
        "user": grpc.StatusCode.UNAUTHENTICATED,
        "anonymous": grpc.StatusCode.UNAUTHENTICATED,
    }

    answers = {}
    for name, metadata in callers.items():
        start = await refused(
            binding_app.admin.StartAssistedContactChange(
                start_request(holder.account_id, new_contact), metadata=metadata
            )
        )
        verify = await refused(
            binding_app.admin.VerifyAuditLog(pb.VerifyAuditLogRequest(), metadata=metadata)
        )
        export = await refused(
            binding_app.admin.ExportAuditLog(pb.ExportAuditLogRequest(), metadata=metadata)
        )
        answers[name] = {start.code, verify.code, export.code}

    assert answers == {name: {code} for name, code in expected.items()}
    assert await audit_entries(binding_app) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"request_id": ""}, "request_id"),
        ({"account_id": ""}, "account_id"),
        ({"account_id": "a\x00b"}, "account_id"),
        ({"new_contact": contact_pb2.Contact()}, "new_contact"),
        ({"new_contact": phone_contact("12345")}, "new_contact.phone"),
        ({"new_contact": email_contact("not-an-email")}, "new_contact.email"),
        ({"reason": ""}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": "lost\x00phone"}, "reason"),
        ({"ticket_ref": ""}, "ticket_ref"),
        ({"ticket_ref": "T" * 65}, "ticket_ref"),
    ],
)
async def test_bad_start_input_names_the_field(
    binding_app: BindingTestApp, fields: dict[str, Any], field: str
) -> None:
    holder = await binding_app.new_holder()
    request = start_request(holder.account_id, phone_contact(binding_app.auth.new_phone()))
    for name, value in fields.items():
        if isinstance(value, contact_pb2.Contact):
            request.new_contact.CopyFrom(value)
        else:
            setattr(request, name, value)

    error = await refused(binding_app.admin.StartAssistedContactChange(request, metadata=OFFICER))

    assert (error.code, [v.field for v in error.field_violations]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        [field],
    )
    assert await audit_entries(binding_app) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"change_id": ""}, "change_id"),
        ({"change_id": "x" * 129}, "change_id"),
        ({"code": "12345"}, "code"),
        ({"code": "12345a"}, "code"),
    ],
)
async def test_bad_complete_input_names_the_field(
    binding_app: BindingTestApp, fields: dict[str, str], field: str
) -> None:
    values = {"request_id": request_id(), "change_id": "0" * 32, "code": "123456", **fields}

    error = await refused(
        binding_app.admin.CompleteAssistedContactChange(
            pb.CompleteAssistedContactChangeRequest(**values), metadata=OFFICER
        )
    )

    assert (error.code, [v.field for v in error.field_violations]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        [field],
    )


async def test_an_export_range_ending_before_it_starts_is_invalid(
    binding_app: BindingTestApp,
) -> None:
    request = pb.ExportAuditLogRequest()
    request.start_time.FromSeconds(2_000_000_000)
    request.end_time.FromSeconds(1_000_000_000)

    error = await refused(binding_app.admin.ExportAuditLog(request, metadata=OFFICER))

    assert (error.code, [v.field for v in error.field_violations]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["end_time"],
    )
