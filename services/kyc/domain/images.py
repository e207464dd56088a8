"""Document images, judged by their content: the magic bytes decide the type, and the declared
content type must agree with them (a text file renamed to .jpg is refused)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from services.kyc.domain.reasons import Reason, invalid

MAX_IMAGE_BYTES: Final = 5 * 1024 * 1024
"""5 MiB, 5,242,880 bytes, per image."""


class ImageType(enum.StrEnum):
    JPEG = "image/jpeg"
    PNG = "image/png"
    PDF = "application/pdf"


# JPEG: SOI marker then the first segment's marker byte; PNG: its 8-byte signature; PDF: the
# header every PDF version starts with.
_MAGIC: Final = (
    (b"\xff\xd8\xff", ImageType.JPEG),
    (b"\x89PNG\r\n\x1a\n", ImageType.PNG),
    (b"%PDF-", ImageType.PDF),
)


def sniff(content: bytes) -> ImageType | None:
    """The type the content shows, or None for anything else."""
    for magic, image_type in _MAGIC:
        if content.startswith(magic):
            return image_type
    return None


class ImageSide(enum.StrEnum):
    FRONT = "front"
    BACK = "back"
    SELFIE = "selfie"


@dataclass(frozen=True, slots=True)
class DocumentImage:
    """Checked image bytes. Personal data: the repr shows only the type and size."""

    content: bytes
    image_type: ImageType

    def __repr__(self) -> str:
        return f"DocumentImage({self.image_type.name}, {len(self.content)} bytes)"

    @classmethod
    def parse(cls, content: bytes, content_type: str, *, field: str) -> DocumentImage:
        """Raises InvalidArgument on `field` (e.g. `front_image`): IMAGE_REQUIRED (empty),
        IMAGE_TOO_LARGE, IMAGE_TYPE_UNSPECIFIED (no declared type) or IMAGE_TYPE_UNSUPPORTED
        (content not JPEG, PNG or PDF, or not the declared type)."""
        if not content:
            raise invalid(f"{field}.content", "is required", Reason.IMAGE_REQUIRED)
        if len(content) > MAX_IMAGE_BYTES:
            raise invalid(
                f"{field}.content",
                f"must be at most {MAX_IMAGE_BYTES} bytes (5 MiB)",
                Reason.IMAGE_TOO_LARGE,
            )
        declared = content_type.strip().lower()
        if not declared:
            raise invalid(
                f"{field}.content_type",
                "is required: image/jpeg, image/png or application/pdf",
                Reason.IMAGE_TYPE_UNSPECIFIED,
            )
        shown = sniff(content)
        if shown is None:
            raise invalid(
                f"{field}.content",
                "is not a JPEG, PNG or PDF file",
                Reason.IMAGE_TYPE_UNSUPPORTED,
            )
        if declared != shown.value:
            raise invalid(
                f"{field}.content_type",
                "does not match the file's content",
                Reason.IMAGE_TYPE_UNSUPPORTED,
            )
        return cls(content, shown)
