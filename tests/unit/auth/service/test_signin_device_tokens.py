"""Sign-in's device tokens in the use case: when one is issued, which limit an attempt is
charged on, and that a token only ever helps the account it names."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.auth.domain.contacts import Contact, Phone
from services.auth.domain.device_tokens import read_device_token
from services.auth.domain.events import Device, Origin
from services.auth.service import signin
from services.auth.service.context import AuthContext
from services.auth.service.fakes import FakeClock, FakeTransactions
from services.auth.service.ports import AuthUnitOfWork
from services.auth.service.sessions import TokenPair
from tests.unit.auth.service.access_helpers import (
    ATTACKER,
    ORIGIN,
    OTHER_PHONE,
    PASSWORD,
    PHONE,
    enable_totp,
    refusal,
    register,
)
from walletcore.errors import ResourceExhausted
from walletcore.ratelimit import SIGN_IN_PER_ACCOUNT_MINUTE

UNKNOWN = Phone("+8613700137000")
NEW_ADDRESS = Origin(client_address="192.0.2.44", device=Device("phone-2", "A new phone"))
SignIn = Callable[[AuthUnitOfWork], Awaitable[signin.SignInAnswer]]


def sign_in(
    ctx: AuthContext,
    password: str = PASSWORD,
    *,
    identifier: Contact = PHONE,
    device_token: str = "",
    origin: Origin = ORIGIN,
) -> SignIn:
    async def work(uow: AuthUnitOfWork) -> signin.SignInAnswer:
        return await signin.sign_in(
            uow,
            ctx,
            identifier=identifier,
            password=password,
            origin=origin,
            device_token=device_token,
        )

    return work


async def exhaust_identifier(tx: FakeTransactions, ctx: AuthContext, identifier: Contact) -> None:
    for _ in range(SIGN_IN_PER_ACCOUNT_MINUTE.limit):
        await refusal(tx, sign_in(ctx, "wrong", identifier=identifier, origin=ATTACKER))


def token_id(ctx: AuthContext, text: str, clock: FakeClock) -> str:
    token = read_device_token(text, ctx.device_tokens, clock())
    assert token is not None
    return token.token_id


async def test_a_right_password_earns_a_token_of_the_account_even_before_the_second_factor(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    account_id = (await register(tx, ctx)).account_id
    without_totp = await tx.run(sign_in(ctx))
    await enable_totp(tx, ctx, clock, account_id)

    with_totp = await tx.run(sign_in(ctx))

    assert isinstance(without_totp.outcome, TokenPair)
    assert isinstance(with_totp.outcome, signin.SecondFactorRequired)
    for answer in (without_totp, with_totp):
        token = read_device_token(answer.device_token, ctx.device_tokens, clock())
        assert token is not None
        assert token.is_for(account_id)


async def test_a_presented_token_is_renewed_and_a_new_device_gets_a_new_one(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    await register(tx, ctx)
    first = (await tx.run(sign_in(ctx))).device_token

    renewed = (await tx.run(sign_in(ctx, device_token=first))).device_token
    another_device = (await tx.run(sign_in(ctx))).device_token

    assert token_id(ctx, renewed, clock) == token_id(ctx, first, clock)
    assert token_id(ctx, another_device, clock) != token_id(ctx, first, clock)


async def test_an_exhausted_identifier_refuses_all_but_a_device_with_its_token_or_a_known_address(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    await register(tx, ctx)
    device_token = (await tx.run(sign_in(ctx))).device_token
    await exhaust_identifier(tx, ctx, PHONE)

    new_address = await refusal(tx, sign_in(ctx, origin=NEW_ADDRESS))
    new_address_with_token = await tx.run(
        sign_in(ctx, device_token=device_token, origin=NEW_ADDRESS)
    )
    known_address = await tx.run(sign_in(ctx))

    assert isinstance(new_address, ResourceExhausted)
    assert new_address.reason == "RATE_LIMITED"
    assert isinstance(new_address_with_token.outcome, TokenPair)
    assert isinstance(known_address.outcome, TokenPair)


async def test_a_token_only_counts_for_the_account_it_names(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    await register(tx, ctx)
    await register(tx, ctx, OTHER_PHONE)
    other_accounts_token = (await tx.run(sign_in(ctx, identifier=OTHER_PHONE))).device_token
    await exhaust_identifier(tx, ctx, PHONE)
    await exhaust_identifier(tx, ctx, UNKNOWN)

    for identifier in (PHONE, UNKNOWN):
        error = await refusal(
            tx,
            sign_in(
                ctx, identifier=identifier, device_token=other_accounts_token, origin=NEW_ADDRESS
            ),
        )
        assert isinstance(error, ResourceExhausted)
        assert error.reason == "RATE_LIMITED"
