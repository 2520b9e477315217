"""Sphinx configuration of the fastdeconv documentation.

Build with ``python -m sphinx -b html docs docs/_build/html`` (needs the ``docs``
extra: ``pip install -e ".[docs]"``).  Pages are Markdown (MyST); the API
reference is generated from the numpydoc docstrings by autodoc.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# Document the source tree next to this file, installed or not.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fastdeconv  # noqa: E402

project = "fastdeconv"
author = "fastdeconv developers"
copyright = "fastdeconv developers"  # noqa: A001 - the name Sphinx expects
release = fastdeconv.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "README.md"]
templates_path = []

# -- MyST (Markdown) ---------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # link to sections as page.md#heading-text

# -- autodoc / autosummary / numpydoc -----------------------------------------
autodoc_typehints = "none"  # numpydoc sections carry the types
autodoc_member_order = "bysource"
autodoc_default_options = {"exclude-members": "__init__, __new__"}
autosummary_generate = False  # summary tables only; entries are on api.md itself
numpydoc_show_class_members = False  # members come from autodoc's :members:
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# (tests/test_docs.py checks that every documented function and class has a
# runnable Examples section, so numpydoc's validation stays off here.)

# -- HTML --------------------------------------------------------------------
html_title = f"fastdeconv {release}"
html_static_path = ["_static"] if (Path(__file__).parent / "_static").is_dir() else []
if importlib.util.find_spec("pydata_sphinx_theme") is not None:
    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navigation_depth": 2,
        "show_toc_level": 2,
        "secondary_sidebar_items": ["page-toc"],
    }
else:  # the docs still build with Sphinx's bundled theme
    html_theme = "alabaster"
    html_theme_options = {"description": "Exact, fast cellular deconvolution"}
