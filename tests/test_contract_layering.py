"""`contract/` and `common/` are the floor both processes stand on: they must not reach up.

Checked on the source (every import statement, including ones inside functions and TYPE_CHECKING
blocks), so a lazy import cannot sneak the station's daemon into the centre's process.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("edge", "central", "sync", "models", "door", "bench")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


SHARED = sorted([*(ROOT / "contract").glob("*.py"), *(ROOT / "common").glob("*.py")])


@pytest.mark.parametrize("path", SHARED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shared_packages_import_nothing_above_them(path: Path) -> None:
    bad = [name for name in _imports(path) if name.split(".")[0] in FORBIDDEN]
    assert not bad, f"{path.name} imports {bad}: shared code must not depend on station or centre code"


def test_both_shared_packages_are_checked() -> None:
    assert {p.parent.name for p in SHARED} == {"contract", "common"}


def test_layering_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    # The check itself must be able to fail.
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from edge.app import StationDaemon\n", encoding="utf-8")
    assert _imports(probe) == ["edge.app"]


@pytest.mark.parametrize("path", sorted((ROOT / "sync").glob("*.py")), ids=lambda p: p.name)
def test_sync_reaches_the_station_only_through_its_port(path: Path) -> None:
    bad = [name for name in _imports(path) if name.split(".")[0] in ("edge", "central")]
    assert not bad, f"sync/{path.name} imports {bad}: use sync.port.StationPort"


CENTRE_FORBIDDEN = ("edge", "sync", "models", "door", "bench")


@pytest.mark.parametrize(
    "path", sorted((ROOT / "central").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT / "central"))
)
def test_the_centre_imports_no_station_code(path: Path) -> None:
    bad = [name for name in _imports(path) if name.split(".")[0] in CENTRE_FORBIDDEN]
    assert not bad, f"{path.name} imports {bad}: the centre never runs station code"
