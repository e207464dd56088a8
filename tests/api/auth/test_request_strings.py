"""No string a client sends reaches a database unchecked: a NUL, a control character or an
over-long value in any string field of any request of auth's three ports is INVALID_ARGUMENT
with a BadRequest violation naming that field, on SQLite and on PostgreSQL (which cannot store
NUL: before the edge checks, such a refresh token answered INTERNAL).

The requests are built from the descriptors, so a string field added later is covered too: each
case is a request whose every other field is well formed, with one field spoiled.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import grpc
import grpc.aio
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from tests.api.auth.harness import (
    DEFAULT_PASSWORD,
    AuthTestApp,
    Metadata,
    Registered,
    StartAuth,
    operator_metadata,
    request_id,
    service_metadata,
)
from wallet.auth.v1 import account_admin_service_pb2 as admin_pb
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import auth_service_pb2 as pb
from wallet.auth.v1 import types_pb2
from walletcore.grpc.status import error_details

# What each kind of bad value does to a well-formed one.
SPOILERS: Final = {
    "nul": lambda good: good[:1] + "\x00" + good[1:],
    "control": lambda good: good + "\x1b[2J",
    "line separator": lambda good: good + "\u2028",
    "oversize": lambda good: good + "a" * 5_000,
}

_SERVICES: Final = {
    "public": pb.DESCRIPTOR.services_by_name["AuthService"],
    "admin": admin_pb.DESCRIPTOR.services_by_name["AccountAdminService"],
    "internal": status_pb.DESCRIPTOR.services_by_name["AccountStatusService"],
}
_SKIPPED_MESSAGES: Final = {"google.protobuf.Timestamp"}


def _good_string(name: str, app: AuthTestApp) -> str:
    """A well-formed value for a string field called `name`."""
    token = f"{uuid.uuid4().hex}.{secrets.token_urlsafe(32)}"
    values = {
        "request_id": request_id(),
        "password": DEFAULT_PASSWORD,
        "new_password": DEFAULT_PASSWORD,
        "phone": app.new_phone(),  # fresh, so SignIn's per-identifier limit never answers
        "email": app.new_email(),
        "code": "123456",
        "totp_code": "123456",
        "recovery_code": "ABCD-EFGH-JKMN-PQRS",
        "device_id": "device-1",
        "device_name": "Phone",
        "app_version": "1.0.0",
        "ticket": token,
        "refresh_token": token,
        "grant": "e30.e30.c2ln",
        "object_id": "card-7",
        "page_token": "",
        "reason": "customer asked",
        "ticket_ref": "SEC-1",
        "operator_id": "officer-1",
    }
    # Every other string of these requests is an id auth issued (uuid hex).
    return values.get(name, uuid.uuid4().hex)


def _chosen_oneof_members(descriptor: Any, target: str, prefix: str) -> set[str]:
    """Of each oneof, the member leading to `target`, else the first."""
    chosen = set()
    for oneof in descriptor.oneofs:
        names = [member.name for member in oneof.fields]
        leading = [name for name in names if _leads_to(prefix + name, target)]
        chosen.add((leading or names)[0])
    return chosen


def _leads_to(path: str, target: str) -> bool:
    return target == path or target.startswith((f"{path}.", f"{path}["))


def _fill(message: Message, app: AuthTestApp, target: str, prefix: str = "") -> bool:
    """Fills every field of `message` well formed and spoils nothing; returns whether `target`
    is a string field inside it. Enums get their first real value; oneofs one member."""
    descriptor = message.DESCRIPTOR
    chosen = _chosen_oneof_members(descriptor, target, prefix)
    found = False
    for field in descriptor.fields:
        if field.containing_oneof is not None and field.name not in chosen:
            continue
        path = prefix + field.name
        if field.type == FieldDescriptor.TYPE_STRING:
            good = _good_string(field.name, app)
            if field.is_repeated:
                getattr(message, field.name).append(good)
                path += "[0]"
            else:
                setattr(message, field.name, good)
            found |= path == target
        elif field.enum_type is not None and not field.is_repeated:
            setattr(message, field.name, field.enum_type.values[1].number)
        elif _is_walked_message(field):
            found |= _fill(getattr(message, field.name), app, target, f"{path}.")
    return found


def _is_walked_message(field: Any) -> bool:
    """A singular message field other than a well-known type with no strings."""
    message_type = field.message_type
    return (
        message_type is not None
        and not field.is_repeated
        and message_type.full_name not in _SKIPPED_MESSAGES
    )


def string_paths(descriptor: Any, prefix: str = "") -> Iterator[str]:
    """Every string field reachable in a request, as the field path a violation names."""
    for field in descriptor.fields:
        path = prefix + field.name
        if field.type == FieldDescriptor.TYPE_STRING:
            yield f"{path}[0]" if field.is_repeated else path
        elif _is_walked_message(field):
            yield from string_paths(field.message_type, f"{path}.")


def _spoil(message: Message, target: str, spoiler: Any) -> None:
    *parents, leaf = target.split(".")
    for parent in parents:
        message = getattr(message, parent)
    if leaf.endswith("[0]"):
        values = getattr(message, leaf.removesuffix("[0]"))
        values[0] = spoiler(values[0])
    else:
        setattr(message, leaf, spoiler(getattr(message, leaf)))


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    spoiled_by: str


def cases(port: str) -> list[Case]:
    return [
        Case(method.name, path, spoiled_by)
        for method in _SERVICES[port].methods
        for path in string_paths(method.input_type)
        for spoiled_by in SPOILERS
    ]


def test_every_rpc_of_every_port_has_string_fields_checked_or_none() -> None:
    # The walk below reaches every RPC; these have no string field to spoil.
    without_strings = {
        (port, method.name)
        for port, service in _SERVICES.items()
        for method in service.methods
        if not list(string_paths(method.input_type))
    }

    assert without_strings == {
        ("public", "GetAccount"),
        ("admin", "VerifyAuditLog"),
        ("internal", "ListSigningKeys"),
    }


async def _answer(app: AuthTestApp, port: str, metadata: Metadata, case: Case) -> str | None:
    """None when the spoiled request was refused as it should be, else what happened."""
    method = _SERVICES[port].methods_by_name[case.method]
    request = _request_type(port, method)
    assert _fill(request, app, case.path), f"{case.path} is not a string field of the request"
    _spoil(request, case.path, SPOILERS[case.spoiled_by])
    stub: Any = getattr(app, port)
    try:
        await getattr(stub, case.method)(request, metadata=metadata, timeout=30)
    except grpc.aio.AioRpcError as error:
        details = error_details(error)
        named = [violation.field for violation in details.field_violations]
        if details.code == grpc.StatusCode.INVALID_ARGUMENT and case.path in named:
            return None
        return f"{details.code.name} {details.reason} {named}"
    return "OK"


def _request_type(port: str, method: Any) -> Message:
    modules = {"public": pb, "admin": admin_pb, "internal": status_pb}
    message_type: type[Message] = getattr(modules[port], method.input_type.name)
    return message_type()


def _metadata(port: str, user: Registered) -> Metadata:
    if port == "admin":
        return operator_metadata(operator_id="officer-strings")
    if port == "internal":
        return service_metadata("binding")
    return user.metadata


def _from_address(metadata: Metadata, index: int) -> Metadata:
    """`metadata` sent from a client address of its own, so the walk's many calls never meet
    the per-address limits (which are charged before the request is read)."""
    return (
        *metadata,
        ("x-forwarded-for", f"10.{index // 65536}.{index // 256 % 256}.{index % 256}"),
    )


@pytest.mark.parametrize("port", list(_SERVICES))
async def test_a_spoiled_string_anywhere_is_invalid_argument_naming_its_field(
    start_auth: StartAuth, port: str
) -> None:
    async with start_auth(trusted_proxy_header="x-forwarded-for") as app:
        user = await app.register()
        metadata = _metadata(port, user)
        wrong = {
            f"{case.method} {case.path} ({case.spoiled_by})": answer
            for index, case in enumerate(cases(port))
            if (answer := await _answer(app, port, _from_address(metadata, index), case))
            is not None
        }

    assert wrong == {}


async def test_a_refresh_token_holding_nul_is_invalid_argument_not_a_server_error(
    auth_app: AuthTestApp,
) -> None:
    # The input that once failed CI on PostgreSQL: `invalid byte sequence for encoding "UTF8"`.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth_app.public.RefreshSession(
            pb.RefreshSessionRequest(request_id=request_id(), refresh_token="\x00.0")
        )

    details = error_details(refused.value)
    assert (details.code, [v.field for v in details.field_violations]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["refresh_token"],
    )


async def test_a_refused_freeze_leaves_the_account_as_it_was(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()
    officer = operator_metadata(operator_id="officer-strings")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth_app.admin.FreezeAccount(
            admin_pb.FreezeAccountRequest(
                request_id=request_id(),
                account_id=user.account_id,
                reason="fraud\x00report",
                ticket_ref="SEC-1",
            ),
            metadata=officer,
        )
    account = await auth_app.admin.GetAccount(
        admin_pb.AccountAdminServiceGetAccountRequest(account_id=user.account_id),
        metadata=officer,
    )

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert account.account.status == types_pb2.ACCOUNT_STATUS_ACTIVE


async def test_a_lone_surrogate_cannot_arrive_and_its_bytes_are_refused_as_malformed(
    auth_app: AuthTestApp,
) -> None:
    # A client cannot encode a lone surrogate as UTF-8; raw bytes that spell one (CESU-style
    # ED A0 80) are not a valid protobuf string, and the server refuses the whole message.
    raw = auth_app.channels["public"].unary_unary(
        "/wallet.auth.v1.AuthService/RefreshSession",
        request_serializer=lambda data: data,
        response_deserializer=pb.RefreshSessionResponse.FromString,
    )
    request_id_field = b"\x0a\x01r"
    refresh_token_field = b"\x12\x07\xed\xa0\x80.abc"

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await raw(request_id_field + refresh_token_field)

    details = error_details(refused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
