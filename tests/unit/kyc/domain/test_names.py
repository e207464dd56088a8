"""Legal names: accepted forms and what counts as the same name."""

from __future__ import annotations

import pytest

from services.kyc.domain.names import names_match, normalise_legal_name
from services.kyc.domain.reasons import Reason
from walletcore.errors import InvalidArgument


def fullwidth(ascii_text: str) -> str:
    """The full-width forms (U+FF01...) an East Asian keyboard may type."""
    return "".join(chr(ord(c) + 0xFEE0) for c in ascii_text)


def test_a_name_is_stored_nfkc_with_whitespace_collapsed() -> None:
    assert normalise_legal_name("  " + fullwidth("Zhang") + "\u3000  San ") == "Zhang San"


@pytest.mark.parametrize("raw", ["", "   ", "a\x00b", "x" * 201, "tab\u0007bell"])
def test_bad_names_are_refused(raw: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        normalise_legal_name(raw)
    assert refused.value.reason == Reason.LEGAL_NAME_INVALID


@pytest.mark.parametrize(
    ("verified", "candidate"),
    [
        ("Zhang San", "ZHANG SAN"),
        ("Zhang San", "  zhang   san "),
        ("Zhang San", fullwidth("Zhang") + "\u3000" + fullwidth("San")),
        ("Straße", "STRASSE"),
        ("张三", "张三"),
    ],
)
def test_names_equal_after_normalisation_match(verified: str, candidate: str) -> None:
    assert names_match(verified, candidate)


@pytest.mark.parametrize(
    ("verified", "candidate"),
    [("Zhang San", "Zhang Sun"), ("Zhang San", "ZhangSan"), ("张三", "张叁")],
)
def test_different_names_do_not_match(verified: str, candidate: str) -> None:
    assert not names_match(verified, candidate)
