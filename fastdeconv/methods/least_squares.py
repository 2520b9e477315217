"""The least-squares regression methods: NNLS, WLS and the simplex-constrained fits.

Each is a thin call of the exact active-set core solver
(:func:`fastdeconv.solvers._core.solve`) on the pipeline's
:class:`~fastdeconv.methods._problem.RegressionProblem`, registered in
:data:`fastdeconv.methods.REGRESSION` with what it supports.  The solvers (and
Numba) are imported inside the fit functions: reading the registry, as the
command line does for its ``--help``, imports nothing heavy.

Examples
--------
>>> import numpy as np
>>> from fastdeconv.methods import REGRESSION
>>> from fastdeconv.methods._problem import RegressionProblem
>>> [m.name for m in REGRESSION if m.normalise and m.fit.__module__ == __name__]
['nnls', 'wls']
>>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
>>> b = S @ np.array([[0.25], [0.75]])
>>> REGRESSION.get("simplex").fit(RegressionProblem(S, b)).coefficients.round(10).ravel().tolist()
[0.25, 0.75]
>>> half = RegressionProblem(S, 0.5 * b)  # half of the sample is not in the signature
>>> REGRESSION.get("nnls").fit(half).coefficients.round(10).ravel().tolist()
[0.125, 0.375]
>>> fit = REGRESSION.get("simplex_le").fit(half)
>>> fit.coefficients.round(10).ravel().tolist(), fit.extra["unexplained"].round(10).tolist()
([0.125, 0.375], [0.5])
"""

from __future__ import annotations

import numpy as np

from fastdeconv.methods import REGRESSION, Method
from fastdeconv.methods._problem import GramProblem, MethodFit

__all__ = ["UNEXPLAINED"]

#: Name of the extra column holding ``1 - sum(p)`` for ``method="simplex_le"``.
UNEXPLAINED = "unexplained"

_LAWSON_HANSON = (
    "Lawson C. L., Hanson R. J. (1974) Solving Least Squares Problems. Prentice-Hall; SIAM 1995. "
    "doi:10.1137/1.9781611971217"
)
_HUBER = (
    "Huber P. J. (1964) Robust estimation of a location parameter. Ann Math Statist "
    "35(1):73-101. doi:10.1214/aoms/1177703732"
)
_EPIC = (
    "Racle J. et al. (2017) Simultaneous enumeration of cancer and immune cell types from "
    "bulk tumor gene expression data. eLife 6:e26476. doi:10.7554/eLife.26476"
)


def _solve(problem, kind, slack):
    """One call of the core solver (from the Gram form for a :class:`GramProblem`); the
    ConvergenceWarning is decided here."""
    from fastdeconv.solvers._core import solve, solve_gram
    from fastdeconv.solvers.api import warn_unconverged

    huber = getattr(problem, "huber", None)
    if isinstance(problem, GramProblem):
        X, info = solve_gram(problem.gram, problem.projections, kind=kind, slack=slack,
                             n_jobs=problem.n_jobs, max_iter=problem.max_iter, tol=problem.tol)
    else:
        X, info = solve(
            problem.S, problem.B, kind=kind, slack=slack, weights=problem.weights,
            huber=huber, n_jobs=problem.n_jobs, max_iter=problem.max_iter, tol=problem.tol,
            gene_weights=huber is not None,
        )
    warn_unconverged(info.status, problem.max_iter, huber, stacklevel=4)
    return X, info


def _method_fit(X, info, **extra):
    return MethodFit(X, info.converged, info.n_iter, info.n_reweight, info.gene_weights, extra)


def _fit_nnls(problem):
    """``"nnls"`` and ``"wls"``: ``min ||S x - b||`` (weighted, or Huber), ``x >= 0``; also
    their ``gram`` (a :class:`GramProblem`)."""
    return _method_fit(*_solve(problem, "nnls", slack=False))


def _fit_simplex(problem):
    """``"simplex"``: ``x >= 0``, ``sum(x) == 1``."""
    return _method_fit(*_solve(problem, "simplex", slack=False))


def _fit_simplex_le(problem):
    """``"simplex_le"``: ``x >= 0``, ``sum(x) <= 1``; ``1 - sum(x)`` is ``"unexplained"``."""
    X, info = _solve(problem, "simplex", slack=True)
    return _method_fit(X, info, **{UNEXPLAINED: np.clip(1.0 - X.sum(axis=0), 0.0, 1.0)})


_LOSSES = ("squared", "huber")

REGRESSION.register(Method(
    "nnls",
    "non-negative least squares, normalised to sum 1 (scale-free)",
    fit=_fit_nnls, normalise=True, background=True, losses=_LOSSES, gram=_fit_nnls,
    references=(_LAWSON_HANSON, _HUBER),
))
REGRESSION.register(Method(
    "simplex",
    "exact sum-to-one constraint (bulk and signature on the same scale)",
    fit=_fit_simplex, normalise=False, losses=_LOSSES, gram=_fit_simplex,
    references=(_HUBER,),
))
REGRESSION.register(Method(
    "wls",
    "NNLS with per-gene weights (required), normalised to sum 1",
    fit=_fit_nnls, normalise=True, weights="required", background=True, losses=_LOSSES,
    gram=_fit_nnls, references=(_LAWSON_HANSON, _HUBER),
))
REGRESSION.register(Method(
    "simplex_le",
    "sum at most 1; the rest is an 'unexplained' column (EPIC's other cells)",
    fit=_fit_simplex_le, normalise=False, losses=_LOSSES, extra_columns=(UNEXPLAINED,),
    gram=_fit_simplex_le,
    references=(_HUBER, _EPIC),
))
