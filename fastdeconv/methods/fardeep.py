"""FARDEEP: NNLS after trimming outlier genes (Hao et al. 2019), a regression method.

Registers ``method="fardeep"`` in :data:`fastdeconv.methods.REGRESSION`.  Every
sample is fitted on its own, as the R package's ``fardeep()`` does with its
defaults (``nn = TRUE``, ``intercept = TRUE``, no quantile normalisation):

* ``alts``, the adaptive least trimmed squares: fit NNLS, trim the genes with
  the largest absolute residuals -- first ``ceil(alpha1 k_up)``, growing by
  the factor ``alpha2`` each round -- and refit, until the trimmed number
  reaches ``k_up``, the number of residuals above ``k`` times their median
  (minus one, as the package counts it);
* ``tuningBIC``: the threshold ``k`` from the grid ``low, low + step, ..., up``
  that minimises the package's BIC-like criterion of the final fit
  (``lognorm``: on ``log2`` absolute residuals).

The fit has a non-negative intercept (a constant column, the package's
``intercept = TRUE``) that is dropped from the coefficients, as the package
drops it from its scores; the pipeline normalises the coefficients (the
package's ``relative.beta``).  The trimmed genes of every sample are reported
as the fit's gene weights: 0 for a trimmed gene, 1 for a kept one.  The walk
over the grid shares the fits that the thresholds have in common (see
:mod:`fastdeconv.kernels.trimming`); the answers are those of the package's
loops.

Not offered: the package's permutation p-values (``permn``) and quantile
normalisation of the bulk (``QN``, off by default there).  One difference: an
exactly zero residual, whose ``log2`` makes every threshold's criterion
infinite in the package, is held at the rounding level of the data.

Examples
--------
>>> import numpy as np
>>> from fastdeconv.methods import REGRESSION
>>> from fastdeconv.methods._problem import RegressionProblem
>>> rng = np.random.default_rng(1)
>>> S = rng.lognormal(size=(200, 3))
>>> b = S @ np.array([0.2, 0.3, 0.5]) * rng.lognormal(0, 0.05, 200)
>>> b[:4] *= 50.0  # four grossly wrong genes
>>> record = REGRESSION.get("fardeep")
>>> fit = record.fit(RegressionProblem(S, b[:, None], options=record.resolve_options()))
>>> (fit.coefficients[:, 0] / fit.coefficients[:, 0].sum()).round(2).tolist()
[0.2, 0.3, 0.5]
>>> fit.gene_weights[:4, 0].tolist()  # trimmed
[0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import numpy as np

from fastdeconv.methods import REGRESSION, Method

__all__ = ["FARDEEP_OPTIONS", "fit_fardeep", "threshold_grid"]

_FARDEEP = (
    "Hao Y., Yan M., Heath B. R., Lei Y. L., Xie Y. (2019) Fast and robust deconvolution of "
    "tumor infiltrating lymphocyte from expression profiles using least trimmed squares. "
    "PLoS Comput Biol 15(5):e1006976. doi:10.1371/journal.pcbi.1006976"
)

#: the options of ``method="fardeep"`` and their defaults (those of the R package)
FARDEEP_OPTIONS = {
    "alpha1": 0.1,
    "alpha2": 1.5,
    "up": 10.0,
    "low": 1.0,
    "step": 0.1,
    "intercept": True,
    "lognorm": True,
}

_OPTION_DOCS = {
    "alpha1": "share of the outlier bound k_up trimmed in the first round, in (0, 1] "
              "(package: 0.1)",
    "alpha2": "growth factor of the trimmed number per round, > 1 (package: 1.5)",
    "up": "largest threshold k (in medians of the absolute residuals) tried (package: 10)",
    "low": "smallest threshold k tried, > 0 (package: 1)",
    "step": "spacing of the thresholds tried between low and up (package: 0.1)",
    "intercept": "fit a non-negative intercept beside the cell types (package: true)",
    "lognorm": "choose k on log2 absolute residuals, for log-normal noise (package: true)",
}


def _check_fardeep_options(problem):
    """The checked options of one run (errors name the ``method_options`` key)."""
    from fastdeconv.methods._cells import merged_options, option_bool, option_float

    options = merged_options(problem, FARDEEP_OPTIONS)
    checked = {
        "alpha1": option_float(options, "alpha1", maximum=1.0, allow_maximum=True),
        "alpha2": option_float(options, "alpha2", minimum=1.0),
        "up": option_float(options, "up"),
        "low": option_float(options, "low"),
        "step": option_float(options, "step"),
        "intercept": option_bool(options, "intercept"),
        "lognorm": option_bool(options, "lognorm"),
    }
    if checked["low"] > checked["up"]:
        raise ValueError(
            "method_options={'low': ...} must not exceed method_options={'up': ...}: got "
            f"low={checked['low']:g}, up={checked['up']:g}"
        )
    if (checked["up"] - checked["low"]) / checked["step"] > 10_000:
        raise ValueError(
            "method_options={'step': ...} gives more than 10,000 thresholds between low and "
            "up; choose a larger step"
        )
    return checked


def threshold_grid(low, up, step):
    """The thresholds ``k`` tried: R's ``seq(low, up, step)``.

    Parameters
    ----------
    low, up, step : float

    Returns
    -------
    ndarray

    Examples
    --------
    >>> from fastdeconv.methods.fardeep import threshold_grid
    >>> grid = threshold_grid(1.0, 10.0, 0.1)
    >>> grid.size, float(grid[0]), float(grid[-1].round(12))
    (91, 1.0, 10.0)
    """
    count = int(np.floor((up - low) / step + 1e-10))
    return low + step * np.arange(count + 1)


def fit_fardeep(problem):
    """``method="fardeep"``: adaptive least trimmed squares of every sample.

    Parameters
    ----------
    problem : RegressionProblem
        The pipeline's problem; ``problem.options`` holds
        :data:`FARDEEP_OPTIONS` (updated with the user's ``method_options=``).

    Returns
    -------
    MethodFit
        Coefficients of the cell types (not normalised; the intercept
        dropped), convergence of every solve, active-set changes of the last
        solve (``n_iter``), trimming rounds (``n_reweight``), and gene weights
        0 (trimmed) or 1 (kept) per sample.

    Raises
    ------
    ValueError
        For an option out of range (naming its ``method_options`` key).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods.fardeep import FARDEEP_OPTIONS, fit_fardeep
    >>> from fastdeconv.methods._problem import RegressionProblem
    >>> S = np.random.default_rng(0).lognormal(size=(50, 2))
    >>> fit = fit_fardeep(RegressionProblem(S, S @ np.array([[0.25], [0.75]]),
    ...                                     options=dict(FARDEEP_OPTIONS)))
    >>> fit.coefficients.round(8).ravel().tolist(), fit.converged.tolist()
    ([0.25, 0.75], [True])
    """
    from fastdeconv.kernels.trimming import fardeep_batch
    from fastdeconv.methods._samplewise import SampleRun

    opts = _check_fardeep_options(problem)
    S = problem.S
    n, k = S.shape
    A = np.ascontiguousarray(np.column_stack([np.ones(n), S]) if opts["intercept"] else S)
    ks = threshold_grid(opts["low"], opts["up"], opts["step"])
    run = SampleRun(problem, A.shape[1])
    m = problem.B.shape[1]
    X = np.empty((m, A.shape[1]))
    trimmed = np.zeros((m, n), dtype=bool)
    k_used = np.empty(m)

    def kernel(BT, j0, j1):
        block = slice(j0, j1)
        fardeep_batch(A, BT, ks, opts["alpha1"], opts["alpha2"], k, opts["lognorm"], X[block],
                      trimmed[block], k_used[block], run.rounds[block], run.n_iter[block],
                      run.status[block], run.max_iter, run.tol)

    run.each_block(kernel)
    coef = X[:, 1:] if opts["intercept"] else X
    return run.fit(coef.T, np.ascontiguousarray((~trimmed).T, dtype=np.float64))


REGRESSION.register(Method(
    "fardeep",
    "FARDEEP: NNLS after trimming outlier genes per sample (adaptive least trimmed squares)",
    fit=fit_fardeep, normalise=True, weights="unsupported", background=False,
    losses=("squared",), references=(_FARDEEP,), options=dict(FARDEEP_OPTIONS),
    option_docs=_OPTION_DOCS,
))
