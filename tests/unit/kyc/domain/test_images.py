"""Images judged by content: magic bytes, the declared type, the 5 MiB limit."""

from __future__ import annotations

import pytest

from services.kyc.domain.images import MAX_IMAGE_BYTES, DocumentImage, ImageType, sniff
from services.kyc.domain.reasons import Reason
from walletcore.errors import InvalidArgument

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"\x00" * 64


@pytest.mark.parametrize(
    ("content", "image_type"), [(JPEG, ImageType.JPEG), (PNG, ImageType.PNG), (PDF, ImageType.PDF)]
)
def test_each_type_is_recognised_by_content(content: bytes, image_type: ImageType) -> None:
    assert sniff(content) is image_type
    assert DocumentImage.parse(content, image_type.value, field="front_image").image_type is (
        image_type
    )


def refusal(content: bytes, content_type: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as refused:
        DocumentImage.parse(content, content_type, field="front_image")
    return refused.value


def test_a_renamed_text_file_is_refused() -> None:
    error = refusal(b"just some text, saved as photo.jpg", "image/jpeg")
    assert error.reason == Reason.IMAGE_TYPE_UNSUPPORTED
    assert error.violations[0].field == "front_image.content"


def test_the_declared_type_must_match_the_content() -> None:
    error = refusal(PNG, "image/jpeg")
    assert error.reason == Reason.IMAGE_TYPE_UNSUPPORTED
    assert error.violations[0].field == "front_image.content_type"


def test_a_missing_declared_type_is_its_own_reason() -> None:
    assert refusal(JPEG, "").reason == Reason.IMAGE_TYPE_UNSPECIFIED


def test_an_empty_image_is_refused() -> None:
    assert refusal(b"", "image/jpeg").reason == Reason.IMAGE_REQUIRED


def test_five_mib_is_allowed_one_byte_more_is_not() -> None:
    at_limit = JPEG + b"\x00" * (MAX_IMAGE_BYTES - len(JPEG))
    assert len(DocumentImage.parse(at_limit, "image/jpeg", field="front_image").content) == (
        MAX_IMAGE_BYTES
    )
    assert refusal(at_limit + b"\x00", "image/jpeg").reason == Reason.IMAGE_TOO_LARGE


def test_the_declared_type_is_read_case_insensitively() -> None:
    assert DocumentImage.parse(PDF, "Application/PDF", field="selfie_image").image_type is (
        ImageType.PDF
    )
