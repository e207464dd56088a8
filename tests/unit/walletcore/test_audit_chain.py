"""The audit hash chain as an auditor checks an export: pure functions, no database."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from walletcore.audit import GENESIS_HASH, canonical_json, compute_entry_hash, verify_entries


def build_chain(length: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    prev_hash = GENESIS_HASH
    for seq in range(1, length + 1):
        entry: dict[str, Any] = {
            "seq": seq,
            "occurred_at": f"2024-05-01T12:00:{seq:02d}.000000+00:00",
            "actor": "operator-7",
            "actor_role": "security_officer",
            "action": "freeze_account",
            "target": f"account:{seq}",
            "details": {"ticket": "SEC-42", "reason": "breach"},
            "prev_hash": prev_hash,
        }
        entry["entry_hash"] = compute_entry_hash(entry)
        entries.append(entry)
        prev_hash = entry["entry_hash"]
    return entries


def test_the_hash_is_sha256_of_the_documented_canonical_json() -> None:
    entry = {
        "seq": 1,
        "occurred_at": "2024-05-01T12:00:00.000000+00:00",
        "actor": "operator-7",
        "actor_role": "security_officer",
        "action": "freeze_account",
        "target": "account:1",
        "details": {"ticket": "SEC-42", "note": "Zürich"},
        "prev_hash": GENESIS_HASH,
    }
    # Spelled out by hand: an auditor's own implementation must arrive at these bytes.
    expected = (
        '{"action":"freeze_account","actor":"operator-7","actor_role":"security_officer",'
        '"details":{"note":"Zürich","ticket":"SEC-42"},'
        '"occurred_at":"2024-05-01T12:00:00.000000+00:00",'
        f'"prev_hash":"{GENESIS_HASH}","seq":1,"target":"account:1"}}'
    )
    assert canonical_json(entry) == expected
    assert compute_entry_hash(entry) == hashlib.sha256(expected.encode("utf-8")).hexdigest()


def test_an_intact_chain_verifies_and_reports_its_head() -> None:
    entries = build_chain(5)

    result = verify_entries(entries)

    assert result.ok
    assert result.entries_checked == 5
    assert result.first_invalid_seq is None
    assert result.problem is None
    assert result.head_hash == entries[-1]["entry_hash"]


def test_an_empty_chain_is_valid_and_headed_by_genesis() -> None:
    result = verify_entries([])

    assert result.ok
    assert result.head_hash == GENESIS_HASH


@pytest.mark.parametrize(
    ("field", "forged"),
    [
        ("occurred_at", "2024-05-01T11:00:00.000000+00:00"),
        ("actor", "operator-8"),
        ("actor_role", "kyc_reviewer"),
        ("action", "unfreeze_account"),
        ("target", "account:999"),
        ("details", {"ticket": "SEC-43", "reason": "breach"}),
        ("entry_hash", "f" * 64),
    ],
)
def test_an_edited_field_breaks_the_chain_at_that_entry(field: str, forged: Any) -> None:
    entries = build_chain(5)
    entries[2][field] = forged

    result = verify_entries(entries)

    assert not result.ok
    assert result.first_invalid_seq == 3
    assert result.entries_checked == 2
    assert result.head_hash == entries[1]["entry_hash"]


def test_an_edit_with_its_hash_recomputed_breaks_the_chain_at_the_next_entry() -> None:
    entries = build_chain(5)
    entries[2]["target"] = "account:999"
    entries[2]["entry_hash"] = compute_entry_hash(entries[2])

    result = verify_entries(entries)

    assert result.first_invalid_seq == 4
    assert result.problem == "entry 4 does not chain to the entry before it"


@pytest.mark.parametrize("deleted_seq", [1, 3])
def test_a_deleted_entry_is_reported_at_its_position(deleted_seq: int) -> None:
    entries = build_chain(5)
    del entries[deleted_seq - 1]

    result = verify_entries(entries)

    assert result.first_invalid_seq == deleted_seq
    assert result.problem == f"expected entry {deleted_seq}, found entry {deleted_seq + 1}"


def test_entries_presented_out_of_order_are_detected() -> None:
    entries = build_chain(5)
    entries[1], entries[3] = entries[3], entries[1]

    assert verify_entries(entries).first_invalid_seq == 2


def test_renumbered_entries_do_not_chain() -> None:
    entries = build_chain(5)
    entries[1]["seq"], entries[3]["seq"] = 4, 2
    entries.sort(key=lambda entry: entry["seq"])

    result = verify_entries(entries)

    assert result.first_invalid_seq == 2
    assert result.problem == "entry 2 does not chain to the entry before it"


def test_a_forged_entry_inserted_in_the_middle_breaks_the_chain_after_it() -> None:
    entries = build_chain(5)
    forged = {**entries[2], "target": "account:999", "prev_hash": entries[1]["entry_hash"]}
    forged["entry_hash"] = compute_entry_hash(forged)
    entries.insert(2, forged)

    result = verify_entries(entries)

    assert result.first_invalid_seq == 4
    assert result.problem == "expected entry 4, found entry 3"


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: entry.pop("prev_hash"),
        lambda entry: entry.update(seq="3"),
        lambda entry: entry.update(details={"unserialisable": object()}),
    ],
    ids=["missing field", "seq not an integer", "details not JSON"],
)
def test_a_malformed_entry_is_reported_not_raised(damage: Any) -> None:
    entries = build_chain(4)
    damage(entries[2])

    result = verify_entries(entries)

    assert not result.ok
    assert result.first_invalid_seq == 3


def test_a_later_page_verifies_from_the_entry_before_it() -> None:
    entries = build_chain(6)
    before = entries[2]

    good = verify_entries(entries[3:], after_seq=3, prev_hash=before["entry_hash"])
    wrong_anchor = verify_entries(entries[3:], after_seq=3, prev_hash=entries[1]["entry_hash"])

    assert good.ok
    assert good.entries_checked == 3
    assert wrong_anchor.first_invalid_seq == 4
