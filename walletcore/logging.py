"""Structured JSON logs: one object per line on stderr, tagged with service and request id.

`RedactionFilter` is defence in depth, not the rule: code must not log secrets or personal data
in the first place (SPEC section 7). It masks what slipped through anyway and looks like an
e-mail address, an E.164 phone number, an 18-character resident identity number, a card number
(13-19 digits, spaces or dashes allowed) or a bearer token / JWT: in the message, its
arguments, string extras and the formatted traceback.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from typing import Final

from pythonjsonlogger.json import JsonFormatter

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(request_id: str | None) -> contextvars.Token[str | None]:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)


# Order matters: tokens before digit runs, phones (leading +) and identity numbers before cards.
_REDACTIONS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"(?i)\bbearer\s+[\w.~+/-]{16,}=*"), "Bearer [REDACTED]"),
    (re.compile(r"\beyJ[\w-]*\.[\w-]*\.[\w-]*"), "[JWT]"),
    (re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+"), "[EMAIL]"),
    (re.compile(r"\+[1-9]\d{6,14}(?!\d)"), "[PHONE]"),
    (re.compile(r"(?<!\w)\d{17}[\dXx](?!\w)"), "[ID]"),
    (re.compile(r"(?<!\w)(?:\d[ -]?){12,18}\d(?!\w)"), "[CARD]"),
)

# Attributes every LogRecord has; anything else on a record is an `extra=` field.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Set by our own code with values that cannot carry personal data (the per-RPC line's method
# is one the server serves, its code a status name, its duration a number).
_TRUSTED_EXTRAS: Final = frozenset(
    {"request_id", "service", "grpc_method", "grpc_code", "duration_ms"}
)


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactionFilter(logging.Filter):
    """Masks personal data and credentials in a record before any handler formats it."""

    _traceback_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        # Format once and drop the args: a masked value could no longer fill a %d placeholder.
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            # Exception messages often quote the offending value (e.g. a unique-key conflict).
            record.exc_text = redact(self._traceback_formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name, value in list(vars(record).items()):
            is_extra = name not in _RECORD_ATTRIBUTES and name not in _TRUSTED_EXTRAS
            if is_extra and isinstance(value, str):
                setattr(record, name, redact(value))
        return True


class RequestContextFilter(logging.Filter):
    """Stamps the current request id on every record logged while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


def configure_logging(service_name: str, level: str | int = logging.INFO) -> None:
    """Send every logger's records to stderr as JSON lines; replaces earlier root handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": service_name},
            timestamp="time",
        )
    )
    # On the handler, not a logger: handler filters see records from every propagating logger.
    handler.addFilter(RequestContextFilter())
    handler.addFilter(RedactionFilter())
    # The JSON lines show none of these, and gathering them is a third of a record's cost
    # (one line per RPC): the caller's frame, thread and process (the logging HOWTO's
    # "Optimization" settings).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for previous in root.handlers[:]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level)
