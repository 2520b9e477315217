"""CIBERSORT's nu-support vector regression (Newman et al. 2015), a regression method.

Registers ``method="nusvr"`` in :data:`fastdeconv.methods.REGRESSION`.  Every
sample is fitted on its own, as ``CoreAlg`` of ``CIBERSORT.R`` does:

1. the signature is standardised as one vector (``(S - mean(S)) / sd(S)``
   over all its entries), and so is the sample (sample standard deviations);
2. for each ``nu`` (default 0.25, 0.5, 0.75) the linear nu-SVR of the sample on
   the signature's columns with cost ``C`` (default 1) gives the weights
   ``w = coefs' SV`` -- libsvm's problem, as e1071 (``svm(type =
   "nu-regression", kernel = "linear", scale = FALSE)``) and scikit-learn's
   ``NuSVR`` solve it: every gene's dual variables bounded by ``C`` (libsvm's
   documentation writes ``C / n``; a fit written from it shrinks ``n`` times
   harder: on GSE65133 with LM22 pooled r 0.72 instead of CIBERSORT's 0.60,
   ``method_options={"C": 1 / n}``, and worse on the designed mixtures);
3. the weights are clipped at 0 and divided by their sum; the fit whose
   reconstruction ``X w`` (on the standardised signature) has the smallest
   RMSE against the standardised sample is kept (the first on ties, R's
   ``which.min``).

Each nu-SVR is solved exactly, to a relative KKT tolerance of ``tol`` (the
pipeline's, 1e-11), by the library's own kernel
(:mod:`fastdeconv.kernels.svr`: an interior-point method whose free set is
then solved directly), not to libsvm's stopping rule (``1e-3``, which leaves
the weights wrong in the third digit on LM22).

The coefficients returned are the kept proportions times the least-squares
scale of the sample on the (unstandardised) signature, so that the pipeline's
fit statistics are in the bulk's units; the pipeline divides them by their sum.
A constant sample, or one whose weights are all non-positive for every
``nu``, gets zero coefficients (CIBERSORT divides 0 by 0 there).

Not done here: CIBERSORT's preprocessing of the mixture (anti-log when its
maximum is below 50, quantile normalisation; the pipeline reads linear data)
and its permutation p-values.

Examples
--------
>>> import numpy as np
>>> from fastdeconv.methods import REGRESSION
>>> from fastdeconv.methods._problem import RegressionProblem
>>> rng = np.random.default_rng(0)
>>> S = rng.lognormal(size=(100, 3))
>>> b = S @ np.array([[0.2], [0.3], [0.5]])
>>> record = REGRESSION.get("nusvr")
>>> fit = record.fit(RegressionProblem(S, b, options=record.resolve_options()))
>>> (fit.coefficients[:, 0] / fit.coefficients[:, 0].sum()).round(6).tolist()
[0.2, 0.3, 0.5]
"""

from __future__ import annotations

import numpy as np

from fastdeconv.methods import REGRESSION, Method

__all__ = ["NUSVR_OPTIONS", "fit_nusvr", "check_nusvr_options"]

_NEWMAN = (
    "Newman A. M., Liu C. L., Green M. R. et al. (2015) Robust enumeration of cell subsets "
    "from tissue expression profiles. Nat Methods 12(5):453-457. doi:10.1038/nmeth.3337"
)
_SCHOELKOPF = (
    "Schoelkopf B., Smola A. J., Williamson R. C., Bartlett P. L. (2000) New support vector "
    "algorithms. Neural Comput 12(5):1207-1245. doi:10.1162/089976600300015565"
)
_CHANG_LIN = (
    "Chang C.-C., Lin C.-J. (2002) Training nu-support vector regression: theory and "
    "algorithms. Neural Comput 14(8):1959-1977. doi:10.1162/089976602760128081"
)

#: the options of ``method="nusvr"`` and their defaults (CIBERSORT's)
NUSVR_OPTIONS = {"nu": (0.25, 0.5, 0.75), "C": 1.0}

_OPTION_DOCS = {
    "nu": "the nu values tried, each in (0, 1]; the fit with the smallest RMSE is kept "
          "(CIBERSORT: 0.25,0.5,0.75)",
    "C": "cost of the nu-SVR, > 0 (CIBERSORT: 1)",
}


def check_nusvr_options(options):
    """The checked ``nu`` values and cost (errors name the ``method_options`` key).

    Parameters
    ----------
    options : dict
        ``nu`` (a number or a sequence of numbers in (0, 1]) and ``C`` (> 0).

    Returns
    -------
    nus : tuple of float
    C : float

    Raises
    ------
    TypeError
        For a value that is not a number.
    ValueError
        For a value out of range, or no ``nu`` at all.

    Examples
    --------
    >>> from fastdeconv.methods.svr import check_nusvr_options
    >>> check_nusvr_options({"nu": 0.5, "C": 2})
    ((0.5,), 2.0)
    >>> try:
    ...     check_nusvr_options({"nu": (0.5, 1.5), "C": 1.0})
    ... except ValueError as err:
    ...     print(err)
    method_options={'nu': ...} must be a finite number > 0 and <= 1, got 1.5
    """
    from fastdeconv.methods._cells import option_float

    nu = options["nu"]
    values = tuple(nu) if isinstance(nu, (tuple, list, np.ndarray)) else (nu,)
    if not values:
        raise ValueError(
            "method_options={'nu': ...} must be a number in (0, 1] or several (e.g. "
            "(0.25, 0.5, 0.75)); got none"
        )
    nus = tuple(option_float({"nu": value}, "nu", minimum=0.0, maximum=1.0,
                             allow_maximum=True) for value in values)
    return nus, option_float(options, "C")


