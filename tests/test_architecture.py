"""Import boundaries, read from the source with ``ast`` (function-level imports count too).

- The core package ``sluice`` imports no stage package (ingest, transform, quality, train, demo).
- A stage package imports another stage package only through the core or the lake, never directly.
- No import cycle between modules.
- No module over ``MAX_LINES`` lines outside tests.

``importlib.import_module("a.b")`` with a literal name counts as an import. The one allowed upward
reference is ``sluice.cli.COMMAND_MODULES``: a registry of command modules *by name* that the CLI
loads to build its parser. Those names are not edges (a stage module may import the core without
closing a cycle through the CLI); the test checks that the registry is a plain list of string
literals naming real modules, so it cannot hide a real import.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = "sluice"
STAGE_PACKAGES = ("ingest", "transform", "quality", "train", "demo")
PACKAGES = (CORE, *STAGE_PACKAGES)
MAX_LINES = 400



def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    files = {}
    for package in PACKAGES:
        root = REPO / package
        if root.is_dir():
            for path in sorted(root.rglob("*.py")):
                files[_module_name(path)] = path
    return files


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _imported_names(module: str, path: Path, tree: ast.AST) -> set[str]:
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            # ``from a import b`` imports ``a.b`` when b is a module, else ``a``.
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of ours it imports anywhere in its body."""
    files = source_files()
    modules = set(files)
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = {_resolve(name, modules) for name in _imported_names(module, path, tree)}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_core_imports_no_stage_package():
    crossing = sorted((m, t) for m, targets in import_graph().items() if m.split(".")[0] == CORE
                      for t in targets if t.split(".")[0] in STAGE_PACKAGES)
    assert not crossing, "the core imports stage packages:\n" + "\n".join(f"  {m} -> {t}" for m, t in crossing)


def test_stage_packages_do_not_import_each_other():
    crossing = sorted((m, t) for m, targets in import_graph().items() for t in targets
                      if m.split(".")[0] in STAGE_PACKAGES and t.split(".")[0] in STAGE_PACKAGES
                      and m.split(".")[0] != t.split(".")[0])
    assert not crossing, "stage packages import each other:\n" + "\n".join(f"  {m} -> {t}" for m, t in crossing)


def test_no_import_cycle():
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join("  " + " <-> ".join(c) for c in cycles)


def test_no_long_module():
    long = sorted(f"{path.relative_to(REPO)} ({n} lines)" for path in source_files().values()
                  if (n := len(path.read_text().splitlines())) > MAX_LINES)
    assert not long, f"modules over {MAX_LINES} lines:\n  " + "\n  ".join(long)


def test_command_registry_is_names_only():
    """``sluice.cli.COMMAND_MODULES`` is the one upward reference: string literals naming real modules."""
    tree = ast.parse((REPO / "sluice/cli.py").read_text())
    [value] = [node.value for node in tree.body if isinstance(node, ast.Assign)
               and any(getattr(t, "id", None) == "COMMAND_MODULES" for t in node.targets)]
    assert isinstance(value, ast.List) and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                               for e in value.elts)
    names = [e.value for e in value.elts]
    missing = [n for n in names if n not in source_files()]
    assert not missing, f"COMMAND_MODULES names unknown modules: {missing}"


def test_graph_sees_function_level_and_relative_imports():
    src = "def f():\n    from . import b\n    import importlib\n    importlib.import_module('x.y')\n"
    names = _imported_names("pkg.a", Path("pkg/a.py"), ast.parse(src))
    assert {"pkg.b", "x.y", "importlib"} <= names
