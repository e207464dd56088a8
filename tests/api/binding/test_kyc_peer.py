"""Binding's kyc client over a real gRPC channel, against a stand-in KycStatusService that
answers as kyc's contract says (the kyc service itself is built in its own issue): names
match or not, no approved KYC is FAILED_PRECONDITION / KYC_NOT_APPROVED and stays that error
in binding, binding's service token arrives, and kyc down is UNAVAILABLE."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from services.binding.adapters.peers import KYC_READS, KycStatusClient
from tests.api.binding.kyc_stand_in import StandInKyc, running_kyc
from walletcore.errors import FailedPrecondition, Unavailable
from walletcore.grpc.clients import (
    InternalClients,
    InternalTarget,
    InternalTargetOptions,
    ServiceTokens,
    service_token_issuer,
)
from walletcore.tokens import DEVELOPMENT_IDENTITY_ISSUER


@pytest.fixture
async def kyc_server() -> AsyncIterator[StandInKyc]:
    async with running_kyc() as kyc:
        kyc.approve("acc-1", "Test Holder")
        yield kyc


@pytest.fixture
async def clients() -> AsyncIterator[InternalClients]:
    clients = InternalClients(
        ServiceTokens(service_token_issuer(None, DEVELOPMENT_IDENTITY_ISSUER), "binding")
    )
    yield clients
    await clients.close()


def kyc_at(clients: InternalClients, address: str) -> KycStatusClient:
    options = InternalTargetOptions(deadline_seconds=1.0)
    return KycStatusClient(
        clients.channel(InternalTarget("kyc", address, options), reads=KYC_READS)
    )


async def test_names_are_matched_by_kyc_as_binding(
    kyc_server: StandInKyc, clients: InternalClients
) -> None:
    kyc = kyc_at(clients, kyc_server.address)

    assert await kyc.match_verified_name("acc-1", "test  HOLDER") is True
    assert await kyc.match_verified_name("acc-1", "Someone Else") is False
    assert await kyc.is_approved("acc-1") is True
    assert await kyc.is_approved("acc-2") is False
    assert set(kyc_server.callers) == {"binding"}


async def test_no_approved_kyc_comes_back_as_kycs_own_refusal(
    kyc_server: StandInKyc, clients: InternalClients
) -> None:
    kyc = kyc_at(clients, kyc_server.address)

    with pytest.raises(FailedPrecondition) as caught:
        await kyc.match_verified_name("acc-2", "Test Holder")

    assert caught.value.reason == "KYC_NOT_APPROVED"


async def test_kyc_down_is_unavailable(clients: InternalClients) -> None:
    # A port bound but never listening: connections to it are refused while the test runs.
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        kyc = kyc_at(clients, f"127.0.0.1:{reserved.getsockname()[1]}")

        with pytest.raises(Unavailable):
            await kyc.match_verified_name("acc-1", "Test Holder")
