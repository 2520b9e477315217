"""fastdeconv: exact, fast cellular deconvolution of bulk expression data.

The public names are loaded lazily (PEP 562), so ``import fastdeconv`` and the
command line start quickly and only the parts a program uses are imported.
The map of the modules is ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
import sys

from fastdeconv._deprecated import register_module_aliases

__version__ = "0.1.0"

# public name -> module that defines it
_NAMES = {
    # core solvers (fastdeconv.solvers)
    "nnls": "solvers",
    "multinomial_map": "solvers",
    "simplex_lstsq": "solvers",
    "nnls_gram": "solvers",
    "simplex_lstsq_gram": "solvers",
    "project_simplex": "solvers",
    "SolveInfo": "solvers",
    "ConvergenceWarning": "solvers",
    # reference-based regression
    "deconvolve": "regression",
    "DeconvolutionResult": "regression",
    "show_methods": "methods",
    # fractions of RNA and of cells
    "to_cell_fractions": "fractions",
    # tables and evaluation
    "read_table": "io",
    "write_table": "io",
    "evaluate": "metrics",
    # references from single-cell data
    "build_signature": "signature",
    "SignatureResult": "signature",
    # reference-free
    "linseed": "reference_free",
    "LinseedResult": "reference_free",
}
_SUBMODULES = {
    "fractions",
    "inputs",
    "io",
    "kernels",
    "methods",
    "metrics",
    "plotting",
    "reference_free",
    "regression",
    "results",
    "signature",
    "simulate",
    "solvers",
}
# Modules that were renamed: the old dotted paths keep working, with a
# DeprecationWarning, for one release.  Two of them are spelled like public
# functions (``fastdeconv.deconvolve``, ``fastdeconv.linseed``): the attribute
# is the function, and only ``import``/``from ... import`` reach the alias.
_MOVED_MODULES = {
    "deconvolve": "regression",
    "linseed": "reference_free",
    "reference": "signature",
}

__all__ = sorted(_NAMES) + sorted(_SUBMODULES) + ["__version__"]

register_module_aliases(__name__, _MOVED_MODULES)


def __getattr__(name):
    if name in _NAMES:
        module = importlib.import_module(f"{__name__}.{_NAMES[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    if name in _MOVED_MODULES:  # e.g. fastdeconv.reference (not a public function)
        return sys.modules[f"{__name__}.{name}"]
    raise AttributeError(f"module 'fastdeconv' has no attribute {name!r}")


def __dir__():
    return __all__
