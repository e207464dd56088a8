"""The rooms of every service import only downwards (docs/architecture.md): the domain knows no
other room, the service layer no api or adapter, adapters never the api. A newcomer's shortcut
across a wall fails here, naming the file and the import."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import pytest

SERVICES: Final = Path(__file__).resolve().parents[3] / "services"

# room -> the sibling rooms it must not import
FORBIDDEN: Final = {
    "domain": {"api", "service", "adapters"},
    "service": {"api", "adapters"},
    "adapters": {"api"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def crossings(service: Path) -> list[str]:
    """Every import in `service` (a folder under services/) that crosses a wall."""
    found = []
    for room, forbidden in FORBIDDEN.items():
        for path in sorted((service / room).rglob("*.py")):
            for module in sorted(imported_modules(path)):
                parts = module.split(".")
                inside = parts[:2] == ["services", service.name] and len(parts) > 2
                if inside and parts[2] in forbidden:
                    found.append(f"{path.relative_to(service.parent)} imports {module}")
    return found


def services() -> list[Path]:
    return sorted(p for p in SERVICES.iterdir() if (p / "__init__.py").exists())


def test_the_services_have_rooms_to_check() -> None:
    assert "auth" in [service.name for service in services()]


@pytest.mark.parametrize("service", services(), ids=lambda p: p.name)
def test_no_room_imports_a_room_above_it(service: Path) -> None:
    assert crossings(service) == []


def test_a_crossing_is_found(tmp_path: Path) -> None:
    adapter = tmp_path / "demo" / "adapters" / "x.py"
    adapter.parent.mkdir(parents=True)
    adapter.write_text("from services.demo.api.convert import thing\n", encoding="utf-8")

    assert crossings(tmp_path / "demo") == ["demo/adapters/x.py imports services.demo.api.convert"]
