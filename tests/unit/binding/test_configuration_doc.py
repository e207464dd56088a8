"""docs/configuration.md stays true for binding: every setting has a row, none is made up."""

from __future__ import annotations

from services.binding.settings import BindingSettings
from tests.unit.auth.test_configuration_doc import documented_rows, mentioned, settings_names


def test_every_binding_setting_has_a_row() -> None:
    assert settings_names(BindingSettings) - documented_rows("BINDING_") == set()


def test_no_documented_binding_variable_is_made_up() -> None:
    assert mentioned("BINDING_") - settings_names(BindingSettings) == set()
