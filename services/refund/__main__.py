"""`python -m services.refund`: refund until SIGTERM (exit 0 after a graceful stop)."""

from __future__ import annotations

import logging
import sys

from services.refund.bootstrap import build
from services.refund.settings import RefundSettings
from walletcore.service_kit import load_settings, serve

logger = logging.getLogger("services.refund")


def main() -> int:
    settings = load_settings(RefundSettings, "refund", logger)
    if settings is None:
        return 2
    return serve(lambda: build(settings), logger)


if __name__ == "__main__":
    sys.exit(main())
