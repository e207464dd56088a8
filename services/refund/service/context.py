"""Everything a use case uses besides the unit of work, wired once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.refund.domain.policy import RefundPolicy
from services.refund.service.ports import InstrumentHolds, PayoutGateway
from walletcore.clock import Clock


@dataclass(frozen=True, slots=True)
class RefundContext:
    clock: Clock
    new_id: Callable[[], str]
    """Opaque unique ids for refunds (uuid4 hex)."""
    policy: RefundPolicy
    holds: InstrumentHolds
    gateway: PayoutGateway
