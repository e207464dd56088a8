"""Challenges in SQL: sent codes, step-ups, and contacts awaiting their code."""

from __future__ import annotations

from typing import Final

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.adapters.repositories._sql import rowcount
from services.auth.adapters.repositories.protection import Protection, contact_from
from services.auth.adapters.tables import otp_challenges, pending_contacts, step_up_challenges
from services.auth.domain.contacts import ContactKind
from services.auth.domain.events import Actor, ActorKind
from services.auth.domain.otp import OtpChallenge, OtpChannel, OtpState
from services.auth.domain.pending import PendingContact, PendingContactPurpose
from services.auth.domain.proofs import ChallengePurpose, FactorMethod
from services.auth.domain.stepup import StepUpChallenge, StepUpPurpose
from walletcore.db import lock_for_update

_STEP_UPS: Final = "step_up_challenges"
_PENDING_CONTACTS: Final = "pending_contacts"


def _require_one_row(saved: int, what: str) -> None:
    if saved != 1:
        raise ValueError(f"save of a {what} that was never added")


class SqlOtpChallenges:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, challenge_id: str, *, for_update: bool = False) -> OtpChallenge | None:
        statement = select(otp_challenges).where(otp_challenges.c.id == challenge_id)
        if for_update:
            statement = lock_for_update(statement)
        row = (await self._session.execute(statement)).one_or_none()
        if row is None:
            return None
        return OtpChallenge(
            id=row.id,
            account_id=row.account_id,
            purpose=ChallengePurpose(row.purpose),
            channel=OtpChannel(row.channel),
            destination_ref=row.destination_ref,
            code_hash=row.code_hash,
            created_at=row.created_at,
            expires_at=row.expires_at,
            state=OtpState(row.state),
            used_at=row.used_at,
            failed_attempts=row.failed_attempts,
        )

    async def add(self, challenge: OtpChallenge) -> None:
        await self._session.execute(
            insert(otp_challenges).values(
                id=challenge.id,
                account_id=challenge.account_id,
                purpose=challenge.purpose.value,
                channel=challenge.channel.value,
                destination_ref=challenge.destination_ref,
                code_hash=challenge.code_hash,
                created_at=challenge.created_at,
                expires_at=challenge.expires_at,
                state=challenge.state.value,
                used_at=challenge.used_at,
                failed_attempts=challenge.failed_attempts,
            )
        )

    async def save(self, challenge: OtpChallenge) -> None:
        saved = await self._session.execute(
            update(otp_challenges)
            .where(otp_challenges.c.id == challenge.id)
            .values(
                state=challenge.state.value,
                used_at=challenge.used_at,
                failed_attempts=challenge.failed_attempts,
            )
        )
        _require_one_row(rowcount(saved), "code challenge")


class SqlStepUpChallenges:
    def __init__(self, session: AsyncSession, protection: Protection) -> None:
        self._session = session
        self._protection = protection

    async def get(self, challenge_id: str, *, for_update: bool = False) -> StepUpChallenge | None:
        statement = select(step_up_challenges).where(step_up_challenges.c.id == challenge_id)
        if for_update:
            statement = lock_for_update(statement)
        row = (await self._session.execute(statement)).one_or_none()
        if row is None:
            return None
        object_id = None
        if row.object_id_encrypted is not None:
            object_id = self._protection.open(
                row.object_id_encrypted, table=_STEP_UPS, row_id=row.id, column="object_id"
            )
        return StepUpChallenge(
            id=row.id,
            account_id=row.account_id,
            purpose=StepUpPurpose(row.purpose),
            object_id=object_id,
            method=FactorMethod(row.method),
            created_at=row.created_at,
            expires_at=row.expires_at,
            otp_challenge_id=row.otp_challenge_id,
            completed_at=row.completed_at,
        )

    async def add(self, challenge: StepUpChallenge) -> None:
        object_id = None
        if challenge.object_id is not None:
            object_id = self._protection.seal(
                challenge.object_id, table=_STEP_UPS, row_id=challenge.id, column="object_id"
            )
        await self._session.execute(
            insert(step_up_challenges).values(
                id=challenge.id,
                account_id=challenge.account_id,
                purpose=challenge.purpose.value,
                object_id_encrypted=object_id,
                method=challenge.method.value,
                created_at=challenge.created_at,
                expires_at=challenge.expires_at,
                otp_challenge_id=challenge.otp_challenge_id,
                completed_at=challenge.completed_at,
            )
        )

    async def save(self, challenge: StepUpChallenge) -> None:
        saved = await self._session.execute(
            update(step_up_challenges)
            .where(step_up_challenges.c.id == challenge.id)
            .values(completed_at=challenge.completed_at)
        )
        _require_one_row(rowcount(saved), "step-up challenge")


class SqlPendingContacts:
    def __init__(self, session: AsyncSession, protection: Protection) -> None:
        self._session = session
        self._protection = protection

    async def get(self, pending_id: str, *, for_update: bool = False) -> PendingContact | None:
        statement = select(pending_contacts).where(pending_contacts.c.id == pending_id)
        if for_update:
            statement = lock_for_update(statement)
        row = (await self._session.execute(statement)).one_or_none()
        if row is None:
            return None
        value = self._protection.open(
            row.contact_encrypted, table=_PENDING_CONTACTS, row_id=row.id, column="contact"
        )
        requested_by = None
        if row.requested_by_kind is not None:
            requested_by = Actor(ActorKind(row.requested_by_kind), row.requested_by_id)
        return PendingContact(
            id=row.id,
            purpose=PendingContactPurpose(row.purpose),
            account_id=row.account_id,
            contact=contact_from(ContactKind(row.contact_kind), value),
            challenge_id=row.challenge_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
            password_hash=row.password_hash,
            requested_by=requested_by,
            completed_at=row.completed_at,
        )

    async def add(self, pending: PendingContact) -> None:
        requested_by = pending.requested_by
        await self._session.execute(
            insert(pending_contacts).values(
                id=pending.id,
                purpose=pending.purpose.value,
                account_id=pending.account_id,
                contact_kind=pending.contact.kind.value,
                contact_encrypted=self._protection.seal(
                    pending.contact.value,
                    table=_PENDING_CONTACTS,
                    row_id=pending.id,
                    column="contact",
                ),
                challenge_id=pending.challenge_id,
                created_at=pending.created_at,
                expires_at=pending.expires_at,
                password_hash=pending.password_hash,
                requested_by_kind=requested_by.kind.value if requested_by else None,
                requested_by_id=requested_by.id if requested_by else None,
                completed_at=pending.completed_at,
            )
        )

    async def save(self, pending: PendingContact) -> None:
        saved = await self._session.execute(
            update(pending_contacts)
            .where(pending_contacts.c.id == pending.id)
            .values(completed_at=pending.completed_at)
        )
        _require_one_row(rowcount(saved), "pending contact")
