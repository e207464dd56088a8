"""`python -m services.kyc`: kyc on its `KYC_*` environment, serving until SIGTERM or SIGINT.

`python -m services.kyc rekey [--batch-size N]` re-encrypts every case, note and image under
the newest key of KYC_ENCRYPTION_KEYS and re-indexes every document number under
KYC_IDENTITY_INDEX_KEYS (services.kyc.adapters.rekey); safe to interrupt and run again.

Exit status: 0 after a graceful stop (or a finished rekey), 1 when a background task failed,
2 when the settings are refused (the message names the variables, never their values).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from services.kyc.adapters.protection import Protection
from services.kyc.adapters.rekey import DEFAULT_BATCH_SIZE, rekey
from services.kyc.bootstrap import MIGRATIONS_DIR, KycKeys, build
from services.kyc.settings import KycSettings
from walletcore.db import create_engine, session_factory
from walletcore.migrations import upgrade_to_head
from walletcore.service_kit import load_settings, prepared_database_url, serve

logger = logging.getLogger("services.kyc")


async def _rekey(settings: KycSettings, batch_size: int) -> None:
    keys = KycKeys.from_settings(settings)
    if settings.migrate_on_start:
        await upgrade_to_head(settings.database_url, MIGRATIONS_DIR)
    engine = create_engine(prepared_database_url(settings.database_url))
    try:
        report = await rekey(
            session_factory(engine),
            Protection(keys.encryption),
            keys.identity_index,
            batch_size=batch_size,
        )
    finally:
        await engine.dispose()
    logger.info(
        "rekey finished: %d cases, %d fields and %d images re-encrypted, %d digests added, "
        "%d removed",
        report.cases_seen,
        report.fields_reencrypted,
        report.images_reencrypted,
        report.digests_added,
        report.digests_removed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.kyc")
    commands = parser.add_subparsers(dest="command")
    rekey_command = commands.add_parser("rekey", help="re-encrypt every row under the newest key")
    rekey_command.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    arguments = parser.parse_args(argv)
    settings = load_settings(KycSettings, "kyc", logger)
    if settings is None:
        return 2
    if arguments.command == "rekey":
        asyncio.run(_rekey(settings, arguments.batch_size))
        return 0
    return serve(lambda: build(settings), logger)


if __name__ == "__main__":
    sys.exit(main())
