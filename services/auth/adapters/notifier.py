"""The `Notifier` port over the transactional outbox: auth's SMS and e-mail texts.

`OutboxNotifier` renders each message and writes it, sealed, to the outbox in the unit of
work's own transaction, so it is delivered if and only if the state change commits. The
texts follow what people expect from a wallet:

- A code message names what the code is for, when it expires and that it must never be
  shared. Codes that change something a stranger could have asked for (a password reset, a
  self-freeze) say what entering the code does and that the message can be ignored otherwise.
- A security notice says what happened, when and from which (masked) address, and what to do
  if it was not the holder. It carries only masked contacts, and never text a client chose
  (a device name could otherwise carry a phishing line into the user's inbox).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from services.auth.domain.contacts import Contact, ContactKind, Email, Phone
from services.auth.domain.events import ActorKind, SecurityEvent, SecurityEventType
from services.auth.domain.proofs import ChallengePurpose
from walletcore.addresses import mask_client_address
from walletcore.clock import Clock, utc_now
from walletcore.db import Executor
from walletcore.notify import EmailMessage, NotificationOutbox, SmsMessage

PRODUCT: Final = "Wallet"

_NEVER_SHARE: Final = "Never share it: Wallet staff will never ask for it."
_IF_NOT_YOU: Final = (
    "If this wasn't you, freeze your account at once in the Wallet app (no password needed) "
    "and contact Wallet support."
)
_DECOY_DESTINATIONS: Final[Mapping[ContactKind, Contact]] = {
    ContactKind.PHONE: Phone("+10000000000"),
    ContactKind.EMAIL: Email("decoy@example.com"),
}
_DECOY_CODE: Final = "000000"
_CONTACT_NOUNS: Final = {ContactKind.PHONE.value: "phone number", ContactKind.EMAIL.value: "email"}


@dataclass(frozen=True, slots=True)
class _CodeText:
    subject: str
    """What the code is for, as an e-mail subject."""
    intro: str
    """Leads into the code: `{intro} is 123456.`"""
    consequence: str = ""
    """What entering the code does, and what to do if it was not the holder who asked."""


_CODE_TEXTS: Final[Mapping[ChallengePurpose, _CodeText]] = {
    ChallengePurpose.REGISTRATION: _CodeText(
        "Your Wallet sign-up code", "Your Wallet sign-up code"
    ),
    ChallengePurpose.CONTACT_VERIFICATION: _CodeText(
        "Confirm your new Wallet contact",
        "Your Wallet code to add this {noun} to your account",
    ),
    ChallengePurpose.CONTACT_CHANGE: _CodeText(
        "Confirm your new Wallet contact",
        "Your Wallet code to make this your account's {noun}",
    ),
    ChallengePurpose.CREDENTIAL_RESET: _CodeText(
        "Your Wallet password reset code",
        "Your Wallet password reset code",
        "Entering it lets you set a new password and signs out every device. If you did not "
        "ask to reset your password, ignore this message: your password stays as it is.",
    ),
    ChallengePurpose.STEP_UP: _CodeText(
        "Confirm a sensitive action in Wallet",
        "Your Wallet code to confirm a sensitive action",
        "If you did not start one, ignore this message and consider changing your password.",
    ),
    ChallengePurpose.SELF_FREEZE: _CodeText(
        "Your Wallet account freeze code",
        "Your Wallet code to freeze your account",
        "Entering it freezes your account at once and signs out every device; only Wallet "
        "support can unfreeze it. If you did not ask for this, ignore this message: nothing "
        "changes without the code.",
    ),
}


def code_message(
    destination: Contact, *, code: str, purpose: ChallengePurpose, lifetime: timedelta
) -> SmsMessage | EmailMessage:
    """The SMS (to a phone) or e-mail (to an address) carrying `code` for `purpose`."""
    template = _CODE_TEXTS.get(purpose)
    if template is None:
        raise ValueError(f"{purpose} is never proved with a sent code")
    noun = _CONTACT_NOUNS[destination.kind.value]
    minutes = max(1, math.ceil(lifetime.total_seconds() / 60))
    sentences = [
        f"{template.intro.format(noun=noun)} is {code}.",
        f"It expires in {minutes} minute{'s' if minutes != 1 else ''}.",
        _NEVER_SHARE,
    ]
    if template.consequence:
        sentences.append(template.consequence)
    return _message(destination, template.subject, " ".join(sentences))


def notice_message(recipient: Contact, event: SecurityEvent) -> SmsMessage | EmailMessage:
    """One security notice to one of the account's contacts."""
    what = _happened(event)
    when = event.occurred_at.strftime("%Y-%m-%d %H:%M UTC")
    address = mask_client_address(event.origin.client_address)
    where = f" from {address}" if address and event.actor.kind is ActorKind.USER else ""
    text = f"{PRODUCT} security: {what} ({when}{where}). {_advice(event)}"
    return _message(recipient, f"{PRODUCT} security notice: {_SUBJECTS[event.type]}", text)


