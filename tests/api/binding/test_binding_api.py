"""Binding through real gRPC, next to a real auth and a kyc stand-in, on SQLite and on
PostgreSQL: cards bound, refused and unbound with auth's grants, refund holds from refund's
identity, the account check on every request."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select

from services.binding.adapters import tables
from services.binding.bootstrap import CARD_BINDS_PER_ACCOUNT_HOUR
from tests.api.auth.harness import (
    operator_metadata,
    phone_contact,
    request_id,
    service_metadata,
)
from tests.api.auth.recovery_helpers import Holder, refused
from tests.api.auth.test_admin_freeze import freeze_request
from tests.api.binding.conftest import HOLDER_NAME, REFUND, BindingTestApp
from wallet.auth.v1 import types_pb2 as auth_types
from wallet.binding.v1 import binding_query_service_pb2 as query_pb
from wallet.binding.v1 import binding_service_pb2 as pb
from wallet.binding.v1 import types_pb2

TEST_CARD = "4242 4242 4242 4242"
"""Visa's public test number."""
OTHER_CARD = "5555 5555 5555 4444"
UNBIND = auth_types.STEP_UP_PURPOSE_UNBIND_CARD


def bind_request(number: str = TEST_CARD, **fields: Any) -> pb.BindCardRequest:
    values: dict[str, Any] = {
        "request_id": request_id(),
        "card_number": number,
        "expiry_month": 12,
        "expiry_year": 2030,
        "holder_name": HOLDER_NAME,
        **fields,
    }
    return pb.BindCardRequest(**values)


async def bind(app: BindingTestApp, holder: Holder, number: str = TEST_CARD) -> types_pb2.Card:
    reply = await app.public.BindCard(bind_request(number), metadata=holder.metadata)
    return reply.card


async def unbind(
    app: BindingTestApp, holder: Holder, card_id: str, grant: str
) -> pb.UnbindCardResponse:
    return await app.public.UnbindCard(
        pb.UnbindCardRequest(request_id=request_id(), card_id=card_id, grant=grant),
        metadata=holder.metadata,
    )


async def stored_cards(app: BindingTestApp) -> int:
    async with app.app.engine.connect() as connection:
        return (
            await connection.execute(select(func.count()).select_from(tables.cards))
        ).scalar_one()


async def test_a_public_test_card_is_bound_and_listed_with_brand_last4_and_expiry(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()

    card = await bind(binding_app, holder)
    listed = await binding_app.public.ListCards(pb.ListCardsRequest(), metadata=holder.metadata)

    assert (card.brand, card.last4, card.expiry_month, card.expiry_year, card.status) == (
        types_pb2.CARD_BRAND_VISA,
        "4242",
        12,
        2030,
        types_pb2.CARD_STATUS_ACTIVE,
    )
    assert [c.card_id for c in listed.cards] == [card.card_id]
    assert "4242424242424242" not in str(listed)


async def test_a_one_digit_change_of_the_test_card_fails_the_luhn_check(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()

    error = await refused(
        binding_app.public.BindCard(bind_request("4242 4242 4242 4241"), metadata=holder.metadata)
    )

    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CARD_NUMBER_INVALID")
    assert [v.field for v in error.field_violations] == ["card_number"]
    assert "4242" not in error.message


@pytest.mark.parametrize(
    ("fields", "code", "reason"),
    [
        ({"expiry_year": 2024}, grpc.StatusCode.INVALID_ARGUMENT, "CARD_EXPIRED"),
        (
            {"holder_name": "Someone Else"},
            grpc.StatusCode.FAILED_PRECONDITION,
            "HOLDER_NAME_MISMATCH",
        ),
    ],
)
async def test_an_expired_card_and_another_holders_name_are_refused(
    binding_app: BindingTestApp, fields: dict[str, Any], code: grpc.StatusCode, reason: str
) -> None:
    holder = await binding_app.new_holder()

    error = await refused(
        binding_app.public.BindCard(bind_request(**fields), metadata=holder.metadata)
    )

    assert (error.code, error.reason) == (code, reason)
    assert await stored_cards(binding_app) == 0


async def test_an_account_without_approved_kyc_cannot_bind(binding_app: BindingTestApp) -> None:
    holder = await binding_app.new_holder(kyc_name=None)

    error = await refused(binding_app.public.BindCard(bind_request(), metadata=holder.metadata))

    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "KYC_NOT_APPROVED")


async def test_a_card_bound_to_one_account_is_refused_to_another(
    binding_app: BindingTestApp,
) -> None:
    first, second = await binding_app.new_holder(), await binding_app.new_holder()
    await bind(binding_app, first)

    error = await refused(binding_app.public.BindCard(bind_request(), metadata=second.metadata))

    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "CARD_ALREADY_BOUND")


