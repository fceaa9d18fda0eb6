"""The architecture is checked, not hoped for: the layers of DESIGN.md and no import cycle.

``lint-imports`` (import-linter) checks the layers contract in pyproject.toml;
grimp (its import graph) finds every import cycle between modules of
``harness``. Imports under ``if TYPE_CHECKING:`` are not imports at run time and
are left out of both. Each check is shown to fail on a small package built to
break it.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

REPO = Path(__file__).parents[2]


def import_cycles(package: str) -> list[list[str]]:
    """Every strongly connected set of two or more modules of ``package`` (Tarjan)."""
    graph = grimp.build_graph(package, cache_dir=None, exclude_type_checking_imports=True)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # iterative enough for a few hundred modules
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


@pytest.fixture
def scratch_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An importable package ``scratchpkg`` in tmp_path (removed from sys.modules after)."""
    root = tmp_path / "scratchpkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield root
    for name in [m for m in sys.modules if m.split(".")[0] == "scratchpkg"]:
        del sys.modules[name]


def test_harness_has_no_import_cycle():
    cycles = import_cycles("harness")
    assert not cycles, "import cycles in harness/ (break each: move the shared part down):\n" \
        + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(scratch_package):
    (scratch_package / "a.py").write_text("from scratchpkg import b\n")
    (scratch_package / "b.py").write_text("def f():\n    from scratchpkg import c\n")
    (scratch_package / "c.py").write_text("import scratchpkg.a\n")
    (scratch_package / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import scratchpkg.a\n")
    (scratch_package / "e.py").write_text("import scratchpkg.d\n")
    assert import_cycles("scratchpkg") == [["scratchpkg.a", "scratchpkg.b", "scratchpkg.c"]]


def test_harness_keeps_the_layers_of_design_md(monkeypatch):
    monkeypatch.chdir(REPO)
    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True,
                        no_logo=True) == 0, "lint-imports: a layer imports upward (see above)"


def test_the_layers_contract_fails_on_an_upward_import(scratch_package):
    for name in ("target", "initiator", "lab"):
        (scratch_package / name).mkdir()
        (scratch_package / name / "__init__.py").write_text("")
    (scratch_package / "lab" / "up.py").write_text("import scratchpkg.initiator\n")
    (scratch_package / "target" / "peer.py").write_text("import scratchpkg.initiator\n")
    config = scratch_package.parent / "layers.toml"
    config.write_text(textwrap.dedent("""
        [tool.importlinter]
        root_package = "scratchpkg"

        [[tool.importlinter.contracts]]
        name = "layers"
        type = "layers"
        layers = ["scratchpkg.lab", "scratchpkg.initiator | scratchpkg.target"]
    """))
    assert lint_imports(config_filename=str(config), no_cache=True, no_logo=True) == 1
    (scratch_package / "target" / "peer.py").write_text("")
    assert lint_imports(config_filename=str(config), no_cache=True, no_logo=True) == 0


def test_fixtures_holds_only_the_plugins_glue():
    """Every module of fixtures/ is the plugin, its settings or a plugin it lists:
    a helper added there would ship to every user of the plugin (use tests/support
    or the library instead)."""
    from fixtures import plugin

    modules = {p.stem for p in (REPO / "fixtures").glob("*.py")} - {"__init__"}
    listed = {name.removeprefix("fixtures.") for name in plugin.pytest_plugins}
    assert modules == listed | {"plugin", "settings"}, modules ^ (listed | {"plugin", "settings"})
