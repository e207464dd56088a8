"""docs/configuration.md stays true for refund: every setting has a row, none is made up (the
simulated gateway's REFUND_SIM_* variables are its own, read by `services.refund.gateway_sim`)."""

from __future__ import annotations

from pathlib import Path

from services.refund.settings import RefundSettings
from tests.unit.auth.test_configuration_doc import documented_rows, mentioned, settings_names

ROOT = Path(__file__).resolve().parents[3]
SIMULATOR_PREFIX = "REFUND_SIM_"


def test_every_refund_setting_has_a_row() -> None:
    assert settings_names(RefundSettings) - documented_rows("REFUND_") == set()


def test_no_documented_refund_variable_is_made_up() -> None:
    documented = {n for n in mentioned("REFUND_") if not n.startswith(SIMULATOR_PREFIX)}
    assert documented - settings_names(RefundSettings) == set()


def test_the_simulators_variables_are_the_ones_it_reads() -> None:
    source = (ROOT / "services" / "refund" / "gateway_sim.py").read_text()
    for name in mentioned(SIMULATOR_PREFIX):
        assert name.removeprefix("REFUND_SIM_") in source
