"""`python -m services.binding`: binding on its `BINDING_*` environment, serving until SIGTERM
or SIGINT (exit status as `walletcore.service_kit.serve_main` documents)."""

from __future__ import annotations

import sys

from services.binding.bootstrap import build
from services.binding.settings import BindingSettings
from walletcore.service_kit import serve_main

if __name__ == "__main__":
    sys.exit(serve_main("binding", BindingSettings, build))
