"""The three packages depend in one direction: models <- streams <- alerts."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {"models": {"streams", "alerts", "faust"}, "streams": {"alerts"}, "alerts": set()}


def imported_roots(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downstream_packages(package: str) -> None:
    roots = imported_roots(package)
    bad = {name: sorted(files) for name, files in roots.items() if name in FORBIDDEN[package]}
    assert not bad, f"{package} must not import {bad}"
