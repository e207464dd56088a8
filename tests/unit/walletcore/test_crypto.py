"""Field encryption, blind indexes, secret hashes, random secrets and key specs."""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from walletcore import keytool
from walletcore.crypto import (
    BlindIndex,
    DecryptionFailed,
    KeyRing,
    SecretHasher,
    random_numeric_code,
    random_token,
    verify_keyed_hash,
)
from walletcore.errors import FailedPrecondition
from walletcore.keys import KeyMaterial, format_key_spec, generate_key, parse_key_spec

AD = b"kyc.case:case-1:document_number"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _spec(*kids: str) -> str:
    return format_key_spec([generate_key(kid) for kid in kids])


# Key specs


def test_spec_first_entry_is_active_and_order_is_kept() -> None:
    new, old = generate_key("new"), generate_key("old")
    spec = f" {format_key_spec([new])} , {format_key_spec([old])} "

    assert parse_key_spec(spec) == (new, old)


def test_spec_accepts_padded_base64url() -> None:
    secret = bytes(range(32))
    padded = base64.urlsafe_b64encode(secret).decode()

    assert parse_key_spec(f"k1:{padded}") == (KeyMaterial("k1", secret),)


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("", "empty"),
        ("k1", "entry 1 is not of the form"),
        (f"k1:{_b64(bytes(32))},", "entry 2 is not of the form"),
        (f"k 1:{_b64(bytes(32))}", "entry 1 has a key id"),
        (f"{'k' * 33}:{_b64(bytes(32))}", "entry 1 has a key id"),
        (f"k1:{_b64(bytes(32))},k1:{_b64(bytes(range(32)))}", "entry 2 repeats the key id"),
        (f"k1:{_b64(bytes(16))}", "not 32 bytes"),
        (f"k1:{_b64(bytes(33))}", "not 32 bytes"),
        ("k1:not*base64!", "not base64url"),
        ("k1:" + base64.b64encode(bytes([251]) * 32).decode(), "not base64url"),
        ("k1:abcde", "not base64url"),
    ],
)
def test_spec_rejections_are_clear(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_key_spec(spec)


def test_spec_errors_never_echo_key_material() -> None:
    material = _b64(b"secret-material-of-wrong-length")

    with pytest.raises(ValueError, match="not 32 bytes") as caught:
        parse_key_spec(f"k1:{material}")

    assert material not in str(caught.value)
    assert material[:8] not in str(caught.value)


def _parse_error(spec: str) -> str | None:
    """The message of the ValueError the spec raises; any other exception fails the test."""
    try:
        parse_key_spec(spec)
    except ValueError as error:
        return str(error)
    return None


@given(st.text())
def test_spec_parser_raises_only_value_error_without_echoing(spec: str) -> None:
    message = _parse_error(spec)

    if message is not None and len(spec.strip()) >= 12:
        assert spec.strip() not in message


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_=+/ :", min_size=8))
def test_spec_errors_never_echo_material_of_an_entry(material: str) -> None:
    message = _parse_error(f"k1:{material}")

    assert message is None or material not in message


def test_key_material_repr_hides_the_secret() -> None:
    key = KeyMaterial("k1", b"\x01" * 32)

    assert "k1" in repr(key)
    assert repr(b"\x01" * 32) not in repr(key)


def test_keytool_prints_a_usable_encryption_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert keytool.main(["new-encryption-key", "--kid", "k2026"]) == 0
    spec = capsys.readouterr().out.strip()

    ring = KeyRing.from_spec(spec)
    assert ring.active_kid == "k2026"
    assert ring.decrypt(ring.encrypt(b"x", associated_data=AD), associated_data=AD) == b"x"


def test_keytool_refuses_a_bad_kid(capsys: pytest.CaptureFixture[str]) -> None:
    assert keytool.main(["new-signing-key", "--kid", "no spaces"]) == 2
    assert "key id" in capsys.readouterr().err


# Field encryption


def test_encryption_round_trips_and_hides_the_plaintext() -> None:
    ring = KeyRing.from_spec(_spec("k1"))

    token = ring.encrypt(b"110101199003074477", associated_data=AD)

    assert b"110101199003074477" not in token
    assert ring.decrypt(token, associated_data=AD) == b"110101199003074477"


def test_equal_plaintexts_give_different_ciphertexts() -> None:
    ring = KeyRing.from_spec(_spec("k1"))

    assert ring.encrypt(b"same", associated_data=AD) != ring.encrypt(b"same", associated_data=AD)


def test_tampering_with_any_byte_fails() -> None:
    ring = KeyRing.from_spec(_spec("k1"))
    token = ring.encrypt(b"secret document", associated_data=AD)

    for position in range(len(token)):
        tampered = bytearray(token)
        tampered[position] ^= 0x01
        with pytest.raises(DecryptionFailed):
            ring.decrypt(bytes(tampered), associated_data=AD)


@pytest.mark.parametrize("length", [0, 1, 5, 20])
def test_truncated_ciphertext_fails(length: int) -> None:
    ring = KeyRing.from_spec(_spec("k1"))
    token = ring.encrypt(b"secret document", associated_data=AD)

    with pytest.raises(DecryptionFailed):
        ring.decrypt(token[:length], associated_data=AD)


def test_ciphertext_cannot_move_to_another_row() -> None:
    ring = KeyRing.from_spec(_spec("k1"))
    token = ring.encrypt(b"secret", associated_data=b"kyc.case:1:document_number")

    with pytest.raises(DecryptionFailed) as caught:
        ring.decrypt(token, associated_data=b"kyc.case:2:document_number")

    assert isinstance(caught.value, FailedPrecondition)
    assert caught.value.reason == "DECRYPTION_FAILED"
    assert "secret" not in caught.value.message


def test_encryption_requires_associated_data() -> None:
    ring = KeyRing.from_spec(_spec("k1"))

    with pytest.raises(ValueError, match="associated data"):
        ring.encrypt(b"secret", associated_data=b"")


def test_old_ciphertext_decrypts_after_rotation_and_can_be_reencrypted() -> None:
    old, new = generate_key("old"), generate_key("new")
    before = KeyRing([old])
    token = before.encrypt(b"secret", associated_data=AD)

    rotated = KeyRing([new, old])
    assert rotated.decrypt(token, associated_data=AD) == b"secret"
    assert rotated.needs_reencryption(token)

    reencrypted = rotated.reencrypt(token, associated_data=AD)
    assert not rotated.needs_reencryption(reencrypted)
    assert rotated.reencrypt(reencrypted, associated_data=AD) == reencrypted
    assert KeyRing([new]).decrypt(reencrypted, associated_data=AD) == b"secret"


def test_ciphertext_under_a_key_that_left_the_ring_fails() -> None:
    old, new = generate_key("old"), generate_key("new")
    token = KeyRing([old]).encrypt(b"secret", associated_data=AD)

    with pytest.raises(DecryptionFailed):
        KeyRing([new]).decrypt(token, associated_data=AD)


def test_same_kid_with_other_material_fails() -> None:
    token = KeyRing([generate_key("k1")]).encrypt(b"secret", associated_data=AD)

    with pytest.raises(DecryptionFailed):
        KeyRing([generate_key("k1")]).decrypt(token, associated_data=AD)


def test_development_rings_are_deterministic_and_separated_by_label() -> None:
    token = KeyRing.development("kyc").encrypt(b"secret", associated_data=AD)

    assert KeyRing.development("kyc").decrypt(token, associated_data=AD) == b"secret"
    with pytest.raises(DecryptionFailed):
        KeyRing.development("binding").decrypt(token, associated_data=AD)


# Blind indexes


def test_blind_index_is_stable_for_the_same_keys() -> None:
    spec = _spec("k1")

    first = BlindIndex.from_spec(spec, context="kyc.document_number").compute("110101199003074477")
    again = BlindIndex.from_spec(spec, context="kyc.document_number").compute("110101199003074477")

    assert first == again
    assert "110101199003074477" not in first


def test_blind_index_separates_values_contexts_and_keys() -> None:
    spec = _spec("k1")
    documents = BlindIndex.from_spec(spec, context="kyc.document_number")
    cards = BlindIndex.from_spec(spec, context="binding.card_fingerprint")
    other_key = BlindIndex.from_spec(_spec("k1"), context="kyc.document_number")

    digest = documents.compute("4111111111111111")

    assert documents.compute("4111111111111112") != digest
    assert cards.compute("4111111111111111") != digest
    assert other_key.compute("4111111111111111") != digest


def test_blind_index_candidates_find_rows_indexed_before_a_rotation() -> None:
    old, new = generate_key("old"), generate_key("new")
    stored = BlindIndex([old], context="kyc.document_number").compute("E12345678")

    rotated = BlindIndex([new, old], context="kyc.document_number")

    assert rotated.compute("E12345678") != stored
    assert rotated.candidates("E12345678") == [rotated.compute("E12345678"), stored]
    assert stored not in rotated.candidates("E12345679")


@pytest.mark.parametrize("context", ["", "a\x00b"])
def test_blind_index_needs_a_context(context: str) -> None:
    with pytest.raises(ValueError, match="context"):
        BlindIndex.development(context=context)


# Keyed hashes of short secrets


def test_secret_hash_verifies_only_the_right_secret() -> None:
    hasher = SecretHasher.from_spec(_spec("k1"), context="auth.otp_code")

    stored = hasher.hash("042517")

    assert "042517" not in stored
    assert hasher.verify("042517", stored)
    assert not hasher.verify("042518", stored)
    assert not hasher.verify("042517", "k1:" + "0" * 64)
    assert not hasher.verify("042517", "garbage")


def test_secret_hash_is_bound_to_its_context() -> None:
    spec = _spec("k1")
    codes = SecretHasher.from_spec(spec, context="auth.otp_code")
    refresh_tokens = SecretHasher.from_spec(spec, context="auth.refresh_token")

    assert not refresh_tokens.verify("042517", codes.hash("042517"))


def test_secret_hash_verifies_across_a_rotation_and_asks_for_a_rehash() -> None:
    old, new = generate_key("old"), generate_key("new")
    stored = SecretHasher([old], context="auth.recovery_code").hash("abcd-efgh-ijkl-mnop")
    rotated = SecretHasher([new, old], context="auth.recovery_code")

    assert rotated.verify("abcd-efgh-ijkl-mnop", stored)
    assert rotated.needs_rehash(stored)
    assert not rotated.needs_rehash(rotated.hash("abcd-efgh-ijkl-mnop"))
    assert not SecretHasher([new], context="auth.recovery_code").verify(
        "abcd-efgh-ijkl-mnop", stored
    )


def test_verify_keyed_hash_refuses_a_non_hex_expectation() -> None:
    assert not verify_keyed_hash(b"k" * 32, "123456", "ünïcode")


# Random secrets


def test_numeric_codes_have_exactly_the_asked_digits() -> None:
    codes = [random_numeric_code() for _ in range(200)]

    assert all(len(code) == 6 and code.isdigit() for code in codes)
    assert len(set(codes)) > 190
    assert len(random_numeric_code(8)) == 8


def test_numeric_codes_keep_leading_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("walletcore.crypto.secrets.randbelow", lambda _upper: 42)

    assert random_numeric_code(6) == "000042"


@pytest.mark.parametrize("digits", [3, 13])
def test_numeric_code_length_is_bounded(digits: int) -> None:
    with pytest.raises(ValueError, match="digits"):
        random_numeric_code(digits)


def test_random_tokens_are_url_safe_and_long_enough() -> None:
    token = random_token(32)

    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    assert set(token) <= set(string.ascii_letters + string.digits + "-_")
    with pytest.raises(ValueError, match="16 bytes"):
        random_token(8)
