"""fastdeconv: exact, fast cellular deconvolution of bulk expression data.

The public names are loaded lazily (PEP 562), so ``import fastdeconv`` and the
command line start quickly and only the parts a program uses are imported.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# public name -> module that defines it
_NAMES = {
    # core solvers (fastdeconv.solvers)
    "nnls": "solvers",
    "simplex_lstsq": "solvers",
    "nnls_gram": "solvers",
    "simplex_lstsq_gram": "solvers",
    "project_simplex": "solvers",
    "SolveInfo": "solvers",
    "ConvergenceWarning": "solvers",
    # reference-based workflow
    "deconvolve": "deconvolve",
    "DeconvolutionResult": "deconvolve",
    "to_cell_fractions": "deconvolve",
    "read_table": "io",
    "write_table": "io",
    "evaluate": "metrics",
    # references from single-cell data
    "build_signature": "reference",
    "SignatureResult": "reference",
    # reference-free
    "linseed": "linseed",
    "LinseedResult": "linseed",
}
_SUBMODULES = {"kernels", "simulate", "metrics", "plotting", "inputs", "io", "solvers"}

__all__ = sorted(_NAMES) + sorted(_SUBMODULES) + ["__version__"]


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
    raise AttributeError(f"module 'fastdeconv' has no attribute {name!r}")


def __dir__():
    return __all__


class _Package(types.ModuleType):
    """The package module, keeping public functions named like their modules.

    ``fastdeconv.deconvolve`` and ``fastdeconv.linseed`` are functions defined in
    modules of the same name.  When such a submodule is imported, the import
    system binds it as an attribute of the package, which would hide the
    function; this binds the function instead (the module stays importable as
    ``from fastdeconv.linseed import LinseedResult`` and via ``sys.modules``).
    """

    def __setattr__(self, name, value):
        if (
            isinstance(value, types.ModuleType)
            and name in _NAMES
            and value.__name__ == f"{__name__}.{_NAMES[name]}"
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
