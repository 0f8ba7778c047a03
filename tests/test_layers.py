"""The layering rule, checked by walking every import of the package with ``ast``.

A module may import only from its own subpackage or from lower layers:
core < kg < tasks < generate < score < evaluate < downstream < analysis = finetune < testing <
bench = pipeline < cli. Subpackages of the same rank may not import each other. Imports inside
functions count. ``argparse`` belongs to ``cli/`` only; ``matplotlib``/``seaborn`` to
``analysis/`` and the notebooks' view helpers (modules named ``*view.py``/``*views.py``, which
draw for one notebook).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "medsyn_utils"
RANK = {"core": 0, "kg": 1, "tasks": 2, "generate": 3, "score": 4, "evaluate": 5,
        "downstream": 6, "analysis": 7, "finetune": 7, "testing": 8, "bench": 9, "pipeline": 9,
        "cli": 10}
ONLY_IN = {"argparse": "cli", "matplotlib": "analysis", "seaborn": "analysis"}

# Known violations, each with its reason; an entry that is no longer a violation fails the test,
# so the list only shrinks. Format: (importing module, imported module or library).
KNOWN: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[str]:
    """Every module a file imports, at the top or inside functions, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append(module)
            # ``from medsyn_utils import score`` imports the subpackage
            if module == "medsyn_utils":
                found += [f"medsyn_utils.{alias.name}" for alias in node.names]
    return found


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "medsyn_utils" and len(parts) > 1 and parts[1] in RANK else None


def violations() -> set[tuple[str, str]]:
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        own = subpackage(importer)
        if own is None:
            continue  # medsyn_utils/__init__.py: the version only
        for module in imported_modules(path):
            library = module.split(".")[0]
            view_helper = path.stem.endswith(("view", "views")) and library != "argparse"
            if library in ONLY_IN and ONLY_IN[library] != own and not view_helper:
                found.add((importer, library))
            other = subpackage(module)
            if other is None or other == own:
                continue
            if RANK[other] >= RANK[own]:
                found.add((importer, module))
    return found


def test_the_walker_sees_lazy_and_relative_imports(tmp_path):
    source = PACKAGE / "core" / "_layer_probe.py"
    try:
        source.write_text("def f():\n    from ..cli import app\n    import matplotlib.pyplot\n")
        assert set(imported_modules(source)) == {"medsyn_utils.cli", "matplotlib.pyplot"}
        assert ("medsyn_utils.core._layer_probe", "medsyn_utils.cli") in violations()
        assert ("medsyn_utils.core._layer_probe", "matplotlib") in violations()
    finally:
        source.unlink()


def test_no_lower_layer_imports_a_higher_one():
    found = violations()
    new = sorted(found - KNOWN)
    assert not new, "layering violations (see the rule in this file's docstring):\n" + \
        "\n".join(f"  {a} imports {b}" for a, b in new)
    fixed = sorted(KNOWN - found)
    assert not fixed, "no longer violations: remove them from KNOWN:\n" + \
        "\n".join(f"  {a} imports {b}" for a, b in fixed)


# Module-level import cycles (lazy imports inside functions count too), as sets of modules.
KNOWN_CYCLES: set[frozenset[str]] = set()


def _module_files() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """Module → the kit's modules it imports (``from pkg import mod`` resolved to the module)."""
    files = _module_files()
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1])
                    module = f"{base}.{node.module}" if node.module else base
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in files else module
                           for a in node.names]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.add(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_sees_a_lazy_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == {frozenset({"a", "b", "c"})}
    assert import_cycles({"a": {"b"}, "b": set()}) == set()


def test_no_import_cycle_between_modules():
    found = import_cycles(import_graph())
    new = sorted(sorted(group) for group in found - KNOWN_CYCLES)
    assert not new, "import cycles (lazy imports included):\n" + \
        "\n".join("  " + " ↔ ".join(group) for group in new)
    fixed = sorted(sorted(group) for group in KNOWN_CYCLES - found)
    assert not fixed, f"no longer cycles: remove them from KNOWN_CYCLES: {fixed}"
