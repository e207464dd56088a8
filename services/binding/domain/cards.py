"""Card numbers, expiry dates and the card's lifecycle.

A card number is checked in this order, and the first failure is the answer:

1. Only ASCII digits, spaces and dashes; 12 to 19 digits once spaces and dashes are removed
   (CARD_NUMBER_INVALID). Other Unicode digits are refused, not converted.
2. A supported brand by its IIN (the leading digits), else CARD_BRAND_UNSUPPORTED: Visa (4),
   Mastercard (51-55 and 2221-2720), American Express (34, 37), JCB (3528-3589) and UnionPay
   (62). Discover and Diners Club are recognised nowhere in the contract (`CardBrand` has no
   value for them), so their numbers are unsupported like any other unknown range.
3. The brand's lengths (CARD_NUMBER_INVALID): Visa 13, 16 or 19; Mastercard 16; American
   Express 15; JCB and UnionPay 16 to 19.
4. The Luhn check digit (CARD_NUMBER_INVALID), with the UnionPay exception below.

UnionPay and Luhn. UnionPay has issued 62-prefixed cards, mostly older 19-digit debit cards,
whose last digit is not a Luhn check digit; refusing them would lock real cardholders out of
a card they use every day, and widely used validators (Braintree's card-validator, for one)
skip Luhn for UnionPay by default for that reason. Binding accepts a UnionPay number that
fails Luhn, except in 622126-622925: those cards are co-badged with Discover and run on
Discover's network, which requires a valid check digit, so there a failed Luhn check is a
typo. What Luhn would have caught (a one-digit typo) is then caught where the card is used:
the card vault, which a real tokenisation provider backs, validates the card with the network
before a refund is ever paid to it. `CardNumber.check_digit_valid` tells which case a number
is.

Expiry: a card is valid through the last day of its expiry month (UTC). A card is never stored
with its number: `Card` keeps the vault's token, the brand, the last 4 digits, the expiry and
a keyed fingerprint the service layer computes. `CardNumber` never shows its digits in a repr.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from walletcore.errors import FailedPrecondition, FieldViolation, InvalidArgument

from .reasons import Reason, text_field

MIN_DIGITS: Final = 12
MAX_DIGITS: Final = 19
MAX_RAW_CARD_NUMBER_LENGTH: Final = 64
"""Longer than any number however it is spaced; bounds the work on hostile input."""
MAX_HOLDER_NAME_LENGTH: Final = 200
MAX_YEARS_AHEAD: Final = 20
"""Cards are issued for a few years; an expiry further out is a typo, not a card."""
CARD_NUMBER_FIELD: Final = "card_number"
_SEPARATORS: Final = frozenset(" -")
_ASCII_DIGITS: Final = frozenset("0123456789")


class CardBrand(enum.StrEnum):
    VISA = "VISA"
    MASTERCARD = "MASTERCARD"
    UNIONPAY = "UNIONPAY"
    AMERICAN_EXPRESS = "AMERICAN_EXPRESS"
    JCB = "JCB"


class CardStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    UNBOUND = "UNBOUND"


@dataclass(frozen=True, slots=True)
class _IinRange:
    """Numbers whose first `len(str(low))` digits lie in [low, high] belong to `brand`."""

    low: int
    high: int
    brand: CardBrand

    def matches(self, digits: str) -> bool:
        width = len(str(self.low))
        return self.low <= int(digits[:width]) <= self.high


_IIN_RANGES: Final = (
    _IinRange(4, 4, CardBrand.VISA),
    _IinRange(51, 55, CardBrand.MASTERCARD),
    _IinRange(2221, 2720, CardBrand.MASTERCARD),
    _IinRange(34, 34, CardBrand.AMERICAN_EXPRESS),
    _IinRange(37, 37, CardBrand.AMERICAN_EXPRESS),
    _IinRange(3528, 3589, CardBrand.JCB),
    _IinRange(62, 62, CardBrand.UNIONPAY),
)
_LENGTHS: Final = {
    CardBrand.VISA: frozenset({13, 16, 19}),
    CardBrand.MASTERCARD: frozenset({16}),
    CardBrand.AMERICAN_EXPRESS: frozenset({15}),
    CardBrand.JCB: frozenset(range(16, 20)),
    CardBrand.UNIONPAY: frozenset(range(16, 20)),
}
_DISCOVER_COBADGED_UNIONPAY: Final = _IinRange(622126, 622925, CardBrand.UNIONPAY)


def luhn_valid(digits: str) -> bool:
    """Whether the last digit of `digits` (ASCII digits only) is its Luhn check digit."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - ord("0")
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def brand_of(digits: str) -> CardBrand | None:
    """The supported brand whose IIN range `digits` starts in, if any."""
    for iin_range in _IIN_RANGES:
        if iin_range.matches(digits):
            return iin_range.brand
    return None


def _number_invalid(description: str) -> InvalidArgument:
    return InvalidArgument(
        [FieldViolation(CARD_NUMBER_FIELD, description)],
        "the card number is not valid",
        reason=Reason.CARD_NUMBER_INVALID,
    )


