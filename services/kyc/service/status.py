"""What other services may know: an account's verification level, and whether a name is its
verified name (never the name itself)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from services.kyc.domain.cases import CaseState
from services.kyc.domain.names import names_match, normalise_legal_name
from services.kyc.domain.reasons import kyc_not_approved
from services.kyc.service.ports import KycUnitOfWork


class VerificationLevel(enum.StrEnum):
    NONE = "NONE"
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED_RETRY = "REJECTED_RETRY"
    REJECTED_FINAL = "REJECTED_FINAL"


@dataclass(frozen=True, slots=True)
class LevelOfAccount:
    level: VerificationLevel
    approved_at: datetime | None


async def verification_level(uow: KycUnitOfWork, *, account_id: str) -> LevelOfAccount:
    """The level of the account's latest case; NONE when it never submitted."""
    case = await uow.cases.latest_for_account(account_id)
    if case is None:
        return LevelOfAccount(VerificationLevel.NONE, None)
    approved_at = None
    if case.state is CaseState.APPROVED and case.review is not None:
        approved_at = case.review.decided_at
    return LevelOfAccount(VerificationLevel(case.state.value), approved_at)


async def match_verified_name(uow: KycUnitOfWork, *, account_id: str, name: str) -> bool:
    """KYC_NOT_APPROVED without an approved case; INVALID_ARGUMENT for an empty name. An
    approved account submits no further case, so its latest case is the approved one."""
    candidate = normalise_legal_name(name, field="name")
    case = await uow.cases.latest_for_account(account_id)
    if case is None or case.state is not CaseState.APPROVED:
        raise kyc_not_approved()
    return names_match(case.identity.legal_name, candidate)
