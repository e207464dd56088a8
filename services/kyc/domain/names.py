"""Legal names: how one is accepted on submission, and when two names are the same name.

Both the stored name and a compared one (binding's card holder) are reduced alike: Unicode
NFKC (full-width letters, ligatures and compatibility forms become their plain forms), case
folding (Straße = STRASSE), NFKC again (folding can leave a non-normalised sequence), and every
run of whitespace collapsed to one space with none at either end.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from services.kyc.domain.reasons import Reason, invalid

MAX_NAME_LENGTH: Final = 200


def normalise_legal_name(raw: str, *, field: str = "legal_name") -> str:
    """The name as stored: NFKC with whitespace collapsed (case kept, as on the document).
    1 to 200 characters, no control characters (NUL, which PostgreSQL refuses, included)."""
    name = " ".join(unicodedata.normalize("NFKC", raw).split())
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise invalid(
            field, f"must be 1 to {MAX_NAME_LENGTH} printable characters", Reason.LEGAL_NAME_INVALID
        )
    return name


def match_key(name: str) -> str:
    """What two names must share to be the same name."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


def names_match(verified: str, candidate: str) -> bool:
    return match_key(verified) == match_key(candidate)