@dataclass(frozen=True, slots=True)
class CardNumber:
    """A checked card number. Its digits go to the card vault and the fingerprint only;
    `repr` shows the brand and last 4 digits, never the number."""

    digits: str = field(repr=False)
    brand: CardBrand
    check_digit_valid: bool

    @classmethod
    def parse(cls, raw: str, *, field: str = CARD_NUMBER_FIELD) -> CardNumber:
        """The rules in this module's docstring; raises InvalidArgument on `field` with reason
        CARD_NUMBER_INVALID or CARD_BRAND_UNSUPPORTED, never echoing the input."""
        if len(raw) > MAX_RAW_CARD_NUMBER_LENGTH or not set(raw) <= _ASCII_DIGITS | _SEPARATORS:
            raise _number_invalid("must be digits, optionally grouped with spaces or dashes")
        digits = "".join(char for char in raw if char in _ASCII_DIGITS)
        if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
            raise _number_invalid(f"must have {MIN_DIGITS} to {MAX_DIGITS} digits")
        brand = brand_of(digits)
        if brand is None:
            raise InvalidArgument(
                [FieldViolation(field, "is not a card of a supported brand")],
                "cards of this brand are not supported",
                reason=Reason.CARD_BRAND_UNSUPPORTED,
            )
        if len(digits) not in _LENGTHS[brand]:
            raise _number_invalid("has the wrong number of digits for its brand")
        check_digit_valid = luhn_valid(digits)
        if not check_digit_valid and not _luhn_exempt(digits, brand):
            raise _number_invalid("is not a valid card number (check digit)")
        return cls(digits=digits, brand=brand, check_digit_valid=check_digit_valid)

    @property
    def last4(self) -> str:
        return self.digits[-4:]

    def __repr__(self) -> str:
        return f"CardNumber(brand={self.brand.value}, last4={self.last4})"

    __str__ = __repr__


def _luhn_exempt(digits: str, brand: CardBrand) -> bool:
    return brand is CardBrand.UNIONPAY and not _DISCOVER_COBADGED_UNIONPAY.matches(digits)


@dataclass(frozen=True, slots=True, order=True)
class Expiry:
    """The month a card expires in; valid through that month's last day (UTC)."""

    year: int
    month: int

    @classmethod
    def parse(cls, month: int, year: int, *, now: datetime) -> Expiry:
        """Month 1 to 12, a four-digit year at most MAX_YEARS_AHEAD ahead (INVALID_ARGUMENT on
        `expiry_month` / `expiry_year`); a past month is INVALID_ARGUMENT / CARD_EXPIRED."""
        violations = []
        if not 1 <= month <= 12:
            violations.append(FieldViolation("expiry_month", "must be 1 to 12"))
        if not 1000 <= year <= now.year + MAX_YEARS_AHEAD:
            violations.append(
                FieldViolation(
                    "expiry_year", f"must be four digits, at most {MAX_YEARS_AHEAD} years ahead"
                )
            )
        if violations:
            raise InvalidArgument(violations, "the expiry date is not valid")
        expiry = cls(year=year, month=month)
        if expiry.has_passed(now):
            raise InvalidArgument(
                [
                    FieldViolation("expiry_month", "the card has expired"),
                    FieldViolation("expiry_year", "the card has expired"),
                ],
                "the card has expired",
                reason=Reason.CARD_EXPIRED,
            )
        return expiry

    def has_passed(self, now: datetime) -> bool:
        """True from the first day of the month after the expiry month."""
        return (self.year, self.month) < (now.year, now.month)


def parse_holder_name(raw: str, *, field: str = "holder_name") -> str:
    return text_field(raw, field=field, max_length=MAX_HOLDER_NAME_LENGTH)


def card_not_active() -> FailedPrecondition:
    return FailedPrecondition("the card is no longer bound", reason=Reason.CARD_NOT_ACTIVE)


def refund_in_flight() -> FailedPrecondition:
    return FailedPrecondition(
        "a refund to this card is in flight: it can be unbound when the refund ends",
        reason=Reason.REFUND_IN_FLIGHT,
    )


@dataclass(slots=True)
class Card:
    """A bound (or formerly bound) card of one account.

    Unbinding is a soft delete: the card stays, UNBOUND, so refund history can still name it;
    it is never active again. Binding the same number again creates a new card (a new id),
    which is how an account rebinds a card it unbound earlier.
    """

    id: str
    account_id: str
    token: str
    """The card vault's token for the number."""
    fingerprint: str
    """A keyed hash of the number: equal for the same number, useless without the key."""
    brand: CardBrand
    last4: str
    expiry: Expiry
    holder_name: str
    bound_at: datetime
    status: CardStatus = CardStatus.ACTIVE
    unbound_at: datetime | None = None

    @classmethod
    def bind(
        cls,
        *,
        id: str,
        account_id: str,
        number: CardNumber,
        token: str,
        fingerprint: str,
        expiry: Expiry,
        holder_name: str,
        now: datetime,
    ) -> Card:
        if expiry.has_passed(now):
            raise ValueError("an expired card cannot be bound: parse the expiry against now")
        return cls(
            id=id,
            account_id=account_id,
            token=token,
            fingerprint=fingerprint,
            brand=number.brand,
            last4=number.last4,
            expiry=expiry,
            holder_name=holder_name,
            bound_at=now,
        )

    @property
    def is_active(self) -> bool:
        return self.status is CardStatus.ACTIVE

    def usable_for_refund(self, now: datetime) -> bool:
        """Bound and not expired: a refund may be paid to it now."""
        return self.is_active and not self.expiry.has_passed(now)

    def unbind(self, now: datetime, *, refund_holds: int) -> None:
        """Refused for an unbound card (CARD_NOT_ACTIVE) and while any refund holds it
        (REFUND_IN_FLIGHT): `refund_holds` is how many do, read under the card's lock."""
        if not self.is_active:
            raise card_not_active()
        if refund_holds > 0:
            raise refund_in_flight()
        self.status = CardStatus.UNBOUND
        self.unbound_at = now
