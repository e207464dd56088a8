"""Kyc's SQL adapters on SQLite and PostgreSQL: the migrated schema, no plaintext at rest,
key rotation with the rekey job, and concurrent submissions."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.kyc.adapters import tables
from services.kyc.adapters.protection import Protection
from services.kyc.adapters.rekey import rekey
from services.kyc.adapters.uow import SqlKycUnitOfWork
from services.kyc.domain.cases import CaseFlag, Decision, RejectionReason
from services.kyc.domain.documents import DocumentType
from services.kyc.domain.images import ImageSide
from services.kyc.service.context import KycContext
from services.kyc.service.ports import IDENTITY_INDEX_CONTEXT
from services.kyc.service.review import decide_case, get_case
from services.kyc.service.verification import ImageUpload, Submission, submit_verification
from walletcore.crypto import BlindIndex, DecryptionFailed, KeyRing
from walletcore.db import create_engine, session_factory
from walletcore.errors import Aborted, FailedPrecondition
from walletcore.fakes import FakeClock
from walletcore.idempotency import REQUEST_FINGERPRINT_CONTEXT, IdempotencyRecords
from walletcore.keys import format_key_spec, generate_key
from walletcore.migrations import main, service_migrations_dir, upgrade_to_head
from walletcore.transactions import SqlTransactions

NAME = "Wang Xiaoming"
NUMBER = "11010519491231002X"
FRONT = b"\xff\xd8\xff\xe0" + b"front-image-bytes" * 20
BACK = b"\x89PNG\r\n\x1a\n" + b"back-image-bytes" * 20
SELFIE = b"%PDF-1.7\n" + b"selfie-image-bytes" * 20
SUBMISSION = Submission(
    legal_name=NAME,
    document_type=None,
    document_number=NUMBER,
    issuing_country="CN",
    expiry_date=date(2030, 1, 1),
    date_of_birth=None,
    front=ImageUpload(FRONT, "image/jpeg"),
    back=ImageUpload(BACK, "image/png"),
    selfie=ImageUpload(SELFIE, "application/pdf"),
)

Tx = SqlTransactions[SqlKycUnitOfWork]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_to_head(database_url, service_migrations_dir("kyc"))
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


def transactions(sessions: async_sessionmaker[AsyncSession], protection: Protection) -> Tx:
    return SqlTransactions(
        lambda: SqlKycUnitOfWork(sessions, protection),
        IdempotencyRecords(
            tables.idempotency_records,
            fingerprints=BlindIndex.development(context=REQUEST_FINGERPRINT_CONTEXT),
        ),
    )


def context(index: BlindIndex, ids: Callable[[], str] | None = None) -> KycContext:
    counter = iter(range(1, 10_000))
    return KycContext(
        clock=FakeClock(),
        new_id=ids or (lambda: f"case-{next(counter):04d}"),
        identity_index=index,
    )


OLD_KEY, NEW_KEY = generate_key("k1"), generate_key("k2")
OLD_INDEX_KEY, NEW_INDEX_KEY = generate_key("i1"), generate_key("i2")
OLD_RING = KeyRing([OLD_KEY])
OLD_INDEX = BlindIndex([OLD_INDEX_KEY], context=IDENTITY_INDEX_CONTEXT)


async def submit(tx: Tx, ctx: KycContext, account_id: str) -> str:
    submission = dataclasses.replace(SUBMISSION, document_type=DocumentType.CN_RESIDENT_ID)
    case = await tx.run(
        lambda uow: submit_verification(uow, ctx, account_id=account_id, submission=submission)
    )
    return case.id


async def test_the_migrated_schema_is_exactly_the_adapters_schema(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await upgrade_to_head(database_url, service_migrations_dir("kyc"))
    exit_code = await asyncio.to_thread(main, ["check", "kyc", "--database-url", database_url])
    assert exit_code == 0, capsys.readouterr().err


async def raw_bytes(engine: AsyncEngine) -> bytes:
    """Every value of every kyc table, as one blob to search."""
    blob = bytearray()
    async with engine.connect() as connection:
        for table in tables.metadata.sorted_tables:
            for row in (await connection.execute(select(table))).all():
                for value in row:
                    blob += value if isinstance(value, bytes) else str(value).encode()
    return bytes(blob)


async def test_no_table_holds_a_name_number_or_image_in_clear(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    protection = Protection(OLD_RING)
    tx = transactions(sessions, protection)
    ctx = context(OLD_INDEX)
    case_id = await submit(tx, ctx, "acc-1")
    await tx.run(
        lambda uow: decide_case(
            uow,
            ctx,
            reviewer_id="rev-1",
            case_id=case_id,
            decision=Decision.REJECT_RETRY,
            reason=RejectionReason.IMAGE_UNREADABLE,
            note="Wang looks different",
        )
    )
    blob = await raw_bytes(engine)
    assert len(blob) > len(FRONT) + len(BACK) + len(SELFIE)  # the images are in there, sealed
    for secret in (NAME.encode(), b"Wang", NUMBER.encode(), NUMBER[:10].encode(), b"1949-12-31"):
        assert secret not in blob
    for image in (FRONT, BACK, SELFIE):
        assert image[20:60] not in blob
    assert b"looks different" not in blob


async def test_a_ciphertext_moved_to_another_case_does_not_decrypt(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    protection = Protection(OLD_RING)
    tx = transactions(sessions, protection)
    ctx = context(OLD_INDEX)
    first = await submit(tx, ctx, "acc-1")
    second = await submit(tx, ctx, "acc-2")
    async with engine.begin() as connection:
        sealed = (
            await connection.execute(
                select(tables.verification_cases.c.identity).where(
                    tables.verification_cases.c.id == first
                )
            )
        ).scalar_one()
        await connection.execute(
            tables.verification_cases.update()
            .where(tables.verification_cases.c.id == second)
            .values(identity=sealed)
        )
    with pytest.raises(DecryptionFailed):
        await tx.run(lambda uow: uow.cases.get(second))


async def test_after_a_rotation_rekey_keeps_every_case_readable(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    old = Protection(OLD_RING)
    old_tx = transactions(sessions, old)
    ctx = context(OLD_INDEX)
    first = await submit(old_tx, ctx, "acc-1")
    other = await submit(old_tx, ctx, "acc-2")
    await old_tx.run(
        lambda uow: decide_case(
            uow,
            ctx,
            reviewer_id="rev-1",
            case_id=other,
            decision=Decision.REJECT_FINAL,
            reason=RejectionReason.DUPLICATE_IDENTITY,
            note="second account",
        )
    )

    rotated = Protection(KeyRing([NEW_KEY, OLD_KEY]))
    rotated_index = BlindIndex([NEW_INDEX_KEY, OLD_INDEX_KEY], context=IDENTITY_INDEX_CONTEXT)
    # Before any rekey, the rotated ring reads the old rows and finds the old digests.
    before = await transactions(sessions, rotated).run(
        lambda uow: get_case(uow, context(rotated_index), reviewer_id="rev-1", case_id=first)
    )
    assert before.duplicate_account_ids == ["acc-2"]

    # Interrupted after one batch of one case, then run again to the end.
    partial = await rekey(sessions, rotated, rotated_index, batch_size=1, max_batches=1)
    assert partial.cases_seen == 1
    report = await rekey(sessions, rotated, rotated_index, batch_size=1)
    assert report.cases_seen == 2  # the rerun starts over and skips what is done
    assert report.images_reencrypted == 3  # only the second case's were left
    again = await rekey(sessions, rotated, rotated_index)
    assert (again.fields_reencrypted, again.images_reencrypted, again.digests_added) == (0, 0, 0)

    # Only the new keys are left: everything still reads, and the duplicate is still found.
    new_only = Protection(KeyRing([NEW_KEY]))
    new_index = BlindIndex([NEW_INDEX_KEY], context=IDENTITY_INDEX_CONTEXT)
    removed = await rekey(sessions, new_only, new_index)
    assert removed.digests_removed == 2  # each case's digest under the retired index key
    new_tx = transactions(sessions, new_only)
    review = await new_tx.run(
        lambda uow: get_case(uow, context(new_index), reviewer_id="rev-1", case_id=first)
    )
    assert review.case.identity.legal_name == NAME
    assert review.case.identity.document.number == NUMBER
    assert review.images[ImageSide.FRONT].content == FRONT
    assert review.duplicate_account_ids == ["acc-2"]
    decided = await new_tx.run(lambda uow: uow.cases.get(other))
    assert decided is not None
    assert decided.review is not None
    assert decided.review.note == "second account"


async def test_two_accounts_racing_one_number_are_both_flagged(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tx = transactions(sessions, Protection(OLD_RING))
    ctx = context(OLD_INDEX, ids=lambda: uuid.uuid4().hex)
    first, second = await asyncio.gather(submit(tx, ctx, "acc-1"), submit(tx, ctx, "acc-2"))
    for case_id, other in ((first, "acc-2"), (second, "acc-1")):
        review = await tx.run(
            functools.partial(get_case, ctx=ctx, reviewer_id="rev-1", case_id=case_id)
        )
        assert CaseFlag.DUPLICATE_IDENTITY in review.flags
        assert review.duplicate_account_ids == [other]
    queue = await tx.run(lambda uow: uow.cases.review_queue(limit=10, page_token=""))
    assert queue.duplicates == {first, second}


async def test_one_account_racing_itself_stores_one_case(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tx = transactions(sessions, Protection(OLD_RING))
    ctx = context(OLD_INDEX, ids=lambda: uuid.uuid4().hex)
    results = await asyncio.gather(
        *(submit(tx, ctx, "acc-1") for _ in range(4)), return_exceptions=True
    )
    stored = [r for r in results if isinstance(r, str)]
    assert len(stored) == 1
    # The losers are refused as a concurrent submission, or (once the winner committed)
    # because a case is already pending.
    assert all(isinstance(r, Aborted | FailedPrecondition) for r in results if r not in stored)
    async with engine.connect() as connection:
        count = await connection.scalar(text("SELECT COUNT(*) FROM verification_cases"))
    assert count == 1


async def test_the_rekey_command_rewrites_under_the_newest_key(
    database_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    old_tx = transactions(sessions, Protection(OLD_RING))
    case_id = await submit(old_tx, context(OLD_INDEX), "acc-1")
    environment = {name: value for name, value in os.environ.items() if not name.startswith("KYC_")}
    environment.update(
        {
            "KYC_DATABASE_URL": database_url,
            "KYC_ENCRYPTION_KEYS": format_key_spec([NEW_KEY, OLD_KEY]),
            "KYC_IDENTITY_INDEX_KEYS": format_key_spec([NEW_INDEX_KEY, OLD_INDEX_KEY]),
        }
    )
    command = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.kyc",
        "rekey",
        "--batch-size",
        "1",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await command.communicate()
    assert command.returncode == 0, output.decode()

    new_only = transactions(sessions, Protection(KeyRing([NEW_KEY])))
    new_index = BlindIndex([NEW_INDEX_KEY], context=IDENTITY_INDEX_CONTEXT)
    review = await new_only.run(
        lambda uow: get_case(uow, context(new_index), reviewer_id="rev-1", case_id=case_id)
    )
    assert review.case.identity.document.number == NUMBER
    assert review.images[ImageSide.SELFIE].content == SELFIE
    assert b"rekey finished: 1 cases" in output
    assert NUMBER.encode() not in output
    assert NAME.encode() not in output
