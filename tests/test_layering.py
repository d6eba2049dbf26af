"""DESIGN rule: sipwire.core is sans-IO. It must not import I/O, clocks or global randomness."""

from __future__ import annotations

import ast
import pathlib

import pytest

FORBIDDEN = {"asyncio", "socket", "ssl", "threading", "time", "random", "selectors"}
CORE = pathlib.Path(__file__).resolve().parents[1] / "src" / "sipwire" / "core"
LAYERS = ["core", "aio", "media", "store", "apps", "cli"]


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


CORE_FILES = sorted(CORE.rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_imports_no_io(path: pathlib.Path) -> None:
    bad = {n for n in _imports(path) if n.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}; sipwire.core must stay sans-IO"


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_downward(layer: str) -> None:
    """core -> aio/media -> store -> apps -> cli: a layer never imports one above it."""
    rank = {"core": 0, "aio": 1, "media": 1, "store": 2, "apps": 3, "cli": 4}
    root = CORE.parent / layer
    for path in root.rglob("*.py"):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "sipwire" or len(parts) < 2 or parts[1] not in rank:
                continue
            assert rank[parts[1]] <= rank[layer] or (layer, parts[1]) == ("aio", "media"), (
                f"{path.relative_to(root.parent)} imports {name}: layers import only downward"
            )


def test_core_has_files() -> None:
    assert len(CORE_FILES) >= 2


def test_public_names_resolve() -> None:
    """Every name in ``sipwire.__all__`` imports (the lazy table and ``__all__`` agree)."""
    import sipwire

    lazy = set(sipwire._LAZY)
    assert lazy <= set(sipwire.__all__)
    for name in sipwire.__all__:
        assert getattr(sipwire, name) is not None, name
