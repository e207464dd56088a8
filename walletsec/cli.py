"""The `walletsec` entry point: the root command with every command group registered.

A service's commands plug in here: refund's queue (list, approve, reject, retry, re-route)
becomes a `walletsec/refund.py` with its own Typer group, added below like `kyc`, and its
audit chain one more entry in `walletsec.audit.AUDITED`.
"""

from __future__ import annotations

from walletsec import accounts, audit, bulk, kyc
from walletsec.app import app

__all__ = ["app", "main"]

accounts.register(app)
bulk.register(app)
app.add_typer(audit.commands, name="audit")
app.add_typer(kyc.commands, name="kyc")


def main() -> None:
    app()
