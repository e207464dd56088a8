"""Translations between binding's protobuf messages and its domain, shared by every servicer.

Request fields are checked here or by the domain parsers they call, and a bad one raises
InvalidArgument naming the proto field path (`new_contact.phone`, `card_id`), so every RPC
reports bad input alike and nothing malformed reaches a query (PostgreSQL refuses NUL
characters and over-long strings). Nothing here decides a product rule.
"""

from __future__ import annotations

import re
from typing import Final

from services.binding.domain.cards import Card, CardBrand, CardStatus
from services.binding.domain.contact_changes import ContactKind
from services.binding.domain.holds import HoldWindow
from services.binding.service.ports import NewContact
from wallet.binding.v1 import types_pb2
from wallet.common.v1 import contact_pb2
from walletcore.contacts import normalized_email, normalized_phone
from walletcore.errors import InvalidArgument
from walletcore.grpc.convert import timestamp
from walletcore.validation import COMPACT_JWS, ISSUED_ID, checked_token

_CODE: Final = re.compile(r"[0-9]{6}")

_BRANDS: Final = {
    CardBrand.VISA: types_pb2.CARD_BRAND_VISA,
    CardBrand.MASTERCARD: types_pb2.CARD_BRAND_MASTERCARD,
    CardBrand.UNIONPAY: types_pb2.CARD_BRAND_UNIONPAY,
    CardBrand.AMERICAN_EXPRESS: types_pb2.CARD_BRAND_AMERICAN_EXPRESS,
    CardBrand.JCB: types_pb2.CARD_BRAND_JCB,
}
_STATUSES: Final = {
    CardStatus.ACTIVE: types_pb2.CARD_STATUS_ACTIVE,
    CardStatus.UNBOUND: types_pb2.CARD_STATUS_UNBOUND,
}


def id_from(raw: str, field: str) -> str:
    """An id (a card, a change, a refund, an account): uuid hex in practice, url-safe, at most
    128 characters (walletcore.validation.ISSUED_ID)."""
    return checked_token(raw, field, ISSUED_ID)


def grant_from(raw: str, field: str = "grant") -> str:
    """The grant token as sent, spelled as a signed token; its checks are the grant
    acceptance's. An absent grant says so instead of looking forged."""
    return checked_token(raw, field, COMPACT_JWS)


def code_from(raw: str, field: str = "code") -> str:
    if not _CODE.fullmatch(raw):
        raise InvalidArgument.field(field, "must be the 6 digits the new contact received")
    return raw


def new_contact_from(contact: contact_pb2.Contact, field: str = "new_contact") -> NewContact:
    """The new phone or email, normalised as auth normalises it (and so as auth wrote it into
    the grant's object)."""
    which = contact.WhichOneof("value")
    if which == "phone":
        return NewContact(
            ContactKind.PHONE, normalized_phone(contact.phone, field=f"{field}.phone")
        )
    if which == "email":
        return NewContact(
            ContactKind.EMAIL, normalized_email(contact.email, field=f"{field}.email")
        )
    raise InvalidArgument.field(field, "must hold a phone or an email")


def card_to_proto(card: Card) -> types_pb2.Card:
    message = types_pb2.Card(
        card_id=card.id,
        brand=_BRANDS[card.brand],
        last4=card.last4,
        expiry_month=card.expiry.month,
        expiry_year=card.expiry.year,
        holder_name=card.holder_name,
        status=_STATUSES[card.status],
        bound_at=timestamp(card.bound_at),
    )
    if card.unbound_at is not None:
        message.unbound_at.CopyFrom(timestamp(card.unbound_at))
    return message


def brand_to_proto(brand: CardBrand) -> types_pb2.CardBrand.ValueType:
    return _BRANDS[brand]


def status_to_proto(status: CardStatus) -> types_pb2.CardStatus.ValueType:
    return _STATUSES[status]


def window_to_proto(window: HoldWindow) -> types_pb2.WithdrawalHold:
    message = types_pb2.WithdrawalHold(in_window=window.in_window)
    if window.until is not None:
        message.until.CopyFrom(timestamp(window.until))
    return message
