"""The API contract's house rules, checked on the descriptors of every generated module.

buf lint checks naming and documentation; these tests check what buf cannot: idempotency keys
on mutating RPCs, the service inventory other teams build against, and money as Money.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    FileDescriptor,
    MethodDescriptor,
)

import wallet

REPO_ROOT = Path(__file__).resolve().parents[3]

READ_ONLY_PREFIXES = ("Get", "List", "Find", "Verify", "Export", "Match", "Check")
# Named like a read, but it consumes a one-time code and marks a contact verified.
MUTATING_DESPITE_PREFIX = frozenset({"wallet.auth.v1.AuthService.VerifyContact"})

EXPECTED_SERVICES = frozenset(
    {
        "wallet.auth.v1.AuthService",
        "wallet.auth.v1.AccountAdminService",
        "wallet.auth.v1.AccountStatusService",
        "wallet.kyc.v1.KycService",
        "wallet.kyc.v1.KycReviewService",
        "wallet.kyc.v1.KycStatusService",
        "wallet.binding.v1.BindingService",
        "wallet.binding.v1.BindingAdminService",
        "wallet.binding.v1.BindingQueryService",
        "wallet.refund.v1.RefundService",
        "wallet.refund.v1.RefundOpsService",
        "wallet.refund.v1.PaymentLedgerService",
    }
)
MONEY = "wallet.common.v1.Money"


def _generated_files() -> list[FileDescriptor]:
    names = sorted(
        module.name
        for module in pkgutil.walk_packages(wallet.__path__, prefix="wallet.")
        if module.name.endswith("_pb2")
    )
    return [importlib.import_module(name).DESCRIPTOR for name in names]


FILES = _generated_files()


def _methods() -> Iterator[MethodDescriptor]:
    for file in FILES:
        for service in file.services_by_name.values():
            yield from service.methods


def _messages() -> Iterator[Descriptor]:
    pending = [message for file in FILES for message in file.message_types_by_name.values()]
    while pending:
        message = pending.pop()
        yield message
        pending.extend(message.nested_types)


def _enums() -> Iterator[EnumDescriptor]:
    for file in FILES:
        yield from file.enum_types_by_name.values()
    for message in _messages():
        yield from message.enum_types


def _is_read_only(method: MethodDescriptor) -> bool:
    if method.full_name in MUTATING_DESPITE_PREFIX:
        return False
    return method.name.startswith(READ_ONLY_PREFIXES)


def _takes_request_id_first(method: MethodDescriptor) -> bool:
    field = method.input_type.fields_by_name.get("request_id")
    return field is not None and field.number == 1 and field.type == FieldDescriptor.TYPE_STRING


def test_every_service_of_the_contract_exists_under_its_full_name() -> None:
    services = {service.full_name for file in FILES for service in file.services_by_name.values()}

    assert services == EXPECTED_SERVICES


def test_every_mutating_rpc_takes_a_string_request_id_as_field_1() -> None:
    offenders = [
        method.full_name
        for method in _methods()
        if not _is_read_only(method) and not _takes_request_id_first(method)
    ]

    assert offenders == []


def test_read_only_rpcs_take_no_request_id() -> None:
    # A read-only name on an RPC that takes an idempotency key means the name or the
    # classification is wrong.
    offenders = [
        method.full_name
        for method in _methods()
        if _is_read_only(method) and "request_id" in method.input_type.fields_by_name
    ]

    assert offenders == []


def test_every_enum_zero_value_is_unspecified() -> None:
    offenders = [
        enum.full_name
        for enum in _enums()
        if not enum.values_by_number[0].name.endswith("_UNSPECIFIED")
    ]

    assert offenders == []


def test_money_is_minor_units_and_a_currency_code() -> None:
    money = next(message for message in _messages() if message.full_name == MONEY)
    fields = {field.name: field.type for field in money.fields}

    assert fields == {
        "amount_minor": FieldDescriptor.TYPE_INT64,
        "currency": FieldDescriptor.TYPE_STRING,
    }


def test_every_amount_field_is_money() -> None:
    offenders = [
        field.full_name
        for message in _messages()
        if message.full_name != MONEY
        for field in message.fields
        if "amount" in field.name
        and (field.message_type is None or field.message_type.full_name != MONEY)
    ]

    assert offenders == []


def test_protos_import_only_wallet_and_well_known_types() -> None:
    # Errors travel as google.rpc status details, never inside messages.
    offenders = [
        f"{file.name} imports {dependency.name}"
        for file in FILES
        for dependency in file.dependencies
        if not dependency.name.startswith(("wallet/", "google/protobuf/"))
    ]

    assert offenders == []


def test_generated_code_matches_the_protos() -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (a dev dependency) is not installed")

    result = subprocess.run(
        [sys.executable, "scripts/gen_protos.py", "--check", "gen/python"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
