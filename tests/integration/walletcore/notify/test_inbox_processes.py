"""Several processes appending to one development inbox (auth's replicas, or a redelivery
racing the first delivery) never interleave their lines."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from pathlib import Path

from walletcore.notify.inbox import DevelopmentInbox, InboxMessage

WRITERS = 4
MESSAGES = 200
BODY = "x" * 3000  # larger than a pipe's atomic write, smaller than one write to a file


def append_many(path: Path, writer: int) -> None:
    inbox = DevelopmentInbox(path)
    for number in range(MESSAGES):
        inbox.append(
            InboxMessage(
                datetime.now(UTC), "sms", f"+86138000{writer:05d}", "", BODY, f"{writer}-{number}"
            )
        )


def test_concurrent_appends_from_processes_keep_every_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "inbox.jsonl"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=append_many, args=(path, n)) for n in range(WRITERS)]
    for process in writers:
        process.start()
    for process in writers:
        process.join()

    messages = DevelopmentInbox(path).messages()  # parses every line: a torn one would fail

    assert [process.exitcode for process in writers] == [0] * WRITERS
    assert sorted(m.idempotency_key for m in messages) == sorted(
        f"{w}-{n}" for w in range(WRITERS) for n in range(MESSAGES)
    )
    assert {m.body for m in messages} == {BODY}
