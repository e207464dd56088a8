"""`python -m services.auth`: auth on its `AUTH_*` environment, serving until SIGTERM or SIGINT.

Exit status: 0 after a graceful stop, 1 when a background task (the outbox dispatcher) failed,
2 when the settings are refused (the message names the variables, never their values).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from services.auth.bootstrap import build
from services.auth.settings import AuthSettings
from walletcore.grpc.server import BackgroundTaskFailed
from walletcore.logging import configure_logging

logger = logging.getLogger("services.auth")


def main() -> int:
    configure_logging("auth")
    try:
        settings = AuthSettings()
    except ValidationError as refused:
        # hide_input_in_errors keeps the values (URLs, keys) out of this message.
        logger.error("the settings were refused: %s", refused)
        return 2
    configure_logging(settings.service_name, settings.log_level)
    try:
        asyncio.run(build(settings).run_until_signal())
    except BackgroundTaskFailed as failed:
        logger.error("stopped because a background task failed: %s", failed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
