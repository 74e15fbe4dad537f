"""The import rule of docs/architecture.md, checked: layers only point down, and no cycles.

Why a test: the layering is what lets a newcomer read the code from the top (the CLI) down to
the tools without meeting a name from above; one convenient import in the wrong direction
undoes it silently. This walks the AST of every module under imagepipe/ (imports at the top,
inside functions and under TYPE_CHECKING alike: a lazy import is still a dependency) and fails
on an import of a higher layer, on any import cycle, and on a module the table below forgets.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "imagepipe"

# Lowest first. A module belongs to the longest prefix listed. It may import its own layer
# (without a cycle) and any layer below, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("imagepipe.__init__", "imagepipe.errors", "imagepipe.limits", "imagepipe.redact",
              "imagepipe.sizes", "imagepipe.hashing", "imagepipe.formats", "imagepipe.artifact",
              "imagepipe.cache_root", "imagepipe.durable", "imagepipe.lifecycle", "imagepipe.ui",
              "imagepipe.activity", "imagepipe.events")),
    ("tools", ("imagepipe.tools", "imagepipe.interrupts")),
    ("domain", ("imagepipe.apt", "imagepipe.bases", "imagepipe.guest", "imagepipe.cloudinit",
                "imagepipe.convert", "imagepipe.boot", "imagepipe.targets", "imagepipe.recipe",
                "imagepipe.fetch", "imagepipe.store", "imagepipe.inventory")),
    ("stages", ("imagepipe.stages",)),
    ("pipeline", ("imagepipe.pipeline",)),
    ("face", ("imagepipe.cli", "imagepipe.farm", "imagepipe.__main__")),
    ("testing", ("imagepipe.testing",)),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    """The index in LAYERS of `module`'s layer (None: the table forgets it)."""
    if module == "imagepipe":
        module = "imagepipe.__init__"  # the package itself (its version), not all beneath it
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                    best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def imports_of(module: str) -> set[str]:
    """Every imagepipe module that `module` imports, wherever the import statement stands."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(_known(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(_known(f"{base}.{alias.name}"))
    found.discard("")
    found.discard(module)
    return found


def _known(name: str) -> str:
    """The longest prefix of `name` that is a module of the tree ('' outside imagepipe)."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name


@cache
def graph() -> dict[str, set[str]]:
    return {m: imports_of(m) for m in modules()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_every_module_has_a_layer() -> None:
    missing = [m for m in modules() if layer_of(m) is None]
    assert not missing, f"add these modules to LAYERS (and docs/architecture.md): {missing}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for module, targets in graph().items():
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{module} ({LAYERS[mine][0]}) imports {target} "
                              f"({LAYERS[theirs][0]})")
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("source, expected", [
    ("import imagepipe.errors\n", {"imagepipe.errors"}),
    ("from imagepipe import ui\n", {"imagepipe.ui"}),
    ("def f():\n    from imagepipe.store import Store\n", {"imagepipe.store"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from imagepipe.cli import main\n",
     {"imagepipe.cli"}),
])
def test_the_walk_sees_every_kind_of_import(source: str, expected: set[str],
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    """The checker itself can fail: a lazy or TYPE_CHECKING import is found like any other."""
    monkeypatch.setitem(modules(), "imagepipe.zz_probe", tmp_path / "zz_probe.py")
    (tmp_path / "zz_probe.py").write_text(source)
    assert imports_of("imagepipe.zz_probe") == expected


def test_an_upward_import_and_a_cycle_are_caught() -> None:
    assert layer_of("imagepipe.store.locks") == 2 and layer_of("imagepipe.cli.build") == 5
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
