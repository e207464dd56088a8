"""Kyc's SQL repositories (SQLite and PostgreSQL), mapping rows to domain objects explicitly
and sealing personal data through `Protection` on the way in."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, Final

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.kyc.adapters.protection import Protection
from services.kyc.adapters.tables import document_images, identity_digests, verification_cases
from services.kyc.domain.cases import (
    CaseState,
    Decision,
    RejectionReason,
    Review,
    VerificationCase,
)
from services.kyc.domain.documents import DocumentType
from services.kyc.domain.images import DocumentImage, ImageSide
from services.kyc.domain.reasons import page_token_invalid
from services.kyc.service.ports import QueuePage
from walletcore.db import SingleStatementReads, is_unique_violation, lock_for_update
from walletcore.errors import Aborted

_QUEUE_ORDER: Final = (verification_cases.c.submitted_at, verification_cases.c.id)
_LATEST_CASE: Final = (
    select(verification_cases)
    .where(verification_cases.c.account_id == bindparam("account_id"))
    .order_by(verification_cases.c.attempt.desc())
    .limit(1)
)


class SqlCases:
    def __init__(self, session: AsyncSession, protection: Protection) -> None:
        self._session = session
        self._protection = protection

    async def get(self, case_id: str, *, for_update: bool = False) -> VerificationCase | None:
        statement = select(verification_cases).where(verification_cases.c.id == case_id)
        if for_update:
            statement = lock_for_update(statement)
        row = (await self._session.execute(statement)).one_or_none()
        return None if row is None else case_from(row, self._protection)

    async def latest_for_account(
        self, account_id: str, *, for_update: bool = False
    ) -> VerificationCase | None:
        statement = lock_for_update(_LATEST_CASE) if for_update else _LATEST_CASE
        row = (await self._session.execute(statement, {"account_id": account_id})).one_or_none()
        return None if row is None else case_from(row, self._protection)

    async def add(self, case: VerificationCase, identity_digests_: list[str]) -> None:
        values = {
            "id": case.id,
            "account_id": case.account_id,
            "attempt": case.attempt,
            "state": case.state.value,
            "document_type": case.document_type.value,
            "issuing_country": case.issuing_country,
            "submitted_at": case.submitted_at,
            "resubmission_of": case.resubmission_of,
            "identity": self._protection.seal_identity(case.id, case.identity),
        }
        try:
            # A savepoint, so that losing the race leaves the transaction usable on PostgreSQL.
            async with self._session.begin_nested():
                await self._session.execute(insert(verification_cases).values(values))
        except IntegrityError as error:
            if is_unique_violation(error):
                raise Aborted("another submission of this account was stored meanwhile") from None
            raise
        await self._session.execute(
            insert(identity_digests),
            [
                {"case_id": case.id, "digest": digest, "account_id": case.account_id}
                for digest in dict.fromkeys(identity_digests_)
            ],
        )

    async def save_decision(self, case: VerificationCase) -> None:
        review = case.review
        if review is None:
            raise ValueError("save_decision of an undecided case")
        await self._session.execute(
            update(verification_cases)
            .where(verification_cases.c.id == case.id)
            .values(
                state=case.state.value,
                decision=review.decision.value,
                reason=None if review.reason is None else review.reason.value,
                note=self._protection.seal_note(case.id, review.note),
                reviewer_id=review.reviewer_id,
                decided_at=review.decided_at,
            )
        )

    async def accounts_sharing_identity(self, case: VerificationCase) -> list[str]:
        own = select(identity_digests.c.digest).where(identity_digests.c.case_id == case.id)
        statement = (
            select(identity_digests.c.account_id)
            .where(
                identity_digests.c.digest.in_(own),
                identity_digests.c.account_id != case.account_id,
            )
            .distinct()
            .order_by(identity_digests.c.account_id)
        )
        return list((await self._session.scalars(statement)).all())

    async def review_queue(self, *, limit: int, page_token: str) -> QueuePage:
        cases = verification_cases.c
        statement = select(verification_cases).where(cases.state == CaseState.PENDING.value)
        if page_token:
            at, after_id = _read_token(page_token)
            statement = statement.where(
                or_(cases.submitted_at > at, and_(cases.submitted_at == at, cases.id > after_id))
            )
        rows = (
            await self._session.execute(statement.order_by(*_QUEUE_ORDER).limit(limit + 1))
        ).all()
        page = [case_from(row, self._protection) for row in rows[:limit]]
        duplicates = await self._duplicated([case.id for case in page])
        next_token = _token(page[-1]) if len(rows) > limit and page else ""
        return QueuePage(page, duplicates, next_token)

    async def _duplicated(self, case_ids: list[str]) -> set[str]:
        """The cases among `case_ids` sharing a digest with another account's case."""
        if not case_ids:
            return set()
        mine = identity_digests.alias("mine")
        other = identity_digests.alias("other")
        statement = (
            select(mine.c.case_id)
            .join(
                other,
                and_(other.c.digest == mine.c.digest, other.c.account_id != mine.c.account_id),
            )
            .where(mine.c.case_id.in_(case_ids))
            .distinct()
        )
        return set((await self._session.scalars(statement)).all())


