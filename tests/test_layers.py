"""The package's layers: imports point down, nothing imports in a circle, and ``tulu_lib``
imports stand at the top of files.

A module may import from its own layer and the layers below it (:data:`LAYERS`, lowest first).
A ``tulu_lib`` import inside a function is allowed only with a ``# lazy:`` comment giving the
reason on its line (the CLI keeps ``validate`` and ``report`` free of the training stack).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tulu_lib"
LAYERS = ("core", "generation", "evals", "data", "train", "reporting", "ablations", "workbook", "cli")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    return LAYERS.index(part)


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> list[tuple[str, ast.stmt, bool]]:
    """(imported tulu_lib module, node, at top level) for every tulu_lib import of a file."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tulu_lib"):
            targets = [_resolve(f"{node.module}.{a.name}") or _resolve(node.module) for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [_resolve(a.name) for a in node.names if a.name.startswith("tulu_lib")]
        out += [(t, node, id(node) in top) for t in targets if t]
    return out


GRAPH = {m: {t for t, _, _ in _imports(p) if t != m and MODULES[t].name != "__init__.py"}
         for m, p in MODULES.items()}


def test_every_module_is_in_a_layer():
    for module in MODULES:
        if module != "tulu_lib":
            assert module.split(".")[1] in LAYERS, f"{module}: not in a layer of {LAYERS}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "tulu_lib"))
def test_imports_point_down(module):
    upward = [t for t in GRAPH[module] if _layer(t) > _layer(module)]
    assert not upward, f"{module} ({LAYERS[_layer(module)]}) imports from a higher layer: {sorted(upward)}"


def test_no_import_circles():
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_tulu_lib_imports_stand_at_the_top():
    lazy = []
    for path in MODULES.values():
        lines = path.read_text().splitlines()
        for target, node, top in _imports(path):
            if not top and "# lazy:" not in lines[node.lineno - 1]:
                lazy.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} imports {target}")
    assert not lazy, "tulu_lib imports in functions without '# lazy: <reason>':\n" + "\n".join(lazy)


def test_an_upward_import_is_caught(tmp_path):
    """The check itself fails on a planted upward import (a test that cannot fail proves nothing)."""
    assert _layer("tulu_lib.core.params") < _layer("tulu_lib.evals.suite")
    planted = {**GRAPH, "tulu_lib.core.params": GRAPH["tulu_lib.core.params"] | {"tulu_lib.evals.suite"}}
    assert [t for t in planted["tulu_lib.core.params"] if _layer(t) > _layer("tulu_lib.core.params")]
