"""Field encryption, keyed blind indexes, keyed hashes of short secrets, and random secrets.

- `KeyRing` encrypts fields with AES-256-GCM. A ciphertext names its key, so data written under
  a retired key stays readable after a rotation; associated data binds it to one row and column.
- `BlindIndex` finds rows by an encrypted value (a document number, a card) through a keyed
  HMAC, never through plaintext; `candidates` keeps lookups working during a rotation.
- `SecretHasher` stores short secrets (6-digit codes, recovery codes, refresh tokens) as keyed
  hashes: a leaked table cannot be brute-forced over the 10^6 codes without the server key.

Key rings come from key specs (walletcore.keys). Every derived key is domain-separated by a
purpose and a `context` string, so a hash made for one use never matches in another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from walletcore.errors import FailedPrecondition
from walletcore.keys import KeyMaterial, development_keys, parse_key_spec

_FORMAT_VERSION = 1
_NONCE_BYTES = 12
_TAG_BYTES = 16
_BLIND_INDEX_PURPOSE = b"walletcore/blind-index/v1"
_SECRET_HASH_PURPOSE = b"walletcore/secret-hash/v1"
_STORED_HASH_SEPARATOR = ":"


class DecryptionFailed(FailedPrecondition):
    """Stored data could not be decrypted. Deliberately says nothing about why."""

    reason = "DECRYPTION_FAILED"

    def __init__(self) -> None:
        super().__init__("the protected data could not be read")


def _require_keys(keys: Sequence[KeyMaterial]) -> None:
    if not keys:
        raise ValueError("a key ring needs at least one key")
    if len({key.kid for key in keys}) != len(keys):
        raise ValueError("a key ring cannot hold two keys with the same key id")


class KeyRing:
    """AES-256-GCM field encryption under the active key, decryption under any key of the ring.

    Ciphertext layout: version (1 byte) | kid length (1 byte) | kid | nonce (12 bytes) |
    ciphertext and tag. The header and the caller's associated data are both authenticated.
    """

    def __init__(self, keys: Sequence[KeyMaterial]) -> None:
        _require_keys(keys)
        self._active_kid = keys[0].kid
        self._ciphers = {key.kid: AESGCM(key.secret) for key in keys}

    @classmethod
    def from_spec(cls, spec: str) -> KeyRing:
        return cls(parse_key_spec(spec))

    @classmethod
    def development(cls, label: str) -> KeyRing:
        """A ring from the public development seed: for the embedded mode and tests only."""
        return cls(development_keys(f"aes-256-gcm/{label}"))

    @property
    def active_kid(self) -> str:
        return self._active_kid

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> bytes:
        """Encrypt under the active key; `associated_data` names the row and column, e.g.
        b"kyc.case:<id>:document_number", and must be given again to decrypt."""
        _require_associated_data(associated_data)
        kid = self._active_kid.encode("ascii")
        header = bytes([_FORMAT_VERSION, len(kid)]) + kid
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._ciphers[self._active_kid].encrypt(nonce, plaintext, header + associated_data)
        return header + nonce + sealed

    def decrypt(self, token: bytes, *, associated_data: bytes) -> bytes:
        """Raises DecryptionFailed for a tampered, truncated, misplaced or unknown-key token."""
        kid, header_length = self._parse_header(token)
        cipher = self._ciphers[kid]
        nonce = token[header_length : header_length + _NONCE_BYTES]
        try:
            return cipher.decrypt(
                nonce,
                token[header_length + _NONCE_BYTES :],
                token[:header_length] + associated_data,
            )
        except InvalidTag:
            raise DecryptionFailed from None

    def needs_reencryption(self, token: bytes) -> bool:
        """True when the token was written under a key other than the active one."""
        kid, _ = self._parse_header(token)
        return kid != self._active_kid

    def reencrypt(self, token: bytes, *, associated_data: bytes) -> bytes:
        """The same plaintext under the active key; a token already under it is returned as is."""
        if not self.needs_reencryption(token):
            return token
        return self.encrypt(
            self.decrypt(token, associated_data=associated_data), associated_data=associated_data
        )

    def _parse_header(self, token: bytes) -> tuple[str, int]:
        if len(token) < 2 or token[0] != _FORMAT_VERSION:
            raise DecryptionFailed
        header_length = 2 + token[1]
        if len(token) < header_length + _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionFailed
        kid = token[2:header_length].decode("ascii", errors="replace")
        if kid not in self._ciphers:
            raise DecryptionFailed
        return kid, header_length


def _require_associated_data(associated_data: bytes) -> None:
    if not associated_data:
        raise ValueError("associated data must name what the ciphertext belongs to")


def _derive_key(secret: bytes, purpose: bytes, context: str) -> bytes:
    if not context or "\x00" in context:
        raise ValueError("a context is a non-empty string without NUL characters")
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=purpose + b"\x00" + context.encode()
    )
    return hkdf.derive(secret)


def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256 of `value` under `key`, as 64 hex characters."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def verify_keyed_hash(key: bytes, value: str, expected_hash: str) -> bool:
    """Whether `value` hashes to `expected_hash` under `key`, compared in constant time."""
    return hmac.compare_digest(keyed_hash(key, value).encode(), expected_hash.encode())


class BlindIndex:
    """Deterministic keyed digests for finding rows by a value stored encrypted.

    The caller canonicalises the value first (e.g. upper-cases a document number). `context`
    separates indexes, e.g. "kyc.document_number" and "binding.card_fingerprint", so equal
    values in two indexes give unrelated digests.
    """

    def __init__(self, keys: Sequence[KeyMaterial], *, context: str) -> None:
        _require_keys(keys)
        self._keys = [_derive_key(key.secret, _BLIND_INDEX_PURPOSE, context) for key in keys]

    @classmethod
    def from_spec(cls, spec: str, *, context: str) -> BlindIndex:
        return cls(parse_key_spec(spec), context=context)

    @classmethod
    def development(cls, *, context: str) -> BlindIndex:
        """An index keyed from the public development seed: embedded mode and tests only."""
        return cls(development_keys("blind-index"), context=context)

    def compute(self, value: str) -> str:
        """The digest to store, under the active key."""
        return keyed_hash(self._keys[0], value)

    def candidates(self, value: str) -> list[str]:
        """The digest under every key of the ring, active first: match any of them in a lookup,
        so rows indexed before a rotation are still found until they are re-indexed."""
        return [keyed_hash(key, value) for key in self._keys]


class SecretHasher:
    """Keyed hashes of short secrets, stored as `kid:hex` so they verify across key rotations."""

    def __init__(self, keys: Sequence[KeyMaterial], *, context: str) -> None:
        _require_keys(keys)
        self._active_kid = keys[0].kid
        self._keys = {
            key.kid: _derive_key(key.secret, _SECRET_HASH_PURPOSE, context) for key in keys
        }

    @classmethod
    def from_spec(cls, spec: str, *, context: str) -> SecretHasher:
        return cls(parse_key_spec(spec), context=context)

    @classmethod
    def development(cls, *, context: str) -> SecretHasher:
        """A hasher keyed from the public development seed: embedded mode and tests only."""
        return cls(development_keys("secret-hash"), context=context)

    def hash(self, secret: str) -> str:
        return (
            self._active_kid
            + _STORED_HASH_SEPARATOR
            + keyed_hash(self._keys[self._active_kid], secret)
        )

    def verify(self, secret: str, stored_hash: str) -> bool:
        """False for a wrong secret, and for a stored hash under a key no longer in the ring."""
        kid, _, digest = stored_hash.partition(_STORED_HASH_SEPARATOR)
        key = self._keys.get(kid)
        return key is not None and verify_keyed_hash(key, secret, digest)

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made under a retired key: re-store it after a good verify."""
        return stored_hash.partition(_STORED_HASH_SEPARATOR)[0] != self._active_kid


def random_numeric_code(digits: int = 6) -> str:
    """A uniformly random code of exactly `digits` decimal digits (leading zeros kept)."""
    if not 4 <= digits <= 12:
        raise ValueError("a numeric code has 4 to 12 digits")
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def random_token(nbytes: int = 32) -> str:
    """A url-safe random token of `nbytes` random bytes (at least 128 bits)."""
    if nbytes < 16:
        raise ValueError("a random token needs at least 16 bytes")
    return secrets.token_urlsafe(nbytes)
