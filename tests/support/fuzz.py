"""Generated bad input for any gRPC port, built from its service descriptor.

`messages(descriptor)` draws a request message of any type from its descriptor: every field
gets hostile values of its kind (empty, oversized, control characters and NUL inside strings,
invalid UTF-8 in bytes, huge repeated fields, boundary numbers, unknown enum numbers, nested
junk several levels deep), so an RPC added later is covered without a line here;
`spoiled(factory)` takes a well-formed request and spoils one or two fields at any depth.
`raw_payloads()` draws bytes that are not a valid encoding of any message; `raw_call` sends
them past the client's serializer. `assert_no_server_fault` is what every answer must satisfy.

`hammer(ports, ...)` runs both against every RPC of every port given and checks the server
still serves afterwards; a service's test (refund's too, when it lands) only lists its ports,
the credentials each needs and, optionally, well-formed requests to spoil:

    service = kyc_service_pb2.DESCRIPTOR.services_by_name["KycService"]
    await hammer([Port("public", channel, service, user.metadata)], per_rpc=12, raw_per_rpc=4)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
import grpc.aio
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.profiles import answer_of, examples

Metadata = tuple[tuple[str, str], ...]

SERVER_FAULTS: Final = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
CALL_TIMEOUT_SECONDS: Final = 30.0

# What a message leaking the server's insides looks like: a traceback, a source location, or
# the name of an exception class (ValueError, IntegrityError, DataError, ...).
_INTERNALS: Final = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|\b[A-Z]\w*(?:Error|Exception)\b"
    r"|\b(?:sqlalchemy|asyncpg|aiosqlite|psycopg|redis\.exceptions)\b"
)

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_RANGES: Final = {
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}

_hostile_text = st.one_of(
    st.just(""),
    st.text(max_size=24),
    st.text(min_size=300, max_size=1_500),
    st.text(alphabet=st.characters(codec="utf-8", max_codepoint=0x1F), max_size=12),
    st.builds(
        lambda head, bad, tail: head + bad + tail,
        st.text(max_size=8),
        st.sampled_from(["\x00", "\x1b[2J", "\u2028", "\u202e", "\ufeff", "\r\n", "%00", "'--"]),
        st.text(max_size=8),
    ),
    st.just("a" * 70_000),
)
_hostile_bytes = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    st.sampled_from([b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\x80", b"\x00" * 16, b"\x80abc"]),
    st.binary(min_size=2_000, max_size=4_000),
    st.just(b"\xff\xd8\xff" + b"\x00" * 3_000_000),
)


def _number(kind: int) -> st.SearchStrategy[int]:
    low, high = _RANGES[kind]
    edges = {low, low + 1, high - 1, high} | {v for v in (-1, 0, 1, 2, 1_000) if low <= v <= high}
    return st.one_of(st.sampled_from(sorted(edges)), st.integers(low, high))


def _scalar(descriptor: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = descriptor.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _hostile_text
    if kind == FieldDescriptor.TYPE_BYTES:
        return _hostile_bytes
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if descriptor.enum_type is not None:
        known = [value.number for value in descriptor.enum_type.values]
        # Open enums carry any int32: the unknown numbers are what a newer client could send.
        return st.one_of(
            st.sampled_from(known),
            st.integers(-3, max(known) + 5),
            _number(FieldDescriptor.TYPE_INT32),
        )
    return _number(kind)


def _field_values(
    descriptor: FieldDescriptor, depth: int, known: Mapping[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    if descriptor.message_type is not None:
        element: st.SearchStrategy[Any] = messages(descriptor.message_type, depth - 1, known)
    else:
        element = _scalar(descriptor)
        if descriptor.name in known:
            element = st.one_of(known[descriptor.name], element)
    if not descriptor.is_repeated:
        return element
    if descriptor.message_type is not None:
        return st.lists(element, max_size=4)
    # A huge list of small values costs the client little and tests the server's bounds.
    small = st.text(max_size=4) if descriptor.type == FieldDescriptor.TYPE_STRING else element
    if descriptor.type == FieldDescriptor.TYPE_BYTES:
        small = st.binary(max_size=4)
    return st.one_of(st.lists(element, max_size=6), st.lists(small, min_size=1_000, max_size=1_200))


def messages(
    descriptor: Descriptor,
    depth: int = 3,
    known: Mapping[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[Message]:
    """Messages of `descriptor`'s type with any subset of fields set to hostile values.
    `known` maps field names to strategies of values the server knows (a real account id), so
    some requests get past the lookups to the deeper code; `depth` bounds nested messages."""
    known = known or {}
    message_class = GetMessageClass(descriptor)
    if depth <= 0:
        return st.just(message_class())
    fields = {
        item.name: _field_values(item, depth, known)
        for item in descriptor.fields
        if item.message_type is None or not item.message_type.GetOptions().map_entry
    }
    oneof_members = [[member.name for member in oneof.fields] for oneof in descriptor.oneofs]

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        chosen = set(draw(st.sets(st.sampled_from(sorted(fields)))) if fields else ())
        for members in oneof_members:
            keep = draw(st.sampled_from([None, *members]))
            chosen -= {member for member in members if member != keep}
        message = message_class()
        for name in sorted(chosen):
            _assign(message, descriptor.fields_by_name[name], draw(fields[name]))
        return message

    return build()


def spoiled(
    well_formed: Callable[[], Message],
    known: Mapping[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[Message]:
    """A well-formed request (fresh from `well_formed` each time) with one or two of its fields,
    at any depth, replaced by hostile values: such a request passes the checks of every other
    field and reaches the code behind them."""
    known = known or {}

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = well_formed()
        for _ in range(draw(st.integers(1, 2))):
            _spoil_one(draw, message, known)
        return message

    return build()


def _spoil_one(draw: st.DrawFn, message: Message, known: Mapping[str, Any]) -> None:
    field_descriptor: Any = draw(st.sampled_from(list(message.DESCRIPTOR.fields)))
    nested = bool(
        field_descriptor.message_type is not None
        and not field_descriptor.is_repeated
        and message.HasField(field_descriptor.name)
        and field_descriptor.message_type.fields
    )
    if nested and draw(st.booleans()):
        _spoil_one(draw, getattr(message, field_descriptor.name), known)
        return
    message.ClearField(field_descriptor.name)
    _assign(message, field_descriptor, draw(_field_values(field_descriptor, 2, known)))


def _assign(message: Message, descriptor: FieldDescriptor, value: Any) -> None:
    target = getattr(message, descriptor.name)
    if descriptor.is_repeated and descriptor.message_type is not None:
        for item in value:
            target.add().CopyFrom(item)
    elif descriptor.is_repeated:
        target.extend(value)
    elif descriptor.message_type is not None:
        target.CopyFrom(value)
    else:
        setattr(message, descriptor.name, value)


# Bytes a protobuf parser must refuse: a field with wire type 7, a truncated varint, a length
# past the end, a string field holding invalid UTF-8, a group that never ends, a varint of 11
# bytes. Random bytes are often valid messages with unknown fields; these never are.
UNDECODABLE: Final = (
    b"\x0f",
    b"\x08\xff\xff",
    b"\x0a\xff\xff\xff\xff\x0f",
    b"\x0a\x02\xff\xfe",
    b"\x0a\x03\xed\xa0\x80",
    b"\x0b",
    b"\x08" + b"\xff" * 10 + b"\x01",
    b"\x00",
)


def raw_payloads() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(UNDECODABLE),
        st.builds(
            lambda bad, tail: bad + tail, st.sampled_from(UNDECODABLE), st.binary(max_size=32)
        ),
        st.binary(max_size=256),
    )


def _identity(data: bytes) -> bytes:
    return data


def raw_call(channel: grpc.aio.Channel, path: str, payload: bytes, metadata: Metadata) -> Any:
    """`payload` sent as the request of the RPC at `path`, bypassing the client's encoder."""
    call = channel.unary_unary(path, request_serializer=_identity, response_deserializer=_identity)
    return call(payload, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)


