"""The edge checks every service's API layer applies to request strings."""

from __future__ import annotations

import secrets
import uuid

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from walletcore.errors import FieldViolation, InvalidArgument
from walletcore.validation import (
    BEARER_SECRET,
    COMPACT_JWS,
    ISSUED_ID,
    PAGE_TOKEN,
    TokenFormat,
    checked_text,
    checked_token,
    text_problem,
)


def violations(error: pytest.ExceptionInfo[InvalidArgument]) -> list[FieldViolation]:
    return list(error.value.violations)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("fr\x00ud", "must not contain NUL characters"),
        ("\x1b[2J", "must not contain control characters"),
        ("tab\there", "must not contain control characters"),
        ("\x85", "must not contain control characters"),
        ("one\u2028two", "must be a single line"),
        ("\ud800", "must not contain lone surrogates"),
        ("x" * 11, "must be at most 10 characters"),
    ],
)
def test_text_that_no_column_or_line_can_hold_is_refused(value: str, problem: str) -> None:
    assert text_problem(value, max_length=10) == problem


@pytest.mark.parametrize("value", ["", "Zoë 🙂", "a b", "x" * 10, "中文名字"])
def test_ordinary_text_of_any_script_passes(value: str) -> None:
    assert text_problem(value, max_length=10) is None


def test_multiline_text_may_break_lines_but_not_hold_nul() -> None:
    assert text_problem("line one\nline\ttwo\r\n", max_length=50, multiline=True) is None
    assert text_problem("a\n\x00", max_length=50, multiline=True) == (
        "must not contain NUL characters"
    )


def test_a_refused_text_names_its_field() -> None:
    with pytest.raises(InvalidArgument) as refused:
        checked_text("a\x00", "operator_assisted.reason", max_length=10)

    assert violations(refused) == [
        FieldViolation("operator_assisted.reason", "must not contain NUL characters")
    ]


def test_required_text_refuses_empty() -> None:
    with pytest.raises(InvalidArgument) as refused:
        checked_text("", "password", max_length=10, required=True)

    assert violations(refused) == [FieldViolation("password", "is required")]


@given(st.text())
@example("\x00")
def test_any_text_that_passes_holds_nothing_postgresql_refuses(value: str) -> None:
    if text_problem(value, max_length=1_000) is None:
        value.encode("utf-8")  # no lone surrogate
        assert "\x00" not in value


def test_the_tokens_a_service_issues_match_their_formats() -> None:
    row_id = uuid.uuid4().hex

    assert ISSUED_ID.matches(row_id)
    assert BEARER_SECRET.matches(f"{row_id}.{secrets.token_urlsafe(32)}")
    assert COMPACT_JWS.matches("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl")
    assert PAGE_TOKEN.matches("c2VhbGVk" + "==")


@pytest.mark.parametrize(
    ("token_format", "value"),
    [
        (BEARER_SECRET, "\x00.0"),  # the refresh token that once answered INTERNAL
        (BEARER_SECRET, "no-dot"),
        (BEARER_SECRET, "a.b.c"),
        (ISSUED_ID, "id with space"),
        (ISSUED_ID, "x" * 129),
        (COMPACT_JWS, "a.b"),
        (COMPACT_JWS, "a.b\x00.c"),
        (PAGE_TOKEN, "page/token"),
    ],
)
def test_anything_else_does_not_match(token_format: TokenFormat, value: str) -> None:
    assert not token_format.matches(value)


def test_a_refused_token_names_its_field_and_empty_is_required() -> None:
    with pytest.raises(InvalidArgument) as malformed:
        checked_token("\x00.0", "refresh_token", BEARER_SECRET)
    with pytest.raises(InvalidArgument) as missing:
        checked_token("", "refresh_token", BEARER_SECRET)

    assert violations(malformed) == [
        FieldViolation("refresh_token", "is not a token this service issued")
    ]
    assert violations(missing) == [FieldViolation("refresh_token", "is required")]


def test_an_optional_token_may_be_empty() -> None:
    assert checked_token("", "page.page_token", PAGE_TOKEN, required=False) == ""
