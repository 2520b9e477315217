"""DWLS: dampened weighted least squares (Tsoucas et al. 2019), a regression method.

Registers ``method="dwls"`` in :data:`fastdeconv.methods.REGRESSION`.  Every
sample is fitted on its own, as the R package's ``solveDampenedWLS`` does:

1. the NNLS solution ``x0`` (the package's ``solveOLSInternal``);
2. the dampening exponent ``j`` by cross-validation (``findDampeningConstant``):
   the weights ``w_g = 1 / (S x0)_g^2``, divided by their minimum, are capped at
   ``2^(j-1)`` for ``j = 1 .. ceil(log2(max w))``; for each ``j`` the
   unconstrained weighted least squares is refitted on ``cv_repeats`` random
   halves of the genes (the same halves for every ``j`` and every sample, as
   the package re-seeds them), every fit rescaled to the sum of ``x0``; the
   ``j`` with the least mean variance of the coefficients wins;
3. damped rounds (``solveDampenedWLSj``): weights from the current solution,
   capped at ``2^(j-1)``, the weighted NNLS solution ``x_new``, then
   ``x <- (x_new + 4 x) / 5``, until the L1 norm of the step is at most ``tol``
   times the sum of ``x`` or after ``max_rounds`` rounds.

The coefficients are normalised to proportions by the pipeline.  Each weighted
NNLS is solved exactly by the library's active-set engine on the Gram form
(one BLAS product per round); see :mod:`fastdeconv.kernels.dwls`.

Differences from the package, all deliberate:

* the convergence test is relative (the package stops at an absolute L1
  change of 0.01 in the units of its coefficients, i.e. of the data); the two
  agree when the coefficients sum to 1;
* the random halves come from NumPy's generator seeded with ``seed`` (the
  package re-seeds R's with ``set.seed(1..100)``): other subsets, so on a close
  call another ``j``; the same subsets serve every ``j`` and every sample, as
  in the package;
* when no ``j`` can be scored (every subset fit rank-deficient: a cell type
  with too few genes), the package's code caps nothing; here the cap is
  ``2^J``, which leaves every finite weight uncapped.

A gene fitted by 0 has an infinite weight, capped like any other (as in the
package).  The weights of each sample's last solve (minimum 1) are reported as
the fit's gene weights.

Examples
--------
>>> import numpy as np
>>> from fastdeconv.methods import REGRESSION
>>> from fastdeconv.methods._problem import RegressionProblem
>>> rng = np.random.default_rng(0)
>>> S = rng.lognormal(size=(80, 3))
>>> B = S @ np.array([[0.6, 0.1], [0.3, 0.2], [0.1, 0.7]])
>>> record = REGRESSION.get("dwls")
>>> fit = record.fit(RegressionProblem(S, B, options=record.resolve_options()))
>>> (fit.coefficients / fit.coefficients.sum(axis=0)).round(6).tolist()
[[0.6, 0.1], [0.3, 0.2], [0.1, 0.7]]
"""

from __future__ import annotations

import numpy as np

from fastdeconv.methods import REGRESSION, Method

__all__ = ["DWLS_OPTIONS", "fit_dwls", "packed_outer"]

_DWLS = (
    "Tsoucas D. et al. (2019) Accurate estimation of cell-type composition from gene "
    "expression data. Nat Commun 10:2975. doi:10.1038/s41467-019-10802-z"
)

#: the options of ``method="dwls"`` and their defaults (those of the R package)
DWLS_OPTIONS = {
    "max_rounds": 1000,
    "tol": 0.01,
    "cv_repeats": 100,
    "cv_fraction": 0.5,
    "dampening": 0,
    "seed": 0,
}

_OPTION_DOCS = {
    "max_rounds": "cap on damped re-weighting rounds per sample (package: 1000)",
    "tol": "stop when a damped step's L1 norm is at most tol x the sum of the coefficients "
           "(package: 0.01)",
    "cv_repeats": "random gene subsets per cap in the cross-validation of the dampening "
                  "constant, >= 2 (package: 100)",
    "cv_fraction": "share of the genes in each subset, in (0, 1) (package: 0.5)",
    "dampening": "0: choose the cap exponent j by cross-validation; j >= 1: cap the scaled "
                 "weights at 2^(j-1) for every sample (no cross-validation)",
    "seed": "seed of the random gene subsets (the same subsets for every sample)",
}


def _check_dwls_options(problem):
    """The checked options of one run (errors name the ``method_options`` key)."""
    from fastdeconv.methods._cells import merged_options, option_float, option_int

    options = merged_options(problem, DWLS_OPTIONS)
    checked = {
        "max_rounds": option_int(options, "max_rounds", 1),
        "tol": option_float(options, "tol", minimum=0.0, allow_minimum=True),
        "cv_repeats": option_int(options, "cv_repeats", 2),
        "cv_fraction": option_float(options, "cv_fraction", minimum=0.0, maximum=1.0),
        "dampening": option_int(options, "dampening", 0),
        "seed": option_int(options, "seed", 0),
    }
    if checked["dampening"] > 60:
        raise ValueError(
            "method_options={'dampening': ...} must be 0 (cross-validate) or an exponent "
            f"1..60, got {checked['dampening']}"
        )
    return checked


def _subsets(n, repeats, fraction, seed):
    """Membership (genes x repeats, 1.0 in) of the cross-validation's random gene subsets."""
    rng = np.random.default_rng(seed)
    size = int(n * fraction)  # the package's sample(n, size = n * 0.5): truncated
    MT = np.zeros((n, repeats))
    for r in range(repeats):
        MT[rng.choice(n, size=size, replace=False), r] = 1.0
    return MT


