"""The package's layers, read from its source with ``ast`` (jaxadv itself is not imported).

Layers point one way: no cycle between subpackages, and no subpackage reaches into another's
private (``_underscore``) module; it imports the public names the owner re-exports. The top-level
helpers ``jaxadv/_checks.py`` and ``jaxadv/_compile.py`` are shared by every layer. Victims
(``models``) depend on nothing above them, and subpackage ``__init__.py`` files only re-export.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jaxadv"
SHARED = {"jaxadv._checks", "jaxadv._compile"}
# What a victim may not import: everything that builds on victims.
ABOVE_MODELS = {"attacks", "certify", "metrics", "sweeps", "training", "cli", "demo"}
# Randomized smoothing (issue 17) sits beside metrics: it builds on the victims, not the attacks.
CERTIFY_MAY_NOT_IMPORT = {"attacks", "metrics", "sweeps", "training", "cli", "demo"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _unit(module: str) -> str:
    """The layer a module belongs to: ``jaxadv.<unit>...`` (a subpackage or a top-level module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path, module: str):
    """``(line, statement, target module)`` for every jaxadv import in the file, lazy ones included;
    ``from pkg import name`` targets the module ``pkg.name`` when there is one, else ``pkg``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, f"import {alias.name}", alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = ", ".join(a.name for a in node.names)
            statement = f"from {'.' * node.level}{node.module or ''} import {names}"
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                yield node.lineno, statement, candidate if candidate in MODULES else source


def _resolved(target: str) -> str | None:
    while target not in MODULES and "." in target:
        target = target.rpartition(".")[0]
    return target if target in MODULES else None


def _cross_imports():
    """``(file, line, statement, source unit, target module, target unit)`` for every import of
    one unit by another (the shared helpers excluded)."""
    out = []
    for module, path in MODULES.items():
        src = _unit(module)
        if not src or src.startswith("_"):
            continue
        for line, statement, target in _imports(path, module):
            if not target.startswith("jaxadv"):
                continue
            target = _resolved(target)
            if target is None:
                continue
            dst = _unit(target)
            if dst and dst != src and not dst.startswith("_"):
                entry = (path.relative_to(PACKAGE.parent), line, statement, src, target, dst)
                if entry not in out:  # `from m import a, b` names one module once
                    out.append(entry)
    return out


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one unit (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
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
                components.append(set(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    cycles = []
    for component in components:
        start = min(component)
        # Breadth-first back to ``start`` inside the component: the shortest cycle through it.
        paths, seen = [[start]], {start}
        while paths:
            path = paths.pop(0)
            for w in sorted(edges.get(path[-1], ()) & component):
                if w == start:
                    cycles.append(path + [start])
                    paths = []
                    break
                if w not in seen:
                    seen.add(w)
                    paths.append(path + [w])
    return cycles


def test_the_walk_sees_the_package():
    # A walk that finds nothing would pass every check below.
    assert "jaxadv.attacks" in MODULES and "jaxadv.models" in MODULES
    units = {(src, dst) for *_, src, _, dst in _cross_imports()}
    assert ("attacks", "models") in units


def test_no_cycle_between_subpackages():
    imports = _cross_imports()
    edges: dict[str, set[str]] = {}
    for *_, src, _, dst in imports:
        edges.setdefault(src, set()).add(dst)
    problems = []
    for cycle in _cycles(edges):
        lines = [" -> ".join(cycle)]
        for a, b in zip(cycle, cycle[1:]):
            file, line, statement, *_ = next(i for i in imports if i[3] == a and i[5] == b)
            lines.append(f"  {a} -> {b}: {file}:{line}: `{statement}`")
        problems.append("\n".join(lines))
    assert not problems, "import cycles between subpackages:\n" + "\n".join(problems)


def test_no_import_of_another_subpackages_private_module():
    problems = [
        f"{file}:{line}: `{statement}` imports {target}, a private module of jaxadv.{dst}; "
        f"import the name from jaxadv.{dst} (re-exported by its __init__.py)"
        for file, line, statement, _, target, dst in _cross_imports()
        if target not in SHARED and any(p.startswith("_") for p in target.split(".")[2:])
    ]
    assert not problems, "\n".join(problems)


def test_models_import_nothing_above_them():
    problems = [
        f"{file}:{line}: `{statement}` makes the victims depend on jaxadv.{dst}"
        for file, line, statement, src, _, dst in _cross_imports()
        if src == "models" and dst in ABOVE_MODELS
    ]
    assert not problems, "\n".join(problems)


def test_certify_imports_the_victims_not_the_attacks():
    assert "jaxadv.certify" in MODULES
    problems = [
        f"{file}:{line}: `{statement}` makes jaxadv.certify depend on jaxadv.{dst}"
        for file, line, statement, src, _, dst in _cross_imports()
        if src == "certify" and dst in CERTIFY_MAY_NOT_IMPORT
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "path", [p for p in MODULES.values() if p.name == "__init__.py"], ids=lambda p: str(p)
)
def test_init_files_only_reexport(path):
    allowed_names = {"__all__", "__version__"}
    problems = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Assign) and all(
            isinstance(t, ast.Name) and t.id in allowed_names for t in node.targets
        ):
            continue
        problems.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.dump(node)[:80]}")
    assert not problems, "an __init__.py holds more than re-exports:\n" + "\n".join(problems)
