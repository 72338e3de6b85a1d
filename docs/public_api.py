"""The public surface of jaxadv, as the reference documents it (used by conf.py and the tests).

A public module is one whose dotted path has no component starting with ``_`` (``__main__``
excepted). Its public names are the attributes without a leading underscore, except submodules
and foreign objects imported under their own name (``from typing import Any``): so a name added
to a namespace's ``__init__`` appears in the reference with no edit here.
"""

from __future__ import annotations

import __future__
import importlib
import inspect
import pkgutil
from types import ModuleType

PACKAGE = "jaxadv"


def public_modules(package: str = PACKAGE) -> list[str]:
    """Dotted names of the package's public modules, the package itself first."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return names


def _is_foreign_import(name: str, obj: object) -> bool:
    if isinstance(obj, __future__._Feature):
        return True
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str) or module.split(".")[0] == PACKAGE:
        return False
    return getattr(obj, "__name__", None) == name


def public_names(module: ModuleType) -> list[str]:
    """Sorted public attribute names of ``module`` (see the module docstring for the rule)."""
    return sorted(
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(obj)
        and not _is_foreign_import(name, obj)
    )


def home(obj: object, modules: list[str]) -> str | None:
    """The public module a class belongs to: the longest one that contains its defining module.

    A class re-exported elsewhere (``jaxadv.Attack``) is indexed only there, so that Sphinx
    does not see two descriptions of one object.
    """
    defined_in = getattr(obj, "__module__", None) or ""
    prefixes = [m for m in modules if defined_in == m or defined_in.startswith(m + ".")]
    return max(prefixes, key=len, default=None)


def directives(module: ModuleType, name: str, modules: list[str]) -> list[str]:
    """The autodoc directive (with options) that documents ``module.name``."""
    obj = getattr(module, name)
    target = f"{module.__name__}.{name}"
    if inspect.isclass(obj):
        copy = home(obj, modules) not in (module.__name__, None)
        return [f".. autoclass:: {target}"] + (["   :no-index:"] if copy else [])
    if callable(obj):
        return [f".. autofunction:: {target}"]
    lines = [f".. autodata:: {target}"]
    if len(repr(obj)) > 100:  # a table of functions or arrays: the value would bury the page
        lines.append("   :no-value:")
    return lines


def module_page(module_name: str, modules: list[str]) -> str:
    """reStructuredText for one module's page: its docstring, a summary table, every name."""
    module = importlib.import_module(module_name)
    names = public_names(module)
    lines = [module_name, "=" * len(module_name), "", f".. automodule:: {module_name}",
             "   :no-members:", "", f".. currentmodule:: {module_name}", ""]
    if names:
        lines += [".. autosummary::", ""] + [f"   {name}" for name in names] + [""]
    for name in names:
        lines += directives(module, name, modules) + [""]
    return "\n".join(lines)


def write_pages(out_dir) -> list[str]:
    """Write ``<module>.rst`` for every public module and an index; returns the module names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    modules = public_modules()
    for name in modules:
        page = module_page(name, modules)
        path = out_dir / f"{name}.rst"
        if not path.exists() or path.read_text() != page:  # unchanged pages are not rebuilt
            path.write_text(page)
    index = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {name}" for name in modules]
    (out_dir / "index.rst").write_text("\n".join(index) + "\n")
    return modules