def packed_outer(S):
    """The packed upper triangles of the outer products of the rows of ``S``.

    Row ``g`` holds ``S[g, a] * S[g, e]`` for ``a <= e`` in row-major order, so
    that ``w @ packed_outer(S)`` is the packed Gram matrix ``S' diag(w) S``.

    Parameters
    ----------
    S : ndarray, shape (n, k)

    Returns
    -------
    ndarray, shape (n, k (k + 1) / 2)

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods.dwls import packed_outer
    >>> packed_outer(np.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [[1.0, 2.0, 4.0], [9.0, 12.0, 16.0]]
    """
    rows, cols = np.triu_indices(S.shape[1])
    return np.ascontiguousarray(S[:, rows] * S[:, cols])


def fit_dwls(problem):
    """``method="dwls"``: dampened weighted least squares of every sample.

    Parameters
    ----------
    problem : RegressionProblem
        The pipeline's problem; ``problem.options`` holds :data:`DWLS_OPTIONS`
        (updated with the user's ``method_options=``).

    Returns
    -------
    MethodFit
        Coefficients (not normalised), convergence of the damped rounds,
        active-set changes of the last solve (``n_iter``), damped rounds
        (``n_reweight``), and the last solve's gene weights (scaled so the
        smallest is 1).

    Raises
    ------
    ValueError
        For an option out of range (naming its ``method_options`` key).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods.dwls import DWLS_OPTIONS, fit_dwls
    >>> from fastdeconv.methods._problem import RegressionProblem
    >>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0], [2.0, 0.5]])
    >>> fit = fit_dwls(RegressionProblem(S, S @ np.array([[0.25], [0.75]]),
    ...                                  options=dict(DWLS_OPTIONS)))
    >>> fit.coefficients.round(8).ravel().tolist(), fit.converged.tolist()
    ([0.25, 0.75], [True])
    """
    from fastdeconv.kernels.dwls import dwls_batch
    from fastdeconv.methods._samplewise import SampleRun

    opts = _check_dwls_options(problem)
    S = problem.S
    n, k = S.shape
    O = packed_outer(S)
    Q0 = S.T @ S
    Q0 = np.ascontiguousarray(0.5 * (Q0 + Q0.T))
    if opts["dampening"] > 0:
        MT = np.zeros((n, 0))
    else:
        MT = _subsets(n, opts["cv_repeats"], opts["cv_fraction"], opts["seed"])
    run = SampleRun(problem, k)
    m = problem.B.shape[1]
    X = np.empty((m, k))
    W = np.empty((m, n))
    exponent = np.zeros(m, dtype=np.int64)

    def kernel(BT, j0, j1):
        block = slice(j0, j1)
        exponent[j0] = opts["dampening"]  # read by the kernel when there is no cross-validation
        dwls_batch(S, O, Q0, BT, MT, opts["max_rounds"], opts["tol"], X[block], W[block],
                   run.rounds[block], run.n_iter[block], run.status[block], exponent[block],
                   run.max_iter, run.tol)

    run.each_block(kernel)
    if problem.huber is not None:
        return _huber_refit(problem, X, W, run)
    return run.fit(X.T, np.ascontiguousarray(W.T))


def _huber_refit(problem, X, W, run):
    """``robust="huber"``: every sample refitted with Huber's loss on its final DWLS weights.

    The relative weights ``1 / (S x)^2`` (capped) make the fit scale-free across
    expression levels; Huber's loss on the weighted residuals then takes the
    influence away from genes that fit badly whatever their level (platform and
    batch effects, genes of cells missing from the signature), which DWLS's
    squares cannot do.  Each sample is one exact weighted Huber fit of the core
    solver (weights scaled to a maximum of 1).
    """
    from fastdeconv._parallel import thread_map
    from fastdeconv.solvers._core import solve

    S, B = problem.S, problem.B
    m = B.shape[1]
    Xh = np.array(X.T)
    G = np.array(W.T)

    def refit(j):
        w = W[j]
        if not (np.all(np.isfinite(w)) and w.max() > 0):
            return  # DWLS found no weights (a sample it could not fit): kept as it is
        w = np.ascontiguousarray(w / w.max())
        x, info = solve(S, B[:, j:j + 1], kind="nnls", weights=w, huber=problem.huber,
                        n_jobs=1, max_iter=problem.max_iter, tol=problem.tol, gene_weights=True)
        Xh[:, j] = x[:, 0]
        G[:, j] = info.gene_weights[:, 0]
        if not info.converged[0]:
            run.status[j] = 1
        run.rounds[j] += int(info.n_reweight[0])

    thread_map(refit, range(m), problem.n_jobs)
    return run.fit(Xh, G)


_HUBER = (
    "Huber P. J. (1964) Robust estimation of a location parameter. Ann Math Statist "
    "35(1):73-101. doi:10.1214/aoms/1177703732 (robust='huber': the final fit)"
)

REGRESSION.register(Method(
    "dwls",
    "dampened weighted least squares (DWLS): weights 1/(S x)^2, capped by cross-validation",
    fit=fit_dwls, normalise=True, weights="unsupported", background=False,
    losses=("squared", "huber"), references=(_DWLS, _HUBER), options=dict(DWLS_OPTIONS),
    option_docs=_OPTION_DOCS,
))
