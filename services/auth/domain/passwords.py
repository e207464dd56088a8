"""The password policy: NFKC, 8 to 128 code points, no composition rules, no common passwords.

Common passwords come from the `zxcvbn` package, whose frequency lists were built from the
Xato corpus of 10 million leaked passwords (and from name, surname, English Wikipedia and
film/TV word lists). zxcvbn keeps each word only in the list where it ranks best, so a common
password that is also a common first name ("jennifer") sits in the names list; that is why the
top of every other list counts as common too. Comparison ignores case: "Password1" is as
common as "password1".
"""

from __future__ import annotations

import functools
import importlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from walletcore.errors import FieldViolation, InvalidArgument

from .contacts import Contact, Email, Phone
from .reasons import Reason

MIN_PASSWORD_LENGTH: Final = 8
MAX_PASSWORD_LENGTH: Final = 128
COMMON_PASSWORDS_TOP: Final = 10_000
"""How many of the most common leaked passwords are refused."""
COMMON_WORDS_TOP: Final = 1_000
"""How many of the top names and words of zxcvbn's other lists are refused."""
# A raw password this long cannot normalise to MAX_PASSWORD_LENGTH code points (at most four
# code points compose into one); refusing it early bounds the cost of normalising huge input.
_MAX_RAW_LENGTH: Final = 4 * MAX_PASSWORD_LENGTH


def normalize_password(password: str) -> str:
    """The form that is checked, hashed and verified, so that every Unicode spelling of the
    same characters is the same password."""
    return unicodedata.normalize("NFKC", password)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The refused passwords, lower-cased. Loaded once, on first use (about 0.1 s)."""
    # zxcvbn ships no type information, and its lists are data rather than API: read the one
    # module-level dict by name.
    lists = importlib.import_module("zxcvbn.frequency_lists").FREQUENCY_LISTS
    refused: set[str] = set()
    for name, words in lists.items():
        top = COMMON_PASSWORDS_TOP if name == "passwords" else COMMON_WORDS_TOP
        refused.update(str(word) for word in words[:top])
    return frozenset(refused)


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    refused: frozenset[str]
    """Lower-cased passwords that are refused whatever else holds (see `common_passwords`)."""

    @classmethod
    def default(cls) -> PasswordPolicy:
        return cls(common_passwords())

    def check(
        self, password: str, *, contacts: Iterable[Contact] = (), field: str = "password"
    ) -> str:
        """Returns the normalised password to hash, or raises InvalidArgument with reason
        PASSWORD_REJECTED and one violation on `field`. `contacts` are the account's own (or
        the one being registered): a password equal to one of them is refused."""
        if len(password) > _MAX_RAW_LENGTH:
            raise _rejected(field, f"must be at most {MAX_PASSWORD_LENGTH} characters")
        normalized = normalize_password(password)
        if not _is_encodable(normalized):
            raise _rejected(field, "must be valid Unicode text")
        if len(normalized) < MIN_PASSWORD_LENGTH:
            raise _rejected(field, f"must be at least {MIN_PASSWORD_LENGTH} characters")
        if len(normalized) > MAX_PASSWORD_LENGTH:
            raise _rejected(field, f"must be at most {MAX_PASSWORD_LENGTH} characters")
        folded = normalized.casefold()
        if folded in self.refused:
            raise _rejected(field, "is too common: choose a less predictable password")
        if folded in _contact_spellings(contacts):
            raise _rejected(field, "must not be your phone number or email address")
        return normalized


def _is_encodable(text: str) -> bool:
    # Lone surrogates can arrive from Python callers (never from protobuf) and cannot be hashed.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _contact_spellings(contacts: Iterable[Contact]) -> set[str]:
    """The ways a user might type their own contact as a password, case-folded."""
    spellings: set[str] = set()
    for contact in contacts:
        if isinstance(contact, Phone):
            spellings.update({contact.e164, contact.e164[1:], contact.national_number})
        elif isinstance(contact, Email):
            spellings.update({contact.address.casefold(), contact.address.rpartition("@")[0]})
    return {spelling.casefold() for spelling in spellings}


def _rejected(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(
        [FieldViolation(field, description)],
        "the password does not meet the password rules",
        reason=Reason.PASSWORD_REJECTED,
    )
