"""A signed-in account used as an SMS or e-mail pump: AddContact to ever new addresses, each
of which gets a code. The destinations' own limits never trigger (each address is new), so
the account's daily budget of codes to contacts it adds is what bounds it."""

from __future__ import annotations

import grpc
import pytest

from services.auth.service.codes import CODES_SENT_TO_NEW_CONTACTS_PER_ACCOUNT_DAY
from tests.api.auth.harness import AuthTestApp, Metadata, StartAuth, email_contact, request_id
from tests.api.auth.recovery_helpers import refused
from tests.support.figures import record
from wallet.auth.v1 import auth_service_pb2 as pb

BUDGET = CODES_SENT_TO_NEW_CONTACTS_PER_ACCOUNT_DAY.limit
TRIED = BUDGET + 5


async def add_contact(app: AuthTestApp, metadata: Metadata) -> pb.AddContactResponse:
    return await app.public.AddContact(
        pb.AddContactRequest(request_id=request_id(), contact=email_contact(app.new_email())),
        metadata=metadata,
    )


@pytest.mark.parametrize("auth_backend", ["sqlite"], indirect=True)
async def test_one_account_has_codes_sent_to_at_most_its_daily_budget_of_new_addresses(
    start_auth: StartAuth,
) -> None:
    async with start_auth() as app:
        pump = await app.register()
        for _ in range(BUDGET):
            await add_contact(app, pump.metadata)
        refusals = [await refused(add_contact(app, pump.metadata)) for _ in range(TRIED - BUDGET)]
        other = await app.register()
        others_first = await add_contact(app, other.metadata)

    assert {details.code for details in refusals} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert {v.subject for d in refusals for v in d.quota_violations} == {
        CODES_SENT_TO_NEW_CONTACTS_PER_ACCOUNT_DAY.name
    }
    assert others_first.verification_id
    record(
        "contact pumping through AddContact",
        f"{TRIED} new addresses asked from one account: {BUDGET} codes sent, "
        f"{len(refusals)} refused (RESOURCE_EXHAUSTED, "
        f"{CODES_SENT_TO_NEW_CONTACTS_PER_ACCOUNT_DAY.name}); another account unaffected",
    )
