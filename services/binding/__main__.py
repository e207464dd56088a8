"""`python -m services.binding`: binding on its `BINDING_*` environment, serving until SIGTERM
or SIGINT.

Exit status: 0 after a graceful stop, 1 when a background task failed, 2 when the settings are
refused (the message names the variables, never their values).
"""

from __future__ import annotations

import logging
import sys

from services.binding.bootstrap import build
from services.binding.settings import BindingSettings
from walletcore.service_kit import load_settings, serve

logger = logging.getLogger("services.binding")


def main() -> int:
    settings = load_settings(BindingSettings, "binding", logger)
    if settings is None:
        return 2
    return serve(lambda: build(settings), logger)


if __name__ == "__main__":
    sys.exit(main())
