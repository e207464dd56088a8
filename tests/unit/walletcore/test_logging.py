from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from walletcore.logging import (
    configure_logging,
    current_request_id,
    redact,
    reset_request_id,
    set_request_id,
)


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """What configure_logging writes to stderr; the root logger is restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield capsys
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def lines(captured: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in captured.readouterr().err.splitlines()]


def test_each_record_is_one_json_object_with_service_and_request_id(
    stderr: pytest.CaptureFixture[str],
) -> None:
    configure_logging("auth", "INFO")
    token = set_request_id("req-1")
    try:
        logging.getLogger("auth.signin").info("signed in after %d tries", 2)
    finally:
        reset_request_id(token)
    logging.getLogger("auth.signin").warning("outside a request")

    first, second = lines(stderr)
    assert first["message"] == "signed in after 2 tries"
    assert (first["level"], first["logger"], first["service"]) == ("INFO", "auth.signin", "auth")
    assert first["request_id"] == "req-1"
    assert "time" in first
    assert second["request_id"] is None
    assert current_request_id() is None


def test_records_below_the_level_are_dropped(stderr: pytest.CaptureFixture[str]) -> None:
    configure_logging("auth", "WARNING")

    logging.getLogger("auth").info("chatter")

    assert lines(stderr) == []


@pytest.mark.parametrize(
    ("text", "secret", "mask"),
    [
        ("code sent to alice.smith+wallet@example.co.uk", "alice.smith", "[EMAIL]"),
        ("code sent to +8613800138000 by sms", "13800138000", "[PHONE]"),
        ("card 4111111111111111 bound", "4111111111111111", "[CARD]"),
        ("card 4111 1111 1111 1111 bound", "4111 1111", "[CARD]"),
        ("card 4111-1111-1111-1111 bound", "4111-1111", "[CARD]"),
        ("id 11010519491231002X seen", "110105194912310", "[ID]"),
        ("id 110105194912310021 seen", "110105194912310", "[ID]"),
        ("header authorization: Bearer abcDEF123456789_-.xyz", "abcDEF", "[REDACTED]"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl leaked", "eyJhbG", "[JWT]"),
    ],
)
def test_redaction_masks_personal_data_and_credentials(text: str, secret: str, mask: str) -> None:
    redacted = redact(text)

    assert secret not in redacted
    assert mask in redacted


@pytest.mark.parametrize(
    "text",
    [
        "rpc finished in 12.5 ms with code OK",
        "order 123456789012 refunded",  # 12 digits: an id, not a card
        "request 3f2b9c1e0d8a4b7c9e6f5a4b3c2d1e0f",
        "missing bearer token",
    ],
)
def test_redaction_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_the_filter_redacts_arguments_extras_and_tracebacks(
    stderr: pytest.CaptureFixture[str],
) -> None:
    configure_logging("binding", "INFO")
    logger = logging.getLogger("binding")

    try:
        raise ValueError("duplicate key (email)=(bob@example.com)")
    except ValueError:
        logger.exception(
            "binding card %s for %s", "5500005555555559", "+14155550123", extra={"to": "a@b.io"}
        )

    (record,) = lines(stderr)
    written = json.dumps(record)
    for secret in ("5500005555555559", "+14155550123", "a@b.io", "bob@example.com"):
        assert secret not in written
    assert record["message"] == "binding card [CARD] for [PHONE]"
    assert record["to"] == "[EMAIL]"
    assert "ValueError" in str(record["exc_info"])
