"""Everything a use case uses besides the unit of work, wired once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.kyc.service.ports import IdentityIndex
from walletcore.clock import Clock


@dataclass(frozen=True, slots=True)
class KycContext:
    clock: Clock
    new_id: Callable[[], str]
    """Opaque unique ids for cases (uuid4 hex)."""
    identity_index: IdentityIndex
