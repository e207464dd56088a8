"""An enumerator with a list of phone numbers and e-mail addresses asks auth which of them have
an account, through the three doors that take a contact: a password reset, a sign-up, and a
signed-in account adding a contact. Each door answers a known contact and an unknown one alike
(everything but the random id and the masked destination's letters is equal, on a clock that
stands still), on PostgreSQL with the Redis limiter. The medians of the reply times are
printed, not asserted: one machine's timing proves nothing either way (bench_enumeration.py
measures the use cases alone; test_enumeration_work.py proves equal work without a clock).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

import pytest

from services.auth.domain.contacts import Contact, Email, Phone
from services.auth.service.fakes import FakeClock
from tests.api.auth.access_helpers import seed_account
from tests.api.auth.harness import (
    DEFAULT_PASSWORD,
    AuthTestApp,
    Metadata,
    StartAuth,
    email_contact,
    phone_contact,
    request_id,
)
from tests.api.auth.recovery_helpers import SMS
from tests.support.figures import record
from wallet.auth.v1 import auth_service_pb2 as pb
from walletcore.clock import utc_now

PAIRS = 7
"""Known and unknown contacts per door. Reset and sign-up both charge the caller's address
(codes_sent_per_client_address_hour, 30): 2 x 2 x 7 = 28 fits in one test's namespace."""
ADD_CONTACT_PAIRS = 5
"""AddContact charges the asking account (codes_sent_to_new_contacts_per_account_day, 10):
2 x 5 = 10 fits one account's day."""

Probe = Callable[[str], Awaitable[Hashable]]
"""Asks a door about one contact; returns what the enumerator can see of the reply."""


@dataclass
class Door:
    name: str
    replies: dict[bool, set[Hashable]] = field(default_factory=lambda: {True: set(), False: set()})
    seconds: dict[bool, list[float]] = field(default_factory=lambda: {True: [], False: []})

    async def ask(self, probe: Probe, contact: str, *, known: bool) -> None:
        started = time.perf_counter()
        reply = await probe(contact)
        self.seconds[known].append(time.perf_counter() - started)
        self.replies[known].add(reply)

    def median_ms(self, known: bool) -> float:
        return statistics.median(self.seconds[known]) * 1000


async def interleaved(
    app: AuthTestApp,
    door: Door,
    probe: Probe,
    new: Callable[[], str],
    parse: Callable[[str], Contact],
    pairs: int,
) -> None:
    """`pairs` known and `pairs` unknown contacts, alternating, so drift hits both alike."""
    for _ in range(pairs):
        known = new()
        await seed_account(app, parse(known))
        await door.ask(probe, known, known=True)
        await door.ask(probe, new(), known=False)


@pytest.mark.parametrize("auth_backend", ["postgresql"], indirect=True)
async def test_reset_sign_up_and_add_contact_answer_a_known_contact_as_an_unknown_one(
    start_auth: StartAuth,
) -> None:
    async with start_auth(clock=FakeClock(utc_now())) as app:
        asker = await app.register()  # by phone: it may add an e-mail
        signed_in: Metadata = asker.metadata

        async def reset(phone: str) -> Hashable:
            reply = await app.public.StartCredentialReset(
                pb.StartCredentialResetRequest(
                    request_id=request_id(), identifier=phone_contact(phone), channel=SMS
                )
            )
            return len(reply.reset_id), reply.expires_at.ToSeconds()

        async def sign_up(phone: str) -> Hashable:
            reply = await app.public.StartRegistration(
                pb.StartRegistrationRequest(
                    request_id=request_id(), password=DEFAULT_PASSWORD, contact=phone_contact(phone)
                )
            )
            return len(reply.registration_id), reply.expires_at.ToSeconds()

        async def add_contact(address: str) -> Hashable:
            reply = await app.public.AddContact(
                pb.AddContactRequest(request_id=request_id(), contact=email_contact(address)),
                metadata=signed_in,
            )
            return (
                tuple(f.name for f, _ in reply.ListFields()),
                len(reply.verification_id),
                len(reply.masked_destination),
                reply.expires_at.ToSeconds(),
            )

        doors: list[tuple[Door, Probe, Callable[[], str], Callable[[str], Contact], int]] = [
            (Door("reset (StartCredentialReset)"), reset, app.new_phone, Phone.parse, PAIRS),
            (Door("sign-up (StartRegistration)"), sign_up, app.new_phone, Phone.parse, PAIRS),
            (
                Door("contact change (AddContact)"),
                add_contact,
                app.new_email,
                Email.parse,
                ADD_CONTACT_PAIRS,
            ),
        ]
        for door, probe, new, parse, pairs in doors:
            await interleaved(app, door, probe, new, parse, pairs)

    for door, *_, pairs in doors:
        assert len(door.replies[True]) == 1, door.name
        assert door.replies[True] == door.replies[False], door.name
        record(
            f"enumeration through {door.name} (PostgreSQL)",
            f"{pairs} known and {pairs} unknown contacts: 1 distinct reply for both; median "
            f"reply {door.median_ms(True):.1f} ms known, {door.median_ms(False):.1f} ms unknown",
        )
