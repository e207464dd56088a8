"""Everything a use case uses besides the unit of work, wired once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from services.binding.service.ports import CardVault, ContactVerification, Fingerprints, KycStatus
from walletcore.clock import Clock

FINGERPRINT_CONTEXT: Final = "binding.card_fingerprint"
"""The blind-index context of card fingerprints (`walletcore.crypto.BlindIndex`), so the
fingerprint key derives digests that no other index shares."""


@dataclass(frozen=True, slots=True)
class BindingContext:
    clock: Clock
    new_id: Callable[[], str]
    """Opaque unique ids for rows the client may see (uuid4 hex)."""
    fingerprints: Fingerprints
    vault: CardVault
    kyc: KycStatus
    contacts: ContactVerification
