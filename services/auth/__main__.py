"""`python -m services.auth`: auth on its `AUTH_*` environment, serving until SIGTERM or SIGINT.

Exit status: 0 after a graceful stop, 1 when a background task (the outbox dispatcher) failed,
2 when the settings are refused (the message names the variables, never their values).
"""

from __future__ import annotations

import sys

from services.auth.bootstrap import build
from services.auth.settings import AuthSettings
from walletcore.service_kit import serve_main


def main() -> int:
    return serve_main("auth", AuthSettings, build)


if __name__ == "__main__":
    sys.exit(main())