class SqlCaseReads:
    """The `CaseReads` port: one statement per read, outside any unit of work."""

    def __init__(self, reads: SingleStatementReads, protection: Protection) -> None:
        self._reads = reads
        self._protection = protection

    async def latest_for_account(self, account_id: str) -> VerificationCase | None:
        rows = await self._reads.all(_LATEST_CASE, {"account_id": account_id})
        return case_from(rows[0], self._protection) if rows else None


class SqlKycReads:
    """The `KycReads` port (GetVerification's read, without a transaction)."""

    def __init__(self, reads: SingleStatementReads, protection: Protection) -> None:
        self.cases = SqlCaseReads(reads, protection)


def case_from(row: Any, protection: Protection) -> VerificationCase:
    """A case from a `verification_cases` row (SQLAlchemy's or a single-statement read's)."""
    review = None
    if row.decision is not None:
        review = Review(
            reviewer_id=row.reviewer_id,
            decision=Decision(row.decision),
            reason=None if row.reason is None else RejectionReason(row.reason),
            note=protection.open_note(row.id, row.note),
            decided_at=row.decided_at,
        )
    return VerificationCase(
        id=row.id,
        account_id=row.account_id,
        identity=protection.open_identity(
            row.id,
            row.identity,
            document_type=DocumentType(row.document_type),
            issuing_country=row.issuing_country,
        ),
        submitted_at=row.submitted_at,
        attempt=row.attempt,
        state=CaseState(row.state),
        resubmission_of=row.resubmission_of,
        review=review,
    )


def _token(case: VerificationCase) -> str:
    # Holds nothing a reviewer does not see anyway (a submission time and a case id).
    content = json.dumps({"at": case.submitted_at.isoformat(), "id": case.id})
    return base64.urlsafe_b64encode(content.encode()).decode().rstrip("=")


def _read_token(token: str) -> tuple[datetime, str]:
    try:
        content = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        at = datetime.fromisoformat(content["at"])
        after_id = content["id"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise page_token_invalid() from None
    if at.utcoffset() is None or not isinstance(after_id, str):
        raise page_token_invalid()
    return at, after_id


class SqlDocumentStore:
    """The document-store port on kyc's own database."""

    def __init__(self, session: AsyncSession, protection: Protection) -> None:
        self._session = session
        self._protection = protection

    async def put(self, case_id: str, side: ImageSide, image: DocumentImage) -> None:
        await self._session.execute(
            insert(document_images).values(
                case_id=case_id,
                side=side.value,
                content_type=image.image_type.value,
                content=self._protection.seal_image(case_id, side, image),
            )
        )

    async def get(self, case_id: str, side: ImageSide) -> DocumentImage | None:
        row = (
            await self._session.execute(
                select(document_images.c.content, document_images.c.content_type).where(
                    document_images.c.case_id == case_id, document_images.c.side == side.value
                )
            )
        ).one_or_none()
        if row is None:
            return None
        return self._protection.open_image(case_id, side, row.content, row.content_type)