async def test_unbinding_takes_a_grant_for_that_card_once(binding_app: BindingTestApp) -> None:
    holder = await binding_app.new_holder()
    card = await bind(binding_app, holder)
    other = await bind(binding_app, holder, OTHER_CARD)

    without = await refused(unbind(binding_app, holder, card.card_id, ""))
    for_other_card = await binding_app.grant(holder, UNBIND, other.card_id)
    wrong_card = await refused(unbind(binding_app, holder, card.card_id, for_other_card))
    grant = await binding_app.grant(holder, UNBIND, card.card_id, by_email=True)
    unbound = await unbind(binding_app, holder, card.card_id, grant)
    reused = await refused(unbind(binding_app, holder, card.card_id, grant))

    assert (without.code, [v.field for v in without.field_violations]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["grant"],
    )
    assert (wrong_card.code, wrong_card.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "GRANT_INVALID",
    )
    assert unbound.card.status == types_pb2.CARD_STATUS_UNBOUND
    assert (reused.code, reused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "GRANT_ALREADY_USED")
    everything = await binding_app.public.ListCards(
        pb.ListCardsRequest(include_unbound=True), metadata=holder.metadata
    )
    assert [c.status for c in everything.cards] == [
        types_pb2.CARD_STATUS_ACTIVE,
        types_pb2.CARD_STATUS_UNBOUND,
    ]


async def test_a_grant_for_another_purpose_does_not_unbind(binding_app: BindingTestApp) -> None:
    holder = await binding_app.new_holder()
    card = await bind(binding_app, holder)
    grant = await binding_app.grant(
        holder, auth_types.STEP_UP_PURPOSE_CHANGE_PHONE, binding_app.auth.new_phone()
    )

    error = await refused(unbind(binding_app, holder, card.card_id, grant))

    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "GRANT_INVALID")


