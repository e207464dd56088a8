"""Money in minor units with an ISO 4217 currency.

Amounts are integers of the currency's minor unit (fen, cents; yen have none), never floats,
so sums and comparisons are exact. A currency is one of ISO 4217's active alphabetic codes;
funds codes, precious metals and the testing codes (XTS, XXX) are refused, because nobody
captures a card payment in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from walletcore.errors import FieldViolation, InvalidArgument

from .reasons import Reason

# ISO 4217 active codes (list one, 2024 amendments), without X-codes other than the
# circulating ones (XAF, XCD, XOF, XPF) and without funds codes.
# One string read as words: the table stays readable at 22 codes a line.
ISO_4217_CURRENCIES: Final = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER
    ZAR ZMW ZWG
    """.split()  # noqa: SIM905
)

MAX_MINOR: Final = 2**63 - 1
"""The largest amount an int64 (the proto's and the columns' type) holds."""


def currency_violation(currency: str, field: str) -> FieldViolation | None:
    if currency not in ISO_4217_CURRENCIES:
        return FieldViolation(field, "must be an active ISO 4217 currency code in upper case")
    return None


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """A non-negative amount in minor units of an ISO 4217 currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not 0 <= self.minor <= MAX_MINOR:
            raise ValueError("an amount is 0 to 2**63-1 minor units")
        if self.currency not in ISO_4217_CURRENCIES:
            raise ValueError("not an ISO 4217 currency code")

    @classmethod
    def parse(cls, minor: int, currency: str, *, field: str, positive: bool) -> Money:
        """Money from a request; INVALID_ARGUMENT naming `field` (`amount.amount_minor`,
        `amount.currency`) otherwise. `positive` refuses zero with AMOUNT_INVALID too."""
        violations: list[FieldViolation] = []
        amount_bad = minor < 0 or minor > MAX_MINOR or (positive and minor == 0)
        if amount_bad:
            violations.append(FieldViolation(f"{field}.amount_minor", "must be more than zero"))
        currency_bad = currency_violation(currency, f"{field}.currency")
        if currency_bad is not None:
            violations.append(currency_bad)
        if violations:
            raise InvalidArgument(
                violations,
                "the amount is invalid",
                reason=Reason.AMOUNT_INVALID if amount_bad else None,
            )
        return cls(minor, currency)

    def same_currency(self, other: Money) -> bool:
        return self.currency == other.currency

    def __add__(self, other: Money) -> Money:
        self._require_same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._require_same(other)
        return Money(self.minor - other.minor, self.currency)

    def __le__(self, other: Money) -> bool:
        self._require_same(other)
        return self.minor <= other.minor

    def __lt__(self, other: Money) -> bool:
        self._require_same(other)
        return self.minor < other.minor

    def _require_same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError("amounts in different currencies do not combine")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)
