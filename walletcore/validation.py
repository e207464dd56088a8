"""Checks for the strings a request carries, made at the API edge before any of them reaches a
rule, a log line or a database.

PostgreSQL cannot store NUL in text (`invalid byte sequence for encoding "UTF8": 0x00`), every
column has a width, and control characters have no place in a name, a reason or a token. So a
service's API layer checks every string field of a request with these helpers before it calls a
use case; a bad value is INVALID_ARGUMENT with a BadRequest violation naming the field's proto
path, and nothing has run yet, so nothing is half-written:

    refresh_token = checked_token(request.refresh_token, "refresh_token", BEARER_SECRET)
    reason = checked_text(request.reason, "reason", max_length=MAX_REASON_LENGTH)

Ids and tokens the service issued are checked for their format (`TokenFormat`), which is
stricter than the text rule; free text is checked with `checked_text`. Lone surrogates cannot
arrive over gRPC (protobuf strings are UTF-8, and the parser refuses invalid UTF-8), but are
refused here too, so the helpers are safe on strings from anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from walletcore.errors import InvalidArgument

# C0 and C1 control characters (NUL among them) and the surrogate range.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# What a multiline text may hold besides printable characters.
_LINE_BREAKS: Final = frozenset("\n\r\t")
# Unicode's line and paragraph separators break a single line as surely as "\n" does.
_SEPARATORS: Final = re.compile("[\u2028\u2029]")


def text_problem(value: str, *, max_length: int, multiline: bool = False) -> str | None:
    """What is wrong with `value` as text of at most `max_length` characters, as a client-facing
    description; None when nothing is. NUL, other control characters (line breaks and tabs
    allowed when `multiline`) and lone surrogates are refused."""
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    for found in _CONTROL.finditer(value):
        char = found.group()
        if char == "\x00":
            return "must not contain NUL characters"
        if "\ud800" <= char <= "\udfff":
            return "must not contain lone surrogates"
        if not (multiline and char in _LINE_BREAKS):
            return "must not contain control characters"
    if not multiline and _SEPARATORS.search(value):
        return "must be a single line"
    return None


def checked_text(
    value: str, field: str, *, max_length: int, required: bool = False, multiline: bool = False
) -> str:
    """`value` when it is acceptable text (see `text_problem`); InvalidArgument on `field`
    otherwise, and also when it is empty and `required`."""
    if required and not value:
        raise InvalidArgument.field(field, "is required")
    problem = text_problem(value, max_length=max_length, multiline=multiline)
    if problem is not None:
        raise InvalidArgument.field(field, problem)
    return value


@dataclass(frozen=True, slots=True)
class TokenFormat:
    """The spelling of an id or token a service hands out: anything else cannot name one of
    its rows, so it is refused before any lookup."""

    pattern: re.Pattern[str]
    description: str
    """Client-facing, e.g. "is not a refresh token this service issued"."""

    def matches(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None


_URL_SAFE: Final = r"A-Za-z0-9_\-"

ISSUED_ID: Final = TokenFormat(
    re.compile(f"[{_URL_SAFE}]{{1,128}}"), "is not an id this service issued"
)
"""Ids of rows (uuid4 hex in practice; the url-safe alphabet and the 128-character columns
leave room for other opaque ids)."""

BEARER_SECRET: Final = TokenFormat(
    re.compile(f"[{_URL_SAFE}]{{1,128}}\\.[{_URL_SAFE}]{{1,256}}"),
    "is not a token this service issued",
)
"""`<row id>.<secret>`: the row's id, a dot, and a `secrets.token_urlsafe` secret (refresh
tokens, sign-in tickets)."""

COMPACT_JWS: Final = TokenFormat(
    re.compile(f"[{_URL_SAFE}]{{1,4096}}\\.[{_URL_SAFE}]{{1,4096}}\\.[{_URL_SAFE}]{{0,1024}}"),
    "is not a signed token",
)
"""A JWS in compact serialization (header.payload.signature, base64url): step-up grants."""

PAGE_TOKEN: Final = TokenFormat(
    re.compile(f"[{_URL_SAFE}=]{{1,1024}}"), "is not a page token this service issued"
)
"""Page tokens: an id or sealed, url-safe base64 (padded or not)."""


def checked_token(
    value: str, field: str, token_format: TokenFormat, *, required: bool = True
) -> str:
    """`value` when it is spelled as `token_format` says; InvalidArgument on `field` otherwise.
    An empty value is "is required" when `required`, and passes when not."""
    if not value:
        if required:
            raise InvalidArgument.field(field, "is required")
        return value
    if not token_format.matches(value):
        raise InvalidArgument.field(field, token_format.description)
    return value
