"""MuSiC: weighted NNLS with gene weights from the variation between donors.

Wang et al. (2019) build the design matrix from a multi-subject single-cell
reference -- each type's relative expression averaged over subjects, times the
type's mean library size (so the coefficients are *cell* fractions, not RNA
fractions) -- and weigh every gene by the inverse of its variance in the
bulk: genes whose expression varies between donors (``Sigma``, the variance
over subjects of the per-subject type profiles) and genes the fit leaves with
a large residual count less.  ``"music"`` follows the R package's
``music_prop`` / ``music.iter`` / ``music.basic`` (MuSiC 1.0):

1. per sample, the genes where the bulk is 0 are dropped and the bulk is
   made relative (``Y = 100 b / sum(b)``; with ``normalize=True`` divided by
   its standard deviation instead, with ``centered=True`` centred, the design
   likewise);
2. NNLS of ``Y`` on the design ``D``; residual ``r``;
3. weights ``w_g = 1 / (nu + r_g^2 + sum_k (x_k S_k)^2 Sigma_gk)`` (``S_k`` the
   library sizes, ``x`` the current NNLS coefficients), NNLS of
   ``sqrt(w) Y`` on ``sqrt(w) D``, the residual of that weighted fit becomes
   ``r``, and so on until the proportions ``p = x / sum(x)`` move by less
   than ``eps`` (sum of absolute changes), at most ``iter_max`` times.

As in the package, the residual entering the weights after the first round
is the *weighted* fit's residual ``sqrt(w) (Y - D x)``.  Each weighted NNLS is
solved exactly on its Gram form by the active-set kernel (one ``k x k`` Gram
matrix per sample and round; the samples of a chunk go through the rounds
together, their Gram matrices from one matrix product).

Differences from the package, all from what the pipeline's
:class:`~fastdeconv.methods._problem.CellContext` holds: the library size of
a type is its mean over all cells (MuSiC: the mean over subjects of the
per-subject means); a subject's type profile is the mean of its cells'
relative expression (MuSiC: their summed counts over their summed total); a
type seen in a single subject has no cross-subject variance and is kept with
``Sigma = 0`` (MuSiC drops it); the signature's values are not used, only its
genes (the design comes from the cells).

Examples
--------
>>> import numpy as np
>>> from fastdeconv.inputs.counts import as_counts
>>> from fastdeconv.methods import REGRESSION
>>> from fastdeconv.methods._problem import CellContext, RegressionProblem
>>> rng = np.random.default_rng(0)
>>> base = np.vstack([np.r_[np.full(10, 20.0), np.full(10, 2.0)],
...                   np.r_[np.full(10, 2.0), np.full(10, 20.0)]]).T  # 20 genes x 2 types
>>> labels = np.repeat(["A", "B"], 30)
>>> counts = rng.poisson(base[:, np.repeat([0, 1], 30)])
>>> ctx = CellContext.from_counts(as_counts(counts), labels, ["A", "B"],
...                               subjects=np.tile(np.repeat(["d1", "d2", "d3"], 10), 2))
>>> bulk = base @ np.array([[0.3], [0.7]])
>>> fit = REGRESSION.get("music").fit(RegressionProblem(base, bulk, cells=ctx))
>>> fit.coefficients.round(1).ravel().tolist()
[0.3, 0.7]
"""

from __future__ import annotations

import numpy as np

from fastdeconv.methods import REGRESSION, Method
from fastdeconv.methods._cells import (
    merged_options, option_bool, option_float, option_int, require_cells,
)
from fastdeconv.methods._problem import MethodFit

__all__ = ["MUSIC_OPTIONS"]

_MUSIC = (
    "Wang X., Park J., Susztak K., Zhang N. R., Li M. (2019) Bulk tissue cell type "
    "deconvolution with multi-subject single-cell expression reference. Nat Commun 10:380. "
    "doi:10.1038/s41467-018-08023-x"
)

#: The options of ``method="music"`` and their defaults (those of ``music_prop``).
MUSIC_OPTIONS = {"iter_max": 1000, "nu": 1e-4, "eps": 0.01, "centered": False,
                 "normalize": False}
