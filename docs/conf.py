"""Sphinx configuration: the API reference is generated from the package's docstrings.

Every public module gets a page listing every public name (see ``public_api.py``); the pages
are written into ``api/`` (git-ignored) when the build starts. Build with warnings as errors:

    python -m sphinx -W --keep-going -b html docs build/docs
"""

import inspect
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import jaxadv  # noqa: E402
import public_api  # noqa: E402

project = "jaxadv"
release = version = jaxadv.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
]
exclude_patterns = ["_build"]
html_theme = "alabaster"

autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autosummary_generate = False  # the pages are written by public_api, not by autosummary
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # Attributes: as a field list; the members themselves are documented once

# The same objects are documented in every namespace that re-exports them (``jaxadv.Attack`` and
# ``jaxadv.attacks.Attack``), so an implicit reference such as ``HParams`` in a signature matches
# several targets that are one object: that ambiguity is by design, and either target is right.
suppress_warnings = ["ref.python"]

public_api.write_pages(HERE / "api")


def _drop_inherited_docstring(app, what, name, obj, options, lines):
    """A constant (a dict, a tuple) has no docstring of its own: do not show its type's."""
    doc = type(obj).__doc__
    if what == "data" and lines and doc and lines[0].strip() == inspect.cleandoc(doc).split("\n")[0]:
        lines.clear()


def setup(app):
    app.connect("autodoc-process-docstring", _drop_inherited_docstring)
