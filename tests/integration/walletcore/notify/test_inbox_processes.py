"""Several processes appending to one development inbox (auth's replicas, or a redelivery
racing the first delivery) never interleave their lines."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from walletcore.notify.inbox import DevelopmentInbox, InboxMessage

WRITERS = 4
MESSAGES = 500
BODY = "x" * 3000  # larger than a pipe's atomic write, smaller than one write to a file


def append_many(path: Path, writer: int) -> None:
    inbox = DevelopmentInbox(path)
    for number in range(MESSAGES):
        inbox.append(
            InboxMessage(
                datetime.now(UTC), "sms", f"+86138000{writer:05d}", "", BODY, f"{writer}-{number}"
            )
        )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks its writers")
def test_concurrent_appends_from_processes_keep_every_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "inbox.jsonl"
    start, go = os.pipe()  # every writer waits for one byte, so they append at the same time
    children = []
    for writer in range(WRITERS):
        # fork, not spawn: a child that imports nothing starts at once. It only appends and
        # leaves with os._exit, never returning into pytest.
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.read(start, 1)
                append_many(path, writer)
                status = 0
            finally:
                os._exit(status)
        children.append(pid)
    os.write(go, b"." * WRITERS)
    os.close(go)
    os.close(start)
    statuses = [os.waitpid(pid, 0)[1] for pid in children]

    messages = DevelopmentInbox(path).messages()  # parses every line: a torn one would fail

    assert [os.waitstatus_to_exitcode(status) for status in statuses] == [0] * WRITERS
    assert sorted(m.idempotency_key for m in messages) == sorted(
        f"{w}-{n}" for w in range(WRITERS) for n in range(MESSAGES)
    )
    assert {m.body for m in messages} == {BODY}