_DOCS = {
    "iter_max": "most weighting rounds per sample (music_prop's iter.max)",
    "nu": "added to every gene's variance before inverting it (music_prop's nu)",
    "eps": "stop when the proportions move by less than this, sum of |changes| (eps)",
    "centered": "subtract the mean of the bulk and of the design first (centered)",
    "normalize": "divide bulk and design by their standard deviation instead of "
                 "scaling the bulk by 100 (normalize)",
}


def _design(ctx):
    """MuSiC's design matrix ``M.theta * M.S``, ``Sigma`` (0 where unknown) and ``M.S``."""
    size = np.asarray(ctx.rna_content, dtype=np.float64)
    design = np.ascontiguousarray(ctx.subject_mean() * size)
    sigma = np.nan_to_num(ctx.subject_variance(), nan=0.0)
    return design, sigma, size


def _scaled_bulk(design, B, centered, normalize):
    """``music.iter``'s scaling of each sample (its genes with a zero bulk left out).

    The design of sample ``j`` is ``(design - a_j) / c_j`` (``a_j`` its mean and
    ``c_j`` its standard deviation over the sample's genes when centred /
    normalised); returns the kept genes (n, m), the scaled bulk ``Y`` (0 on the
    other genes), ``a`` and ``c``.
    """
    keep = (B > 0).astype(np.float64)
    count = keep.sum(axis=0)
    Y = B / B.sum(axis=0)
    m, k = B.shape[1], design.shape[1]
    a, c = np.zeros(m), np.ones(m)
    if centered or normalize:
        rows, rows2 = design.sum(axis=1), (design * design).sum(axis=1)
        entries = count * k
        mean = (rows @ keep) / entries
        if centered:
            a = mean
        if normalize:
            # the package multiplies S by the sd of the normalised design, i.e. by 1
            c = np.sqrt((rows2 @ keep - 2 * mean * (rows @ keep) + k * count * mean**2)
                        / (entries - 1))
    ybar = (Y * keep).sum(axis=0) / count
    if centered:
        Y = Y - ybar
    if normalize:
        dev = (Y - (0.0 if centered else ybar)) * keep
        Y = Y / np.sqrt((dev * dev).sum(axis=0) / (count - 1))
    else:
        Y = Y * 100.0
    return keep, Y * keep, a, c


