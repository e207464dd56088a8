"""Key specs: how encryption, MAC and signing keys arrive from configuration.

A key spec is a comma-separated list of `kid:base64url(key material)` entries. The FIRST entry
is the active key (new ciphertexts, hashes and signatures use it); the others are retired but
still accepted for decryption and verification. To rotate, prepend a new entry and keep the old
ones until the data they protect has been re-encrypted or the tokens they signed have expired.

Every key is 256 bits: an AES-256-GCM key, an HMAC-SHA256 key or an Ed25519 seed.

Errors name the position of a bad entry and never any of its text, so a typo in a secret
cannot copy the secret into a log. `development_keys` derives keys from a fixed seed that is
published in this file: it lets the embedded mode run with no configuration and protects
nothing. The production profile refuses to start without configured keys (walletcore.settings).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

KEY_BYTES = 32
KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")

DEVELOPMENT_KID = "dev"
# Public on purpose: anything protected by keys derived from it is protected from nobody.
_DEVELOPMENT_SEED = b"walletcore DEVELOPMENT keys - public, NOT SECRET, never for production"


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """One key of a ring. The material is left out of repr so it cannot reach a log line."""

    kid: str
    secret: bytes = field(repr=False)


def parse_key_spec(spec: str) -> tuple[KeyMaterial, ...]:
    """Parse `kid:base64url,...`; the first key is the active one.

    Raises ValueError naming the bad entry's position, never its content.
    """
    if not spec.strip():
        raise ValueError("the key spec is empty")
    entries = spec.split(",")
    keys = tuple(_parse_entry(entry.strip(), position) for position, entry in enumerate(entries, 1))
    kids = [key.kid for key in keys]
    for position, kid in enumerate(kids, 1):
        if kid in kids[: position - 1]:
            raise ValueError(f"key spec entry {position} repeats the key id of an earlier entry")
    return keys


def _parse_entry(entry: str, position: int) -> KeyMaterial:
    kid, separator, encoded = entry.partition(":")
    if not separator:
        raise ValueError(f"key spec entry {position} is not of the form kid:base64url-key")
    if not KID_PATTERN.fullmatch(kid):
        raise ValueError(
            f"key spec entry {position} has a key id that is not 1-32 of [A-Za-z0-9_-]"
        )
    if not _BASE64URL.fullmatch(encoded):
        raise ValueError(f"key spec entry {position} has key material that is not base64url")
    unpadded = encoded.rstrip("=")
    try:
        secret = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(
            f"key spec entry {position} has key material that is not base64url"
        ) from None
    if len(secret) != KEY_BYTES:
        raise ValueError(f"key spec entry {position} has a key that is not {KEY_BYTES} bytes long")
    return KeyMaterial(kid=kid, secret=secret)


def format_key_spec(keys: Sequence[KeyMaterial]) -> str:
    """The inverse of `parse_key_spec`: unpadded base64url, active key first."""
    return ",".join(f"{key.kid}:{_b64url(key.secret)}" for key in keys)


def generate_key(kid: str) -> KeyMaterial:
    """A fresh random 256-bit key for a new spec entry."""
    if not KID_PATTERN.fullmatch(kid):
        raise ValueError("a key id is 1-32 of [A-Za-z0-9_-]")
    return KeyMaterial(kid=kid, secret=secrets.token_bytes(KEY_BYTES))


def development_keys(label: str) -> tuple[KeyMaterial, ...]:
    """A one-key ring derived from the public development seed; `label` separates uses."""
    secret = hmac.new(_DEVELOPMENT_SEED, label.encode(), hashlib.sha256).digest()
    return (KeyMaterial(kid=DEVELOPMENT_KID, secret=secret),)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
