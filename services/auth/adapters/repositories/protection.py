"""How personal data is kept in auth's tables: encrypted values, found through a blind index.

A contact (and anything that may be one, such as a step-up's new phone) is stored encrypted
with the key ring, its associated data naming the table, row and column, so a ciphertext
copied into another row does not decrypt. Verified contacts are found through the keyed blind
index of their normalised value, never through the value itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from services.auth.domain.contacts import Contact, ContactKind, Email, Phone
from walletcore.crypto import BlindIndex, KeyRing

CONTACT_INDEX_CONTEXT: Final = "auth.contacts"
"""The `context` to build the contact BlindIndex with, e.g.
`BlindIndex.from_spec(spec, context=CONTACT_INDEX_CONTEXT)`."""


def lookup_value(contact: Contact) -> str:
    """What "the same contact" compares: the E.164 number, or the case-folded address."""
    if isinstance(contact, Phone):
        return contact.e164
    return contact.lookup_key


def contact_from(kind: ContactKind, value: str) -> Contact:
    """A stored contact. Only its shape is checked: it was fully validated when it was added."""
    if kind is ContactKind.PHONE:
        return Phone(value)
    return Email(value)


@dataclass(frozen=True, slots=True)
class Protection:
    encryption: KeyRing
    contact_index: BlindIndex

    def seal(self, plaintext: str, *, table: str, row_id: str, column: str) -> bytes:
        return self.encryption.encrypt(
            plaintext.encode(), associated_data=_place(table, row_id, column)
        )

    def open(self, sealed: bytes, *, table: str, row_id: str, column: str) -> str:
        return self.encryption.decrypt(
            bytes(sealed), associated_data=_place(table, row_id, column)
        ).decode()

    def index(self, contact: Contact) -> str:
        """The blind index to store, under the active key."""
        return self.contact_index.compute(lookup_value(contact))

    def index_candidates(self, contact: Contact) -> list[str]:
        """The blind index under every key, so contacts indexed before a rotation are found."""
        return self.contact_index.candidates(lookup_value(contact))


def _place(table: str, row_id: str, column: str) -> bytes:
    return f"auth.{table}:{row_id}:{column}".encode()
