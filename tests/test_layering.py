"""Imports flow one way: no module imports a package above its own, and no import cycles.

The layers are those of docs/architecture.md, lowest first. Every ``import`` of ours counts,
wherever it is written: at the top, inside a function (a "lazy" import still ties the two
modules together) or under ``if TYPE_CHECKING:`` (a type from above is a dependency on above).
The source is read with ``ast``; nothing is imported, so a cycle cannot hide behind import order.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import etdb

SRC = Path(etdb.__file__).parent

#: Each top-level package or module of ``etdb`` and its layer: a module may import its own
#: package and any lower layer, never an equal or a higher one (docs/architecture.md).
LAYERS: dict[str, int] = {
    "_version": 0,
    "units": 0,
    "record": 1,
    "content": 2,
    "mrc": 2,
    "config": 3,  # settings check record limits, addresses and peer URLs from below
    "ledger": 4,
    "index": 5,
    "publish": 6,
    "api": 7,
    "web": 8,  # the portal is built on the API's context, models and errors
    "client": 9,
    "demo": 10,
    "commands": 11,
    "cli": 12,
}


def module_files(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``), for every module under root."""
    found: dict[str, tuple[Path, bool]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """module -> {module of ours it imports: line}. ``from pkg import sub`` names ``pkg.sub``
    only when written inside ``pkg`` itself (Python has that ``__init__`` loaded already);
    from anywhere else it also runs ``pkg/__init__``, so it names both."""
    modules = module_files(root)
    top = root.name
    graph: dict[str, dict[str, int]] = {}
    for name, (path, is_package) in modules.items():
        own_package = name if is_package else name.rpartition(".")[0]
        deps: dict[str, int] = {}
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif node.level or not node.module:
                raise AssertionError(f"{path}:{node.lineno}: relative import")
            else:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [s for s in subs if s in modules]
                inside = own_package == node.module or own_package.startswith(node.module + ".")
                if not (inside and len(targets) == len(subs)):
                    targets.append(node.module)
            for target in targets:
                if target.split(".")[0] == top and target in modules and target != name:
                    deps.setdefault(target, node.lineno)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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


def upward_imports(graph: dict[str, dict[str, int]], layers: dict[str, int]) -> list[str]:
    """``module:line -> target`` for every import of an equal or higher layer's module."""
    found = []
    for name, deps in sorted(graph.items()):
        parts = name.split(".")
        if len(parts) == 1:
            continue  # the root package re-exports from anywhere (etdb.Client)
        for target, line in deps.items():
            target_parts = target.split(".")
            if len(target_parts) == 1 or target_parts[1] == parts[1]:
                continue
            if layers[target_parts[1]] >= layers[parts[1]]:
                found.append(f"{name}:{line} -> {target}")
    return found


def test_every_top_level_package_has_a_layer() -> None:
    names = {p.stem if p.suffix == ".py" else p.name for p in SRC.iterdir()}
    names = {
        n for n in names if n != "__init__" and ((SRC / n).is_dir() or (SRC / f"{n}.py").exists())
    }
    names.discard("__pycache__")
    assert names - set(LAYERS) == set(), "place the new package in LAYERS and architecture.md"


def test_no_import_cycles() -> None:
    assert cycles(import_graph(SRC)) == []


def test_no_upward_imports() -> None:
    assert upward_imports(import_graph(SRC), LAYERS) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


@pytest.mark.parametrize(
    "files, cycle",
    [
        # a lazy import inside a function
        (
            {
                "a/__init__.py": "",
                "a/x.py": "import pkg.a.y\n",
                "a/y.py": "def f():\n    import pkg.a.x\n",
            },
            ["pkg.a.x", "pkg.a.y"],
        ),
        # a type-only import
        (
            {
                "a/__init__.py": "",
                "a/x.py": "from pkg.a.y import Y\n",
                "a/y.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a.x import X\n",
            },
            ["pkg.a.x", "pkg.a.y"],
        ),
        # through a package __init__ that re-exports
        (
            {
                "a/__init__.py": "from pkg.a.x import X\n",
                "a/x.py": "",
                "b/__init__.py": "",
                "b/y.py": "",
            },
            None,
        ),
    ],
)
def test_the_checker_sees_cycles(
    tmp_path: Path, files: dict[str, str], cycle: list[str] | None
) -> None:
    found = cycles(import_graph(_tree(tmp_path, files)))
    assert found == ([cycle] if cycle else [])


def test_the_checker_sees_upward_imports(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "low/__init__.py": "",
            "low/x.py": "def f():\n    from pkg.high.y import g\n",
            "high/__init__.py": "",
            "high/y.py": "from pkg.low import x\n",
        },
    )
    graph = import_graph(root)
    assert upward_imports(graph, {"low": 0, "high": 1}) == ["pkg.low.x:2 -> pkg.high.y"]
