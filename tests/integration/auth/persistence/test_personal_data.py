"""No table holds a phone number or an email address in clear, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from services.auth.adapters import tables
from services.auth.domain.contacts import Email, Phone
from services.auth.domain.events import Actor
from services.auth.domain.pending import PendingContact, PendingContactPurpose
from services.auth.domain.proofs import ChallengePurpose, FactorMethod
from services.auth.domain.stepup import StepUpChallenge, StepUpPurpose
from tests.integration.auth.persistence.builders import START, NewUnitOfWork, make_account

PHONE = "+8613800138000"
EMAIL = "Alice.Liu@Example.com"
NEW_PHONE = "+8613900139000"
NEW_EMAIL = "li.new@example.org"
NEEDLES = ("8613800138000", "13800138000", "alice.liu@", "8613900139000", "li.new@")


def clear_text_in(value: Any) -> list[str]:
    """The needles found in one stored value, whatever its type."""
    if isinstance(value, bytes | bytearray | memoryview):
        haystack = bytes(value).decode("latin-1").casefold()
    else:
        haystack = str(value).casefold()
    return [needle for needle in NEEDLES if needle in haystack]


async def test_contacts_are_stored_only_encrypted_and_indexed(new_uow: NewUnitOfWork) -> None:
    account = make_account("acc-1", phone=PHONE, email=EMAIL)
    async with new_uow() as uow:
        await uow.accounts.add(account)
        await uow.pending_contacts.add(
            PendingContact(
                id="pc-1",
                purpose=PendingContactPurpose.ADD,
                account_id="acc-1",
                contact=Email.parse(NEW_EMAIL),
                challenge_id="otp-1",
                created_at=START,
                expires_at=START + timedelta(minutes=15),
                requested_by=Actor.user("acc-1"),
            )
        )
        await uow.step_up_challenges.add(
            StepUpChallenge.start(
                id="step-1",
                account_id="acc-1",
                purpose=StepUpPurpose.CHANGE_PHONE,
                object_id=NEW_PHONE,
                method=FactorMethod.SMS,
                otp_challenge_id="otp-2",
                now=START,
            )
        )
        await uow.notifier.send_code(
            Phone.parse(PHONE),
            code="123456",
            purpose=ChallengePurpose.STEP_UP,
            expires_at=START + timedelta(minutes=10),
        )
        await uow.commit()

    found: dict[str, list[str]] = {}
    rows_read: dict[str, int] = {}
    async with new_uow() as uow:
        for table in tables.metadata.sorted_tables:
            rows = (await uow.session.execute(select(table))).all()
            rows_read[table.name] = len(rows)
            for row in rows:
                for column, value in row._mapping.items():
                    if value is not None and (needles := clear_text_in(value)):
                        found[f"{table.name}.{column}"] = needles
        found_again = await uow.accounts.find_by_contact(Phone.parse(PHONE))
        pending = await uow.pending_contacts.get("pc-1")
        step_up = await uow.step_up_challenges.get("step-1")

    assert found == {}
    assert {name: rows_read[name] for name in ("account_contacts", "outbox")} == {
        "account_contacts": 2,
        "outbox": 1,
    }
    assert found_again == account
    assert pending is not None
    assert pending.contact == Email.parse(NEW_EMAIL)
    assert step_up is not None
    assert step_up.object_id == NEW_PHONE