async def test_a_refund_hold_blocks_the_unbind_until_refund_releases_it(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()
    card = await bind(binding_app, holder)
    hold = query_pb.PlaceRefundHoldRequest(
        request_id=request_id(),
        account_id=holder.account_id,
        instrument_id=card.card_id,
        refund_id="refund-1",
    )
    await binding_app.query.PlaceRefundHold(hold, metadata=REFUND)
    grant = await binding_app.grant(holder, UNBIND, card.card_id)

    blocked = await refused(unbind(binding_app, holder, card.card_id, grant))
    released = await binding_app.query.ReleaseRefundHold(
        query_pb.ReleaseRefundHoldRequest(request_id=request_id(), refund_id="refund-1"),
        metadata=REFUND,
    )
    unbound = await unbind(binding_app, holder, card.card_id, grant)
    instrument = await binding_app.query.GetInstrument(
        query_pb.GetInstrumentRequest(account_id=holder.account_id, instrument_id=card.card_id),
        metadata=REFUND,
    )
    await binding_app.query.PlaceRefundHold(hold, metadata=REFUND)  # a retry: the first answer
    hold.request_id = request_id()
    unbound_hold = await refused(binding_app.query.PlaceRefundHold(hold, metadata=REFUND))

    assert (blocked.code, blocked.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "REFUND_IN_FLIGHT",
    )
    assert released.released is True
    assert unbound.card.status == types_pb2.CARD_STATUS_UNBOUND
    assert (instrument.instrument.last4, instrument.instrument.usable_for_refund) == ("4242", False)
    assert unbound_hold.reason == "INSTRUMENT_UNAVAILABLE"


async def test_the_query_port_is_refunds_alone(binding_app: BindingTestApp) -> None:
    holder = await binding_app.new_holder()
    request = query_pb.GetInstrumentRequest(account_id=holder.account_id, instrument_id="card-1")

    as_user = await refused(binding_app.query.GetInstrument(request, metadata=holder.metadata))
    as_kyc = await refused(
        binding_app.query.GetInstrument(
            request, metadata=service_metadata("kyc", audience="binding")
        )
    )

    assert as_user.code == grpc.StatusCode.UNAUTHENTICATED
    assert as_kyc.code == grpc.StatusCode.PERMISSION_DENIED


async def test_a_frozen_account_is_refused_on_every_public_rpc(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()
    card = await bind(binding_app, holder)
    await binding_app.auth.admin.FreezeAccount(
        freeze_request(holder.account_id), metadata=operator_metadata()
    )

    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: binding_app.public.BindCard(bind_request(OTHER_CARD), metadata=holder.metadata),
        lambda: binding_app.public.ListCards(pb.ListCardsRequest(), metadata=holder.metadata),
        lambda: unbind(binding_app, holder, card.card_id, "x"),
        lambda: binding_app.public.StartContactChange(
            pb.StartContactChangeRequest(
                request_id=request_id(),
                new_contact=phone_contact(binding_app.auth.new_phone()),
                grant="x",
            ),
            metadata=holder.metadata,
        ),
        lambda: binding_app.public.CompleteContactChange(
            pb.CompleteContactChangeRequest(
                request_id=request_id(), change_id="change-1", code="123456"
            ),
            metadata=holder.metadata,
        ),
        lambda: binding_app.public.GetWithdrawalHold(
            pb.GetWithdrawalHoldRequest(), metadata=holder.metadata
        ),
    ]
    for call in calls:
        error = await refused(call())
        assert (error.code, error.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "ACCOUNT_FROZEN",
        )


async def test_kyc_down_is_unavailable_and_binds_nothing(binding_app: BindingTestApp) -> None:
    holder = await binding_app.new_holder()
    await binding_app.kyc.stop()

    error = await refused(binding_app.public.BindCard(bind_request(), metadata=holder.metadata))

    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert await stored_cards(binding_app) == 0


async def test_auth_down_is_unavailable_and_binds_nothing(binding_app: BindingTestApp) -> None:
    holder = await binding_app.new_holder()
    # Auth's ports go away; its app is closed for good by its fixture afterwards.
    await binding_app.auth.app.server.stop(0)

    error = await refused(binding_app.public.BindCard(bind_request(), metadata=holder.metadata))

    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert await stored_cards(binding_app) == 0


async def test_bind_attempts_are_limited_per_account_refused_ones_included(
    binding_app: BindingTestApp,
) -> None:
    holder, other = await binding_app.new_holder(), await binding_app.new_holder()
    invalid = bind_request("4242 4242 4242 4241")
    for _ in range(CARD_BINDS_PER_ACCOUNT_HOUR.limit):
        invalid.request_id = request_id()
        error = await refused(binding_app.public.BindCard(invalid, metadata=holder.metadata))
        assert error.reason == "CARD_NUMBER_INVALID"

    limited = await refused(binding_app.public.BindCard(bind_request(), metadata=holder.metadata))
    others_card = await bind(binding_app, other)

    assert (limited.code, limited.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert others_card.last4 == "4242"


async def test_malformed_strings_are_invalid_arguments_naming_the_field_not_internal(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()
    public, query = binding_app.public, binding_app.query
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        (
            "holder_name",
            lambda: public.BindCard(
                bind_request(holder_name="Test\x00Holder"), metadata=holder.metadata
            ),
        ),
        (
            "card_number",
            lambda: public.BindCard(bind_request("4242\x00"), metadata=holder.metadata),
        ),
        ("card_id", lambda: unbind(binding_app, holder, "card\x00", "a.b.c")),
        ("grant", lambda: unbind(binding_app, holder, "card-1", "not a grant")),
        (
            "refund_id",
            lambda: query.PlaceRefundHold(
                query_pb.PlaceRefundHoldRequest(
                    request_id=request_id(),
                    account_id=holder.account_id,
                    instrument_id="card-1",
                    refund_id="r" * 129,
                ),
                metadata=REFUND,
            ),
        ),
        (
            "new_contact.phone",
            lambda: public.StartContactChange(
                pb.StartContactChangeRequest(
                    request_id=request_id(),
                    new_contact=phone_contact("+86\x00138"),
                    grant="a.b.c",
                ),
                metadata=holder.metadata,
            ),
        ),
    ]
    for field, call in calls:
        error = await refused(call())
        assert (error.code, [v.field for v in error.field_violations]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            [field],
        ), field


async def test_no_card_number_reaches_the_logs(
    binding_app: BindingTestApp, caplog: pytest.LogCaptureFixture
) -> None:
    holder = await binding_app.new_holder()
    with caplog.at_level(logging.DEBUG):
        await bind(binding_app, holder)
        await refused(binding_app.public.BindCard(bind_request(), metadata=holder.metadata))
        await refused(
            binding_app.public.BindCard(
                bind_request("4242 4242 4242 4241"), metadata=holder.metadata
            )
        )

    assert caplog.records  # the requests were logged
    for number in ("4242424242424242", "4242 4242 4242 4242", "4242424242424241"):
        assert number not in caplog.text
