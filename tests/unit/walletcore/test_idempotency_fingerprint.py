"""Request fingerprints and idempotency keys: what counts as "the same request"."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from walletcore.errors import InvalidArgument
from walletcore.idempotency import IdempotencyKey, request_body_digest

_Field = descriptor_pb2.FieldDescriptorProto


def _message_classes() -> tuple[type[Message], type[Message]]:
    """A refund-like request with a request_id, and a message without one."""
    file = descriptor_pb2.FileDescriptorProto(
        name="walletcore_idempotency_test.proto", package="wallet.test", syntax="proto3"
    )
    request = file.message_type.add(name="RefundRequest")
    request.field.add(name="request_id", number=1, type=_Field.TYPE_STRING)
    request.field.add(name="amount_minor", number=2, type=_Field.TYPE_INT64)
    labels = request.nested_type.add(name="LabelsEntry")
    labels.options.map_entry = True
    labels.field.add(name="key", number=1, type=_Field.TYPE_STRING)
    labels.field.add(name="value", number=2, type=_Field.TYPE_STRING)
    request.field.add(
        name="labels",
        number=3,
        type=_Field.TYPE_MESSAGE,
        label=_Field.LABEL_REPEATED,
        type_name=".wallet.test.RefundRequest.LabelsEntry",
    )
    other = file.message_type.add(name="Ping")
    other.field.add(name="payload", number=1, type=_Field.TYPE_STRING)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("wallet.test.RefundRequest")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("wallet.test.Ping")),
    )


RefundRequest, Ping = _message_classes()


def refund_request(
    request_id: str = "req-1", amount_minor: int = 500, labels: dict[str, str] | None = None
) -> Message:
    return RefundRequest(request_id=request_id, amount_minor=amount_minor, labels=labels or {})


def test_the_request_id_does_not_change_the_fingerprint() -> None:
    assert request_body_digest(refund_request("req-1")) == request_body_digest(
        refund_request("req-2")
    )


def test_a_different_body_changes_the_fingerprint() -> None:
    assert request_body_digest(refund_request(amount_minor=500)) != request_body_digest(
        refund_request(amount_minor=501)
    )


def test_map_entries_hash_the_same_in_any_insertion_order() -> None:
    # Enough entries that plain (non-deterministic) serialization follows insertion order.
    labels = [(f"evidence-{number}", f"screenshot-{number}") for number in range(40)]
    forward = refund_request(labels=dict(labels))
    backward = refund_request(labels=dict(reversed(labels)))

    assert request_body_digest(forward) == request_body_digest(backward)


def test_fingerprinting_leaves_the_request_untouched() -> None:
    request = refund_request("req-1")

    request_body_digest(request)

    assert request == refund_request("req-1")


def test_a_message_without_a_request_id_cannot_be_fingerprinted() -> None:
    with pytest.raises(ValueError, match="request_id"):
        request_body_digest(Ping(payload="x"))


def test_the_key_of_a_request_carries_its_id_and_fingerprint() -> None:
    request = refund_request("req-7")

    key = IdempotencyKey.for_request("wallet.refund.v1.RefundService/RequestRefund", "a-1", request)

    assert key == IdempotencyKey(
        "wallet.refund.v1.RefundService/RequestRefund", "a-1", "req-7", request_body_digest(request)
    )


@pytest.mark.parametrize(
    ("request_id", "problem"),
    [
        ("", "is required"),
        ("r" * 129, "at most 128 characters"),
        ("req\n1", "printable"),
    ],
)
def test_a_missing_or_malformed_request_id_is_invalid(request_id: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as rejected:
        IdempotencyKey.for_request("scope", "a-1", refund_request(request_id))

    [violation] = rejected.value.violations
    assert violation.field == "request_id"
    assert problem in violation.description