def assert_no_server_fault(code: grpc.StatusCode, details: str, what: str) -> None:
    """A client error or a success, and a message that shows nothing of the server's insides."""
    assert code not in SERVER_FAULTS, f"{what} answered {code.name}: {details!r}"
    leaked = _INTERNALS.search(details)
    assert leaked is None, f"{what} answered {code.name} naming {leaked.group(0)!r}: {details!r}"


def method_path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


@dataclass(frozen=True)
class Port:
    """One served gRPC service and the caller its requests come from.

    `metadata` are the credentials every RPC takes unless `metadata_for` names the method (an
    admin port whose RPCs need different roles); `known` seeds fields with real values."""

    name: str
    channel: grpc.aio.Channel
    service: ServiceDescriptor
    metadata: Metadata
    metadata_for: Mapping[str, Metadata] = field(default_factory=dict)
    known: Mapping[str, st.SearchStrategy[Any]] = field(default_factory=dict)
    well_formed: Mapping[str, Callable[[], Message]] = field(default_factory=dict)
    """Per RPC, a factory of a request that would succeed: half the draws spoil one."""

    def credentials(self, method: str) -> Metadata:
        return self.metadata_for.get(method, self.metadata)


async def hammer(
    ports: Sequence[Port],
    *,
    per_rpc: int,
    raw_per_rpc: int,
) -> dict[str, int]:
    """Sends `examples(per_rpc)` generated requests and `examples(raw_per_rpc)` undecodable
    payloads to every RPC of every port, asserting each answer has no server fault, then that
    every port still answers its health check. Returns how many requests each port got. An
    input that once broke an RPC is pinned in a test of its own (as auth's @example cases)."""
    sent: dict[str, int] = {}
    for port in ports:
        for method in port.service.methods:
            rpc = _Rpc(asyncio.get_running_loop(), port, method)
            await asyncio.to_thread(rpc.generated(per_rpc))
            await asyncio.to_thread(rpc.undecodable(raw_per_rpc))
            sent[port.name] = sent.get(port.name, 0) + rpc.sent
    for port in ports:
        await assert_serving(port.channel)
    return sent


