"""Sphinx configuration of pympipool's documentation site.

The pages are the Markdown files of ``docs/`` (MyST), the README as the
front page, and an API reference generated from the package's docstrings
(``api.rst``).  CTest builds it with warnings as errors (``docs.sphinx``),
so a broken link between pages, a reference to a missing anchor, or a public
name without a docstring fails the suite.  Nothing is fetched from the
network (no intersphinx): names of the standard library and of numpy are
left as plain text.

Build by hand: ``PYTHONPATH=build-mpich/python /usr/bin/python3 -m sphinx -W
--keep-going -b html docs build-mpich/docs-html``.
"""

from __future__ import annotations

from sphinx.util import logging

project = "pympipool"
author = "the pympipool developers"

try:
    import pympipool

    release = version = pympipool.__version__
except ImportError as exc:  # the API page needs the built package
    raise RuntimeError(
        "the documentation imports pympipool: put the build tree's package on "
        "PYTHONPATH (PYTHONPATH=build-mpich/python)"
    ) from exc

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
html_theme = "alabaster"
html_title = "pympipool"
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": True, "inherited-members": True}

_LOG = logging.getLogger("pympipool.docs")


def _check_docstring(app, what, name, obj, options, lines):
    """Every public name on the API page has a docstring of its own."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf.startswith("_"):
        return
    if not any(line.strip() for line in lines):
        _LOG.warning("%s %s has no docstring", what, name, type="pympipool", subtype="docstring")


def _readme_is_the_front_page(app, docname, source):
    """Pages link to ``../README.md``, so that the links work where the
    Markdown is read on its own; on the site the README is the front page
    (``index``)."""
    source[0] = source[0].replace("](../README.md)", "](index.md)")


def _skip_builtin_members(app, what, name, obj, skip, options):
    """An exception's own page lists what pympipool adds, not ``args`` and
    ``with_traceback`` of every exception."""
    if what == "exception" and name in vars(BaseException):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _check_docstring)
    app.connect("source-read", _readme_is_the_front_page)
    app.connect("autodoc-skip-member", _skip_builtin_members)