def _wnnls(design, Y, W, a, c, max_iter, tol):
    """NNLS of every column of ``sqrt(W) Y`` on ``sqrt(W) (design - a) / c``, from Gram forms.

    The Gram matrices of all columns come from one matrix product (their upper
    triangles); each is solved by the active-set kernel.  Returns the
    coefficients (k, m), the solvers' convergence and iterations.
    """
    from fastdeconv.kernels._active_set import gram_batch
    from fastdeconv.kernels.nnls import default_max_iter

    n, k = design.shape
    m = W.shape[1]
    iu, ju = np.triu_indices(k)
    upper = np.zeros((iu.size, m))
    step = max(1, (1 << 20) // iu.size)
    for g0 in range(0, n, step):  # sum_g W_gj d_gi d_gl, a few genes at a time
        D = design[g0:g0 + step]
        upper += (D[:, iu] * D[:, ju]).T @ W[g0:g0 + step]
    gram = np.empty((m, k, k))
    gram[:, iu, ju] = upper.T
    gram[:, ju, iu] = upper.T
    lin = design.T @ (W * Y)
    if a.any():
        u = (design.T @ W).T
        gram += ((a * a * W.sum(axis=0))[:, None, None]
                 - a[:, None, None] * (u[:, :, None] + u[:, None, :]))
        lin -= a * (W * Y).sum(axis=0)
    gram /= (c * c)[:, None, None]
    C = np.ascontiguousarray((lin / c).T)
    X = np.empty((m, k))
    n_iter = np.zeros(m, dtype=np.int64)
    status = np.zeros(m, dtype=np.int8)
    cap = default_max_iter.py_func(k) if max_iter < 0 else int(max_iter)
    for j in range(m):  # one Gram matrix per sample
        gram_batch(gram[j], 0.0, C[j:j + 1], X[j:j + 1], n_iter[j:j + 1], status[j:j + 1],
                   False, cap, float(tol))
    return X.T, status == 0, n_iter


def _music_block(B, design, sigma, size, opts, max_iter, tol):
    """``music.iter`` + ``music.basic`` for a block of samples, all rounds in step.

    Returns the proportions (k, m), the final gene weights (0 where the bulk
    is 0), the rounds, whether ``eps`` was reached and the last solve's
    iterations.
    """
    keep, Y, a, c = _scaled_bulk(design, B, opts["centered"], opts["normalize"])
    k, m = design.shape[1], B.shape[1]
    nu, eps = opts["nu"], opts["eps"]

    def fitted(x, cols):
        return (design @ x - a[cols] * x.sum(axis=0)) / c[cols]

    everyone = np.arange(m)
    x, ok, n_iter = _wnnls(design, Y, keep, a, c, max_iter, tol)
    R = Y - fitted(x, everyone)  # the first residual is the unweighted fit's, the next weighted
    P = np.full((k, m), np.nan)
    W = keep.copy()
    rounds = np.zeros(m, dtype=np.int64)
    converged = np.zeros(m, dtype=bool)
    active = everyone
    for r in range(opts["iter_max"] + 1):  # round 0 is music.basic's first weighted fit
        spread = sigma @ (x[:, active] * size[:, None]) ** 2  # sum_k (x_k S_k)^2 Sigma_gk
        Wa = keep[:, active] / (nu + R[:, active] ** 2 + spread)
        xa, oka, ita = _wnnls(design, Y[:, active], Wa, a[active], c[active], max_iter, tol)
        total = xa.sum(axis=0)
        empty = ~(total > 0)  # no type explains the sample: the proportions are undefined
        with np.errstate(invalid="ignore", divide="ignore"):
            pa = xa / total
        done = empty | (np.abs(pa - P[:, active]).sum(axis=0) < eps if r else empty)
        converged[active] = done & ~empty
        pa[:, empty] = np.nan
        P[:, active], x[:, active], W[:, active] = pa, xa, Wa
        R[:, active] = np.sqrt(Wa) * (Y[:, active] - fitted(xa, active))
        rounds[active], n_iter[active] = r, ita
        ok[active] &= oka
        active = active[~done]
        if not active.size:
            break
    return P, W, rounds, converged & ok, n_iter


def _fit_music(problem):
    """``"music"``: MuSiC's iteratively weighted NNLS, chunks of samples in threads.

    The samples of a chunk go through the rounds together (their Gram matrices
    from one matrix product per round); a sample leaves when it converges.
    """
    from fastdeconv._parallel import thread_map
    from fastdeconv.solvers._batch import chunk_bounds

    opts = merged_options(problem, MUSIC_OPTIONS)
    checked = dict(
        iter_max=option_int(opts, "iter_max"), nu=option_float(opts, "nu"),
        eps=option_float(opts, "eps"), centered=option_bool(opts, "centered"),
        normalize=option_bool(opts, "normalize"),
    )
    ctx = require_cells(problem, "music", min_subjects=2)
    design, sigma, size = _design(ctx)
    B = problem.B
    out = thread_map(
        lambda cols: _music_block(B[:, cols[0]:cols[1]], design, sigma, size, checked,
                                  problem.max_iter, problem.tol),
        chunk_bounds(problem.n, problem.m), problem.n_jobs,
    )
    P, W, rounds, converged, n_iter = (np.concatenate([o[i] for o in out], axis=-1)
                                       for i in range(5))
    # the reconstruction (design @ p) at each sample's least-squares scale: the bulk is fitted
    # up to its sequencing depth
    F = design @ np.nan_to_num(P)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.einsum("ij,ij->j", F, B) / np.einsum("ij,ij->j", F, F)
    return MethodFit(P, converged, n_iter, rounds, W, fitted=F * np.nan_to_num(scale))


REGRESSION.register(Method(
    "music",
    "MuSiC: NNLS weighted by the variation between donors, iterated (single cells "
    "with subjects)",
    fit=_fit_music, normalise=False, weights="unsupported", background=False,
    losses=("squared",), references=(_MUSIC,), options=MUSIC_OPTIONS, option_docs=_DOCS,
    needs=("cells", "subjects"), cell_fractions=True,
))