class _Rpc:
    """One RPC of a port, called from hypothesis's worker thread on the test's event loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, port: Port, method: MethodDescriptor
    ) -> None:
        self.loop = loop
        self.port = port
        self.method = method
        self.path = method_path(method)
        self.metadata = port.credentials(method.name)
        self.sent = 0

    def _answer(self, call: Callable[[], Any], what: str) -> None:
        async def on_the_loop() -> tuple[grpc.StatusCode, str]:
            # grpc.aio calls must be made on the loop their channel runs on.
            return await answer_of(call())

        running = asyncio.run_coroutine_threadsafe(on_the_loop(), self.loop)
        code, details = running.result(timeout=CALL_TIMEOUT_SECONDS * 2)
        self.sent += 1
        assert_no_server_fault(code, details, f"{self.port.name} {self.method.name} {what}")

    def send(self, request: Message) -> None:
        self._answer(
            lambda: self.port.channel.unary_unary(
                self.path, request_serializer=_serialize, response_deserializer=_identity
            )(request, metadata=self.metadata, timeout=CALL_TIMEOUT_SECONDS),
            f"{request!r:.400}",
        )

    def send_raw(self, payload: bytes) -> None:
        self._answer(
            lambda: raw_call(self.port.channel, self.path, payload, self.metadata),
            f"raw {payload[:64]!r}",
        )

    def generated(self, per_rpc: int) -> Callable[[], None]:
        @settings(
            max_examples=examples(per_rpc),
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(request=self._requests())
        def run(request: Message) -> None:
            self.send(request)

        return run

    def _requests(self) -> st.SearchStrategy[Message]:
        hostile = messages(self.method.input_type, known=self.port.known)
        well_formed = self.port.well_formed.get(self.method.name)
        if well_formed is None:
            return hostile
        return st.one_of(hostile, spoiled(well_formed, self.port.known))

    def undecodable(self, raw_per_rpc: int) -> Callable[[], None]:
        @settings(max_examples=examples(raw_per_rpc), suppress_health_check=[HealthCheck.too_slow])
        @given(payload=raw_payloads())
        def run(payload: bytes) -> None:
            self.send_raw(payload)

        return run


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


async def assert_serving(channel: grpc.aio.Channel) -> None:
    """The port behind `channel` still answers (its standard health check says SERVING)."""
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_SECONDS)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
