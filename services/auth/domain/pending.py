"""Contacts waiting for their first code: a registration, an added contact, a contact change.

Until the code sent to it comes back, a contact is not verified and belongs to nobody: these
records keep it (and for a registration, the already-hashed password) next to the challenge
that will prove it. They expire with the challenge and are used once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from .contacts import Contact, VerifiedContact
from .events import Actor
from .reasons import code_expired


class PendingContactPurpose(enum.StrEnum):
    REGISTRATION = "REGISTRATION"
    """A new account's first contact (AuthService.StartRegistration)."""
    ADD = "ADD"
    """A second contact of the kind the account lacks (AuthService.AddContact)."""
    CHANGE = "CHANGE"
    """A replacement, driven by binding (AccountStatusService.StartContactVerification)."""


@dataclass(slots=True)
class PendingContact:
    id: str
    """Also the id the client holds (registration_id, verification_id)."""
    purpose: PendingContactPurpose
    account_id: str | None
    """None for a registration."""
    contact: Contact
    challenge_id: str
    """The OtpChallenge whose code proves the contact."""
    created_at: datetime
    expires_at: datetime
    password_hash: str | None = None
    """Registration only: the password, hashed when the registration started."""
    requested_by: Actor | None = None
    """CHANGE only: who asked (the binding service, for the user or an officer)."""
    completed_at: datetime | None = None

    def ensure_open(self, now: datetime) -> None:
        """CODE_EXPIRED once used or past its challenge's lifetime."""
        if self.completed_at is not None or now >= self.expires_at:
            raise code_expired()

    def complete(self, *, contact_id: str, now: datetime) -> VerifiedContact:
        """The contact, now verified; call after the challenge accepted its code."""
        self.ensure_open(now)
        self.completed_at = now
        return VerifiedContact(id=contact_id, value=self.contact, verified_at=now)
