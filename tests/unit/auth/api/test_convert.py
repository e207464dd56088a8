"""What every servicer relies on when it reads a request or shows a record back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.auth.api.convert import (
    channel_from,
    contact_from,
    device_from,
    security_event_to_proto,
)
from services.auth.domain.contacts import Email, Phone
from services.auth.domain.events import (
    Actor,
    Device,
    Origin,
    Platform,
    SecurityEvent,
    SecurityEventType,
)
from services.auth.domain.otp import OtpChannel
from services.auth.service.ports import StoredSecurityEvent
from wallet.auth.v1 import types_pb2
from wallet.common.v1 import client_pb2, contact_pb2, paging_pb2
from walletcore.errors import InvalidArgument
from walletcore.grpc.convert import (
    page_of,
    timestamp,
    to_datetime,
)

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def violated_fields(error: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [violation.field for violation in error.value.violations]


def test_a_contact_is_normalised_from_either_kind() -> None:
    phone = contact_from(contact_pb2.Contact(phone="+86 138-0013-8000"), "identifier")
    email = contact_from(contact_pb2.Contact(email="Alice@EXAMPLE.com"), "identifier")

    assert phone == Phone("+8613800138000")
    assert email == Email("Alice@example.com")


@pytest.mark.parametrize(
    ("contact", "field"),
    [
        (contact_pb2.Contact(), "contact"),
        (contact_pb2.Contact(phone="12345"), "contact.phone"),
        (contact_pb2.Contact(email="not an address"), "contact.email"),
    ],
)
def test_a_bad_contact_names_its_proto_path(contact: contact_pb2.Contact, field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        contact_from(contact, "contact")

    assert violated_fields(refused) == [field]


def test_a_device_is_read_from_the_client_context_and_checked() -> None:
    device = device_from(
        client_pb2.ClientContext(device_id="dev-1", platform=client_pb2.PLATFORM_WEB)
    )

    assert device == Device("dev-1", platform=Platform.WEB)
    assert device_from(client_pb2.ClientContext()) is None
    with pytest.raises(InvalidArgument) as refused:
        device_from(client_pb2.ClientContext(device_id="no spaces allowed"))
    assert violated_fields(refused) == ["client.device_id"]


@pytest.mark.parametrize(("asked", "size"), [(0, 50), (1, 1), (200, 200), (5000, 200)])
def test_page_sizes_follow_the_page_request_contract(asked: int, size: int) -> None:
    assert page_of(paging_pb2.PageRequest(page_size=asked)).size == size


def test_a_negative_page_size_is_refused_on_its_field() -> None:
    with pytest.raises(InvalidArgument) as refused:
        page_of(paging_pb2.PageRequest(page_size=-1))

    assert violated_fields(refused) == ["page.page_size"]


def test_an_unspecified_channel_is_refused_naming_the_choices() -> None:
    assert channel_from(types_pb2.DELIVERY_CHANNEL_EMAIL) is OtpChannel.EMAIL
    with pytest.raises(InvalidArgument) as refused:
        channel_from(types_pb2.DELIVERY_CHANNEL_UNSPECIFIED)

    assert violated_fields(refused) == ["channel"]


def test_timestamps_round_trip_in_utc() -> None:
    assert to_datetime(timestamp(NOW)) == NOW


def officer_freeze() -> StoredSecurityEvent:
    event = SecurityEvent(
        SecurityEventType.ACCOUNT_FROZEN,
        "account-1",
        NOW,
        Actor.security_officer("officer-7"),
        Origin("198.51.100.23", Device("dev-1")),
        {"reason": "stolen phone", "ticket_ref": "SEC-9"},
    )
    return StoredSecurityEvent("event-1", event)


def test_the_holder_sees_a_masked_address_and_no_officer_name() -> None:
    shown = security_event_to_proto(officer_freeze(), officer_view=False)

    assert shown.type == types_pb2.SECURITY_EVENT_TYPE_ACCOUNT_FROZEN
    assert shown.client_address == "198.51.100.*"
    assert (shown.actor.kind, shown.actor.id) == (types_pb2.ACTOR_KIND_OPERATOR, "")
    assert shown.summary == "Account frozen by a security officer"
    assert shown.device.device_id == "dev-1"


def test_a_security_officer_sees_the_address_and_the_officer() -> None:
    shown = security_event_to_proto(officer_freeze(), officer_view=True)

    assert shown.client_address == "198.51.100.23"
    assert shown.actor.id == "officer-7"
    assert dict(shown.details) == {"reason": "stolen phone", "ticket_ref": "SEC-9"}
