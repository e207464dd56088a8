"""How kyc's personal data is sealed at rest: AES-256-GCM under the key ring, each ciphertext
bound to its case and column by the associated data, so a ciphertext copied into another row
(another account's case) fails to decrypt instead of showing there."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from services.kyc.domain.cases import Identity
from services.kyc.domain.documents import DocumentType, IdentityDocument
from services.kyc.domain.images import DocumentImage, ImageSide, ImageType
from walletcore.crypto import KeyRing


def identity_data(case_id: str) -> bytes:
    return f"kyc.case:{case_id}:identity".encode()


def note_data(case_id: str) -> bytes:
    return f"kyc.case:{case_id}:note".encode()


def image_data(case_id: str, side: ImageSide) -> bytes:
    return f"kyc.case:{case_id}:image:{side.value}".encode()


@dataclass(frozen=True, slots=True)
class Protection:
    encryption: KeyRing

    def seal_identity(self, case_id: str, identity: Identity) -> bytes:
        document = identity.document
        plain = {
            "legal_name": identity.legal_name,
            "number": document.number,
            "expiry_date": None
            if document.expiry_date is None
            else document.expiry_date.isoformat(),
            "date_of_birth": document.date_of_birth.isoformat(),
        }
        return self.encryption.encrypt(
            json.dumps(plain, ensure_ascii=False).encode(), associated_data=identity_data(case_id)
        )

    def open_identity(
        self, case_id: str, sealed: bytes, *, document_type: DocumentType, issuing_country: str
    ) -> Identity:
        plain = json.loads(self.encryption.decrypt(sealed, associated_data=identity_data(case_id)))
        expiry = plain["expiry_date"]
        document = IdentityDocument(
            type=document_type,
            number=plain["number"],
            issuing_country=issuing_country,
            expiry_date=None if expiry is None else date.fromisoformat(expiry),
            date_of_birth=date.fromisoformat(plain["date_of_birth"]),
        )
        return Identity(plain["legal_name"], document)

    def seal_note(self, case_id: str, note: str) -> bytes:
        return self.encryption.encrypt(note.encode(), associated_data=note_data(case_id))

    def open_note(self, case_id: str, sealed: bytes) -> str:
        return self.encryption.decrypt(sealed, associated_data=note_data(case_id)).decode()

    def seal_image(self, case_id: str, side: ImageSide, image: DocumentImage) -> bytes:
        return self.encryption.encrypt(image.content, associated_data=image_data(case_id, side))

    def open_image(
        self, case_id: str, side: ImageSide, sealed: bytes, content_type: str
    ) -> DocumentImage:
        content = self.encryption.decrypt(sealed, associated_data=image_data(case_id, side))
        return DocumentImage(content, ImageType(content_type))