_SUBJECTS: Final[Mapping[SecurityEventType, str]] = {
    SecurityEventType.ACCOUNT_CREATED: "account created",
    SecurityEventType.SIGN_IN: "new sign-in",
    SecurityEventType.SIGN_IN_FAILED: "failed sign-in",
    SecurityEventType.SIGN_IN_LOCKED: "sign-in locked",
    SecurityEventType.SIGN_OUT: "signed out",
    SecurityEventType.SESSION_REVOKED: "session ended",
    SecurityEventType.REFRESH_TOKEN_REUSED: "session ended for safety",
    SecurityEventType.CREDENTIAL_RESET: "password reset",
    SecurityEventType.TOTP_ENABLED: "two-factor authentication on",
    SecurityEventType.TOTP_DISABLED: "two-factor authentication off",
    SecurityEventType.RECOVERY_CODES_REGENERATED: "new recovery codes",
    SecurityEventType.RECOVERY_CODE_USED: "recovery code used",
    SecurityEventType.ACCOUNT_FROZEN: "account frozen",
    SecurityEventType.ACCOUNT_UNFROZEN: "account unfrozen",
    SecurityEventType.CONTACT_ADDED: "contact added",
    SecurityEventType.CONTACT_CHANGED: "contact changed",
    SecurityEventType.STEP_UP_GRANTED: "sensitive action confirmed",
}


def _happened(event: SecurityEvent) -> str:
    details = event.details
    noun = _CONTACT_NOUNS.get(details.get("kind", ""), "contact")
    match event.type:
        case SecurityEventType.ACCOUNT_CREATED:
            return "your account was created"
        case SecurityEventType.SIGN_IN:
            return "your account was signed in to from a new device"
        case SecurityEventType.SIGN_IN_FAILED:
            return "a sign-in to your account failed"
        case SecurityEventType.SIGN_IN_LOCKED:
            return "sign-in to your account was locked after repeated wrong passwords"
        case SecurityEventType.SIGN_OUT:
            return "a device signed out of your account"
        case SecurityEventType.SESSION_REVOKED:
            return "a signed-in device was signed out of your account"
        case SecurityEventType.REFRESH_TOKEN_REUSED:
            return "a signed-in device was signed out because its sign-in was used twice"
        case SecurityEventType.CREDENTIAL_RESET:
            return "your password was reset and every device was signed out"
        case SecurityEventType.TOTP_ENABLED:
            return "two-factor authentication with an authenticator app was turned on"
        case SecurityEventType.TOTP_DISABLED:
            return "two-factor authentication with an authenticator app was turned off"
        case SecurityEventType.RECOVERY_CODES_REGENERATED:
            return "new recovery codes were created; the old ones no longer work"
        case SecurityEventType.RECOVERY_CODE_USED:
            return f"a recovery code was used; {_count(details.get('remaining'))} remain unused"
        case SecurityEventType.ACCOUNT_FROZEN:
            by = "at your request" if event.actor.kind is ActorKind.USER else "by Wallet security"
            return f"your account was frozen {by} and every device was signed out"
        case SecurityEventType.ACCOUNT_UNFROZEN:
            return "your account was unfrozen by Wallet security"
        case SecurityEventType.CONTACT_ADDED:
            return f"the {noun} {details.get('contact', '')} was added to your account"
        case SecurityEventType.CONTACT_CHANGED:
            old, new = details.get("old_contact", ""), details.get("new_contact", "")
            return f"your account's {noun} was changed from {old} to {new}"
        case SecurityEventType.STEP_UP_GRANTED:
            return "a sensitive action on your account was confirmed"


def _count(value: str | None) -> str:
    return value if value is not None and value.isdigit() else "some"


def _advice(event: SecurityEvent) -> str:
    match event.type:
        case SecurityEventType.ACCOUNT_FROZEN:
            return "To unfreeze it, contact Wallet support."
        case SecurityEventType.ACCOUNT_UNFROZEN:
            return "If you did not ask for this, contact Wallet support at once."
        case SecurityEventType.SIGN_IN_LOCKED:
            return (
                "If this wasn't you, someone may be guessing your password: reset it. "
                "You can always sign in again after a password reset."
            )
        case _:
            return _IF_NOT_YOU


def _message(to: Contact, subject: str, text: str) -> SmsMessage | EmailMessage:
    if isinstance(to, Phone):
        return SmsMessage(to=to.e164, text=text)
    if not isinstance(to, Email):  # an invariant, checked also under python -O
        raise TypeError("a contact is a phone or an e-mail")
    return EmailMessage(to=to.address, subject=subject, text=text)


class OutboxNotifier:
    """Writes auth's messages to the outbox through `executor`, the unit of work's session."""

    def __init__(
        self, outbox: NotificationOutbox, executor: Executor, *, clock: Clock = utc_now
    ) -> None:
        self._outbox = outbox
        self._executor = executor
        self._clock = clock

    async def send_code(
        self, destination: Contact, *, code: str, purpose: ChallengePurpose, expires_at: datetime
    ) -> None:
        lifetime = expires_at - self._clock()
        message = code_message(destination, code=code, purpose=purpose, lifetime=lifetime)
        await self._outbox.enqueue(self._executor, message)

    async def security_notice(self, recipients: Sequence[Contact], event: SecurityEvent) -> None:
        for recipient in recipients:
            await self._outbox.enqueue(self._executor, notice_message(recipient, event))

    async def decoy_code(
        self, kind: ContactKind, *, purpose: ChallengePurpose, expires_at: datetime
    ) -> None:
        # Rendered and sealed like a real code, to a placeholder nobody owns, and written
        # settled: the outbox never delivers it.
        lifetime = expires_at - self._clock()
        message = code_message(
            _DECOY_DESTINATIONS[kind], code=_DECOY_CODE, purpose=purpose, lifetime=lifetime
        )
        await self._outbox.enqueue(self._executor, message, deliver=False)

    async def decoy_notice(self, kind: ContactKind, event: SecurityEvent) -> None:
        message = notice_message(_DECOY_DESTINATIONS[kind], event)
        await self._outbox.enqueue(self._executor, message, deliver=False)
