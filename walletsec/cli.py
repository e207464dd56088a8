"""The `walletsec` entry point: the root command with every command group registered.

A service's commands plug in here, each group in a module of its own: `kyc` (the review
queue) and `refund` (the refund queue: list, show, approve, reject, retry, reroute).
"""

from __future__ import annotations

from walletsec import accounts, audit, bulk, kyc, refund
from walletsec.app import app

__all__ = ["app", "main"]

accounts.register(app)
bulk.register(app)
app.add_typer(audit.commands, name="audit")
app.add_typer(kyc.commands, name="kyc")
app.add_typer(refund.commands, name="refund")


def main() -> None:
    app()
