"""Replacing an account's verified phone or email: the workflow binding drives.

Auth owns the verified contacts, sends the code and applies the change; binding owns the
workflow around it:

    STARTED ──complete(changed_at)──► COMPLETED
       │
       └──abandon(reason)──► ABANDONED   (code expired, too many wrong codes, the contact
                                          taken meanwhile, auth no longer knows it)

A change is started either by the user, with a CHANGE_PHONE / CHANGE_EMAIL step-up grant from
the old contact whose object is the new value, or by a security officer for a user who lost
the old contact, which requires the account's KYC to be APPROVED. Each is completed only
through the path that started it: a user's change by its account, an assisted change by an
officer. A wrong code leaves the change STARTED (auth counts the attempts); a closed change
answers what closed it, and a completed one CHANGE_NOT_FOUND (nothing is in progress).

Binding keeps neither the new contact nor the code: auth has both, and binding needs only
the contact's kind and auth's verification id.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from walletcore.errors import DomainError

from .reasons import (
    change_not_found,
    code_expired,
    contact_in_use,
    kyc_not_approved,
    text_field,
    too_many_attempts,
)

MAX_ASSIST_REASON_LENGTH: Final = 500
MAX_TICKET_REF_LENGTH: Final = 64


class ContactKind(enum.StrEnum):
    PHONE = "PHONE"
    EMAIL = "EMAIL"


GRANT_PURPOSES: Final = {ContactKind.PHONE: "CHANGE_PHONE", ContactKind.EMAIL: "CHANGE_EMAIL"}
"""The step-up purpose (wallet.auth.v1.StepUpPurpose, without its prefix) a user's change of
each kind needs."""


class ChangeState(enum.StrEnum):
    STARTED = "STARTED"
    COMPLETED = "COMPLETED"
    ABANDONED = "ABANDONED"


class AbandonReason(enum.StrEnum):
    CODE_EXPIRED = "CODE_EXPIRED"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    CONTACT_IN_USE = "CONTACT_IN_USE"
    VERIFICATION_LOST = "VERIFICATION_LOST"
    """Auth no longer knows the verification."""


def refusal_for(reason: AbandonReason) -> DomainError:
    """The error a change closed for `reason` answers, then and on every later attempt."""
    if reason is AbandonReason.CODE_EXPIRED:
        return code_expired()
    if reason is AbandonReason.TOO_MANY_ATTEMPTS:
        return too_many_attempts()
    if reason is AbandonReason.CONTACT_IN_USE:
        return contact_in_use()
    return change_not_found()


@dataclass(frozen=True, slots=True)
class Assistance:
    """Who handled an officer-assisted change, and under which support ticket. The officer's
    free-text reason goes to the audit trail, not here."""

    operator_id: str
    ticket_ref: str


def parse_assistance(operator_id: str, *, reason: str, ticket_ref: str) -> tuple[Assistance, str]:
    """The assistance and the trimmed reason; INVALID_ARGUMENT on `reason` (1 to 500) or
    `ticket_ref` (1 to 64 printable characters)."""
    checked_reason = text_field(reason, field="reason", max_length=MAX_ASSIST_REASON_LENGTH)
    checked_ticket = text_field(ticket_ref, field="ticket_ref", max_length=MAX_TICKET_REF_LENGTH)
    return Assistance(operator_id=operator_id, ticket_ref=checked_ticket), checked_reason


@dataclass(slots=True)
class ContactChange:
    id: str
    account_id: str
    kind: ContactKind
    verification_id: str
    """Auth's id for the code it sent (StartContactVerification)."""
    started_at: datetime
    expires_at: datetime
    """When the code stops being valid, as auth said."""
    assistance: Assistance | None = None
    state: ChangeState = ChangeState.STARTED
    closed_at: datetime | None = None
    abandon_reason: AbandonReason | None = None

    @classmethod
    def start_by_user(
        cls,
        *,
        id: str,
        account_id: str,
        kind: ContactKind,
        verification_id: str,
        now: datetime,
        expires_at: datetime,
    ) -> ContactChange:
        """After the user's grant was accepted and auth sent the code."""
        return cls(id, account_id, kind, verification_id, now, expires_at)

    @classmethod
    def start_assisted(
        cls,
        *,
        id: str,
        account_id: str,
        kind: ContactKind,
        verification_id: str,
        now: datetime,
        expires_at: datetime,
        assistance: Assistance,
        kyc_approved: bool,
    ) -> ContactChange:
        """An officer's change; FAILED_PRECONDITION / KYC_NOT_APPROVED unless the account's
        KYC is approved (checked before auth is asked to send anything)."""
        require_kyc_approved(kyc_approved)
        return cls(id, account_id, kind, verification_id, now, expires_at, assistance)

    @property
    def is_assisted(self) -> bool:
        return self.assistance is not None

    def visible_to_user(self, account_id: str) -> bool:
        """Whether the user `account_id` may complete it: their own, not an officer's."""
        return self.account_id == account_id and not self.is_assisted

    def require_open(self, now: datetime) -> AbandonReason | None:
        """Raises what a closed change answers. For a change whose code has expired returns
        CODE_EXPIRED, for the caller to `abandon` it and persist that before refusing."""
        if self.state is ChangeState.COMPLETED:
            raise change_not_found()
        if self.state is ChangeState.ABANDONED:
            raise refusal_for(self.abandon_reason or AbandonReason.VERIFICATION_LOST)
        if now >= self.expires_at:
            return AbandonReason.CODE_EXPIRED
        return None

    def complete(self, changed_at: datetime) -> None:
        self._close(ChangeState.COMPLETED, changed_at)

    def abandon(self, reason: AbandonReason, now: datetime) -> None:
        self._close(ChangeState.ABANDONED, now)
        self.abandon_reason = reason

    def _close(self, state: ChangeState, at: datetime) -> None:
        if self.state is not ChangeState.STARTED:
            raise ValueError(f"a {self.state} change cannot change state again")
        self.state = state
        self.closed_at = at


def require_kyc_approved(approved: bool) -> None:
    if not approved:
        raise kyc_not_approved()
