"""Re-encrypting every row under the newest key: `python -m services.kyc rekey`.

After a new key is prepended to KYC_ENCRYPTION_KEYS (or KYC_IDENTITY_INDEX_KEYS), old rows
stay readable under the retired key; this job rewrites them so the retired key can be removed:
each case's identity and note and each image is re-encrypted under the active key (same
associated data), and each case's identity digests become exactly the index ring's current
candidates (added under the new key, dropped for keys no longer in the ring).

It walks the cases in id order, a batch per transaction (rows locked on PostgreSQL, so a
decision meanwhile waits instead of being overwritten), and commits each batch: an interrupted
run keeps what it committed, and a rerun skips whatever is already under the active key, so it
is safe to stop and start again at any point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kyc.adapters.protection import Protection, identity_data, image_data, note_data
from services.kyc.adapters.tables import document_images, identity_digests, verification_cases
from services.kyc.domain.documents import DocumentType
from services.kyc.domain.images import ImageSide
from services.kyc.service.ports import IdentityIndex
from walletcore.db import lock_for_update

DEFAULT_BATCH_SIZE: Final = 100
logger = logging.getLogger("services.kyc.rekey")


@dataclass
class RekeyReport:
    cases_seen: int = 0
    fields_reencrypted: int = 0
    images_reencrypted: int = 0
    digests_added: int = 0
    digests_removed: int = 0


async def rekey(
    sessions: async_sessionmaker[AsyncSession],
    protection: Protection,
    identity_index: IdentityIndex,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_batches: int | None = None,
) -> RekeyReport:
    """Rewrites every case (or the first `max_batches` batches: a bounded run) and returns
    what it changed."""
    report = RekeyReport()
    after = ""
    batches = 0
    while max_batches is None or batches < max_batches:
        async with sessions() as session, session.begin():
            rows = (
                await session.execute(
                    lock_for_update(
                        select(verification_cases)
                        .where(verification_cases.c.id > after)
                        .order_by(verification_cases.c.id)
                        .limit(batch_size)
                    )
                )
            ).all()
            for row in rows:
                await _rekey_case(session, row, protection, identity_index, report)
        if not rows:
            break
        after = rows[-1].id
        batches += 1
        logger.info("rekey: %d cases so far", report.cases_seen)
    return report


async def _rekey_case(
    session: AsyncSession,
    row: Row[Any],
    protection: Protection,
    identity_index: IdentityIndex,
    report: RekeyReport,
) -> None:
    ring = protection.encryption
    case_id: str = row.id
    report.cases_seen += 1
    changes: dict[str, bytes] = {}
    sealed_identity: bytes = row.identity
    if ring.needs_reencryption(sealed_identity):
        changes["identity"] = ring.reencrypt(
            sealed_identity, associated_data=identity_data(case_id)
        )
    sealed_note: bytes | None = row.note
    if sealed_note is not None and ring.needs_reencryption(sealed_note):
        changes["note"] = ring.reencrypt(sealed_note, associated_data=note_data(case_id))
    if changes:
        await session.execute(
            update(verification_cases).where(verification_cases.c.id == case_id).values(changes)
        )
        report.fields_reencrypted += len(changes)

    identity = protection.open_identity(
        case_id,
        changes.get("identity", sealed_identity),
        document_type=DocumentType(row.document_type),
        issuing_country=row.issuing_country,
    )
    wanted = identity_index.candidates(identity.document.index_value)
    stored = set(
        (
            await session.scalars(
                select(identity_digests.c.digest).where(identity_digests.c.case_id == case_id)
            )
        ).all()
    )
    missing = [digest for digest in dict.fromkeys(wanted) if digest not in stored]
    if missing:
        await session.execute(
            insert(identity_digests),
            [
                {"case_id": case_id, "digest": digest, "account_id": row.account_id}
                for digest in missing
            ],
        )
        report.digests_added += len(missing)
    stale = stored - set(wanted)
    if stale:
        await session.execute(
            delete(identity_digests).where(
                identity_digests.c.case_id == case_id, identity_digests.c.digest.in_(stale)
            )
        )
        report.digests_removed += len(stale)

    images = await session.execute(
        select(document_images.c.side, document_images.c.content).where(
            document_images.c.case_id == case_id
        )
    )
    for side, content in images.all():
        if ring.needs_reencryption(content):
            await session.execute(
                update(document_images)
                .where(document_images.c.case_id == case_id, document_images.c.side == side)
                .values(
                    content=ring.reencrypt(
                        content, associated_data=image_data(case_id, ImageSide(side))
                    )
                )
            )
            report.images_reencrypted += 1