def _standardise_rows(BT):
    """Rows minus their mean over their sample standard deviation; which rows vary."""
    n = BT.shape[1]
    Z = BT - BT.mean(axis=1, keepdims=True)
    sd = np.sqrt(np.einsum("ij,ij->i", Z, Z) / max(n - 1, 1))
    ok = (sd > 0) & np.isfinite(sd) & (n > 1)
    Z[ok] /= sd[ok, None]
    Z[~ok] = 0.0
    return np.ascontiguousarray(Z), ok


def _choose(W, X, Z):
    """CIBERSORT's rule: clip, normalise, keep the smallest RMSE of ``X w`` against ``z``.

    ``W`` (m, p, k) weights of every nu; returns the kept normalised weights
    (m, k; zeros where none is positive) and the index of the nu kept (-1 then).
    """
    n = X.shape[0]
    Wc = np.clip(W, 0.0, None)
    total = Wc.sum(axis=2)
    valid = total > 0
    Wn = np.divide(Wc, total[..., None], out=np.zeros_like(Wc), where=valid[..., None])
    # |X w - z|^2 from the Gram form: k x k per fit instead of an n-vector
    G = X.T @ X
    XtZ = Z @ X
    rss = (np.einsum("jpk,kl,jpl->jp", Wn, G, Wn) - 2.0 * np.einsum("jpk,jk->jp", Wn, XtZ)
           + np.einsum("ij,ij->i", Z, Z)[:, None])
    rmse = np.where(valid, np.sqrt(np.maximum(rss, 0.0) / n), np.inf)
    best = np.argmin(rmse, axis=1)  # the first of equal values, as R's which.min
    rows = np.arange(W.shape[0])
    kept = Wn[rows, best]
    found = valid[rows, best]
    return kept, np.where(found, best, -1)


def fit_nusvr(problem):
    """``method="nusvr"``: CIBERSORT's nu-SVR of every sample, the best nu by RMSE.

    Parameters
    ----------
    problem : RegressionProblem
        The pipeline's problem; ``problem.options`` holds :data:`NUSVR_OPTIONS`
        (updated with the user's ``method_options=``).

    Returns
    -------
    MethodFit
        Coefficients (the kept proportions times the sample's least-squares
        scale on the signature; zeros where no weight is positive), whether
        every fit of the sample converged, and the interior-point plus SMO
        iterations summed over the nu values (``n_iter``).

    Raises
    ------
    ValueError
        For an option out of range (naming its ``method_options`` key).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods.svr import fit_nusvr
    >>> from fastdeconv.methods._problem import RegressionProblem
    >>> S = np.random.default_rng(1).lognormal(size=(60, 2))
    >>> fit = fit_nusvr(RegressionProblem(S, S @ np.array([[1.0], [3.0]]), options={"nu": 0.5}))
    >>> fit.coefficients.round(6).ravel().tolist(), fit.converged.tolist()
    ([1.0, 3.0], [True])
    """
    from fastdeconv.kernels.svr import nu_svr
    from fastdeconv.methods._cells import merged_options
    from fastdeconv.methods._samplewise import SampleRun

    nus, C = check_nusvr_options(merged_options(problem, NUSVR_OPTIONS))
    S = problem.S
    n, k = S.shape
    m = problem.B.shape[1]
    run = SampleRun(problem, k)
    coef = np.zeros((k, m))
    sd = float(S.std(ddof=1)) if S.size > 1 else 0.0
    if not (sd > 0 and np.isfinite(sd)):  # a constant signature tells no type from another
        return run.fit(coef)
    X = np.ascontiguousarray((S - S.mean()) / sd)
    StS = S.T @ S
    nu_arr = np.asarray(nus, dtype=np.float64)
    no_duals = np.empty((0, 0, 0, 0))
    max_iter = int(problem.max_iter)

    def kernel(BT, j0, j1):
        Z, ok = _standardise_rows(BT)
        width = j1 - j0
        W = np.empty((width, nu_arr.size, k))
        n_iter = np.empty((width, nu_arr.size), dtype=np.int64)
        status = np.empty((width, nu_arr.size), dtype=np.int8)
        nu_svr(X, Z, nu_arr, C, run.tol, max_iter, True, W, n_iter, status, no_duals)
        kept, _ = _choose(W, X, Z)
        kept[~ok] = 0.0
        # on the bulk's scale: the least-squares multiple of S w that fits b
        Stb = BT @ S
        num = np.einsum("jk,jk->j", kept, Stb)
        den = np.einsum("jk,kl,jl->j", kept, StS, kept)
        scale = np.divide(num, den, out=np.ones(width), where=(den > 0) & (num > 0))
        coef[:, j0:j1] = (kept * scale[:, None]).T
        run.n_iter[j0:j1] = np.where(ok, n_iter.sum(axis=1), 0)
        run.status[j0:j1] = np.where(ok, status.max(axis=1), 0)

    run.each_block(kernel)
    return run.fit(coef)


REGRESSION.register(Method(
    "nusvr",
    "CIBERSORT: linear nu-SVR on the standardised signature, the best nu by RMSE, "
    "weights clipped at 0",
    fit=fit_nusvr, normalise=True, weights="unsupported", background=False,
    losses=("squared",), references=(_NEWMAN, _SCHOELKOPF, _CHANG_LIN),
    options=dict(NUSVR_OPTIONS), option_docs=_OPTION_DOCS,
))
