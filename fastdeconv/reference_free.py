"""Reference-free deconvolution by mutual linearity (LinSeed).

The bulk ``G`` (genes x samples, linear scale) is modelled as ``W H``: ``W``
the unknown pure profiles (genes x k), ``H`` the unknown proportions (k x
samples, columns summing to 1).  Normalising each gene's row to sum 1 puts
every gene inside the (k-1)-simplex whose corners are the row-normalised rows
of ``H``; a cell type's marker genes, being proportional to its row of ``H``,
are mutually linear and sit at its corner.  :func:`linseed` finds the
significantly linear genes, the simplex and its corners, then the
proportions and the signature:

1. preprocessing: refuse a transposed table (fewer genes than samples) and
   ``n_types`` not below the samples before any work, read the bulk as
   :func:`fastdeconv.deconvolve` does (refusing NaN, negative, duplicated and
   log-scale genes), drop all-zero genes, keep the ``top_genes`` most
   expressed (mean of ``log2(1 + x)``);
2. mutual linearity of every gene pair, computed in blocks (BLAS products and a
   Numba kernel, memory bounded by ``block_memory_mb`` per worker: no genes x
   genes matrix is ever formed), and a per-gene permutation
   p-value of its summed edge weight; genes with ``p < pvalue`` are kept;
3. the number of components ``k`` (fixed, or chosen by a documented rule from
   the singular-value spectrum and a noise-subspace estimate);
4. projection onto the (k-1)-dimensional affine subspace and the corners: a
   successive-projection start refined by a hinge-penalised minimum-volume
   optimisation with seeded restarts;
5. proportions from the corners with the exact simplex-constrained solver
   (every sample sums to exactly 1), weighted by the genes' estimated
   mean-variance relation, and the signature by NNLS per gene.

The options are validated once, into a :class:`LinseedOptions`, and the
pipeline runs as named stages that each take it: ``_stage_prepare``,
``_stage_significance``, ``_stage_k``, ``_stage_corners``,
``_stage_proportions`` and ``_stage_result``.

References
----------
Zaitsev, K., Bambouskova, M., Swain, A., Artyomov, M. N. (2019). Complete
deconvolution of cellular mixtures based on linearity of transcriptional
signatures. Nature Communications 10, 2209. doi:10.1038/s41467-019-09990-5
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from fastdeconv._checks import check_choice, check_float, check_int
from fastdeconv._parallel import resolve_n_jobs
from fastdeconv._progress import advancer, compile_notice, progress_bar, show_progress
from fastdeconv.errors import Fix, InputProblem, literal
from fastdeconv.factorization import AUTO_MAX, AUTO_ROUND, AUTO_SAME, agreement
from fastdeconv.inputs import MISSING, SCALES
from fastdeconv.n_types import K_RULES, KDiagnostics, _choose_k  # noqa: F401 (re-exported)
from fastdeconv.results import ProportionsResult

__all__ = ["linseed", "LinseedResult", "estimate_k", "sinkhorn_scale"]

#: Most samples LinSeed analyses at once.  Every dense matrix of the method is
#: genes x samples, (a block of) genes x genes computed in blocks of bounded
#: memory, or samples x samples (the spectrum, the noise estimate and the
#: projection); the last grow with the square of the samples: at this bound
#: each takes 200 MB and their eigendecompositions about a minute.
MAX_SAMPLES = 5000
#: Gene pairs times samples of the linearity step above which :func:`linseed` shows its
#: bars by default (about a second of work on two cores; the permutations take as long).
PROGRESS_WORK = 2e9
#: Gene pairs scored per kernel call of the permutation null (the bar advances between).
_PAIRS_PER_CALL = 1 << 18
#: Bins of the histogram of edge weights (on [0, 1]) behind the saddlepoint null (each
#: bin stands for its edges by their exact mean: on GSE19830 the p-values agree with
#: 1024 bins' to 0.3% relative, the same genes pass, and the step takes 0.13 s, not 0.5).
HISTOGRAM_BINS = 1 << 8


def _check_samples(m, name):
    """Refuse more than :data:`MAX_SAMPLES` samples (before any samples x samples matrix)."""
    if m > MAX_SAMPLES:
        raise ValueError(
            f"{name} has {m} samples; LinSeed analyses at most {MAX_SAMPLES} at a time (its "
            "samples x samples matrices grow with the square of their number): run it on "
            f"subsets of at most {MAX_SAMPLES} samples"
        )


def _one_of(fixes):
    """Placeholders ``{0}``, ``{0} or {1}``, ``{0}, {1} or {2}`` ... for ``len(fixes)`` remedies."""
    slots = [f"{{{i}}}" for i in range(len(fixes))]
    return slots[0] if len(slots) == 1 else ", ".join(slots[:-1]) + " or " + slots[-1]


#: The p-value thresholds suggested, in turn, when too few genes are significant.
_LARGER_PVALUES = (0.05, 0.1, 0.2, 0.5)


def _more_genes(options, n_clean):
    """Remedies that let more genes through: a larger ``pvalue``, more ``top_genes``.

    ``n_clean`` is the number of genes left by the filters before ``top_genes``.
    """
    fixes = []
    larger = next((p for p in _LARGER_PVALUES if p > options.pvalue), None)
    if larger is not None:
        fixes.append(Fix("pvalue", larger))
    if options.top_genes < n_clean:
        fixes.append(Fix("top_genes", n_clean))
    return fixes


# --------------------------------------------------------------------------- k


def estimate_k(normalised, *, variance_threshold=0.99, max_k=None, n_types="auto"):
    """Choose the number of components of row-normalised expression data.

    The rule: ``k = min(k_variance, k_noise)``, clipped to ``[2, max_k]``, where
    ``k_variance`` is the smallest number of singular components explaining at
    least ``variance_threshold`` of the squared norm of the data, and
    ``k_noise`` the HySime estimate of the signal subspace (components whose
    power exceeds twice the noise power, the noise being estimated by
    regressing each sample on the others).  The variance rule stops at the
    knee of the spectrum; the noise estimate guards against counting noise as
    a component when the data are noisy.

    Parameters
    ----------
    normalised : array_like, shape (n_genes, n_samples)
        Genes' rows normalised to sum 1 (LinSeed uses the significantly linear genes).
    variance_threshold : float, default 0.99
        Share of the squared singular values the components must explain.
    max_k : int, optional
        Upper bound (default: the number of samples).
    n_types : int or "auto", default "auto"
        A fixed ``k`` to record instead of the automatic choice (the spectrum is
        computed anyway).

    Returns
    -------
    KDiagnostics

    References
    ----------
    Bioucas-Dias, J. M., Nascimento, J. M. P. (2008). Hyperspectral subspace
    identification. IEEE Transactions on Geoscience and Remote Sensing 46, 2435-2445.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.reference_free import estimate_k
    >>> rng = np.random.default_rng(0)
    >>> H = rng.dirichlet(np.ones(3), size=20).T                 # 3 x 20
    >>> W = rng.gamma(0.3, 1.0, size=(500, 3))
    >>> G = W @ H * rng.lognormal(0, 0.02, size=(500, 20))
    >>> estimate_k(G / G.sum(1, keepdims=True)).k
    3
    """
    X = np.asarray(normalised, dtype=np.float64)
    if X.ndim != 2 or min(X.shape) < 2:
        raise ValueError(f"need a 2-D genes x samples array with >= 2 of each, got shape {X.shape}")
    if X.shape[0] < X.shape[1]:
        raise ValueError(
            f"normalised has {X.shape[0]} rows (genes) and {X.shape[1]} columns (samples): fewer "
            "genes than samples, so it looks transposed (samples as rows); pass its transpose"
        )
    _check_samples(X.shape[1], "normalised")
    variance_threshold = check_float(variance_threshold, "variance_threshold", maximum=1.0)
    return _choose_k(X, variance_threshold, max_k, n_types)


# ------------------------------------------------------------------ linearity


def _average_ranks(G):
    """Ranks 1..m of every row of ``G`` with ties given their average rank (as rankdata)."""
    n, m = G.shape
    order = np.argsort(G, axis=1, kind="stable")
    ordered = np.take_along_axis(G, order, axis=1)
    # a new run of equal values starts where the sorted value changes
    new_run = np.ones((n, m), dtype=bool)
    new_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run_id = np.cumsum(new_run, axis=1) - 1  # per row: 0, 0, 1, 2, 2, ...
    flat = run_id + (np.arange(n) * m)[:, None]  # runs numbered across rows
    position = np.broadcast_to(np.arange(1, m + 1, dtype=np.float64), (n, m))
    sums = np.bincount(flat.ravel(), weights=position.ravel(), minlength=n * m)
    counts = np.bincount(flat.ravel(), minlength=n * m)
    ranks = np.empty((n, m))
    np.put_along_axis(ranks, order, (sums / np.maximum(counts, 1))[flat], axis=1)
    return ranks


def _ranks(G):
    """Per-gene ranks over samples (average ties), centred and scaled to unit norm.

    The ranks are computed here rather than by ``scipy.stats.rankdata``, whose
    import alone (about 0.6 s) would be most of a small dataset's run.
    """
    R = _average_ranks(G)
    R -= R.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", R, R))
    ok = norm > 0
    R[ok] /= norm[ok, None]
    R[~ok] = 0.0
    return np.ascontiguousarray(R)


def _normalise(G):
    """Row-normalised genes, their squared norms and sums of squares, and scaled ranks."""
    X = G / G.sum(axis=1, keepdims=True)
    centred = X - X.mean(axis=1, keepdims=True)
    tss = np.einsum("ij,ij->i", centred, centred)
    sq = np.einsum("ij,ij->i", X, X)
    tss[tss <= 1e-28 * sq] = 0.0  # constant profiles (up to rounding): no edges
    return X, sq, tss, _ranks(G)


def _block_rows(n, memory_mb):
    """Rows per block so that a worker's two block products fit in ``memory_mb``.

    A block of ``b`` rows multiplies into two ``b x n`` products (8 bytes a
    value); at least one row, which exceeds ``memory_mb`` only beyond 65,536
    genes per megabyte.
    """
    rows = int(memory_mb * 2**20 / (2 * 8 * max(n, 1)))
    return max(1, min(n, rows))


def _linearity(X, R, sq, tss, spearman_threshold, block_rows, n_jobs, progress=False):
    """Per-gene summed edge weight and degree over all pairs, in blocks of rows.

    No genes x genes matrix is formed: each worker holds the two products of
    one block of rows (``2 * 8 * block_rows * n`` bytes; see :func:`_block_rows`)
    and that block's accumulators (``16 n`` bytes).  The blocks run in waves
    of a few per worker, each wave's accumulators added to the totals before
    the next starts, so the step's memory is bounded by ``n_jobs`` times
    ``block_memory_mb`` plus a few vectors per worker, whatever the number of
    blocks.  The accumulators are added in block order, so the result does not
    depend on the number of threads.  The bar counts the pairs (with each
    gene's pair with itself) of every finished block.
    """
    from fastdeconv._parallel import thread_map
    from fastdeconv.kernels.linearity import accumulate_block

    n = X.shape[0]
    bar = progress_bar(n * (n + 1) // 2, progress, desc="linseed linearity", unit="pair",
                       unit_scale=True)
    advance = advancer(bar)

    def run(a):
        z = min(a + block_rows, n)
        power = np.zeros(n)
        degree = np.zeros(n, dtype=np.int64)
        hist_count = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        hist_sum = np.zeros(HISTOGRAM_BINS)
        edges, _ = accumulate_block(X[a:z] @ X[a:].T, R[a:z] @ R[a:].T, a, sq, tss,
                                    spearman_threshold, power, degree, hist_count, hist_sum)
        if advance:
            advance((z - a) * (2 * n - a - z + 1) // 2)  # rows a..z-1 with genes r..n-1
        return power, degree, edges, hist_count, hist_sum

    starts = range(0, n, block_rows)
    # the triangle's first blocks are the widest: thread_map hands them out first
    wave = 4 * resolve_n_jobs(n_jobs)
    power = np.zeros(n)
    degree = np.zeros(n, dtype=np.int64)
    hist_count = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    hist_sum = np.zeros(HISTOGRAM_BINS)
    n_edges = 0
    with bar:
        for w in range(0, len(starts), wave):
            for p, d, e, hc, hs in thread_map(run, starts[w:w + wave], n_jobs):
                power += p
                degree += d
                n_edges += e
                hist_count += hc
                hist_sum += hs
    return power, degree, int(n_edges), EdgeWeights(hist_count, hist_sum)


@dataclass
class EdgeWeights:
    """The distribution of all edge weights, as a fine histogram with exact bin means.

    ``count[b]`` edges have weights in ``[b / B, (b + 1) / B)`` (the last bin
    closed) and ``total[b]`` is their summed weight, so each non-empty bin is
    represented by its exact mean weight: the null of :func:`_saddlepoint_pvalues`
    differs from the empirical distribution of the weights by less than one bin
    width (1/:data:`HISTOGRAM_BINS`) in any weight.
    """

    count: np.ndarray
    total: np.ndarray

    def support(self):
        """The non-empty bins' mean weights and their probabilities."""
        ok = self.count > 0
        return (np.ascontiguousarray(self.total[ok] / self.count[ok]),
                np.ascontiguousarray(self.count[ok] / self.count.sum()))


def _saddlepoint_pvalues(power, degree, weights):
    """P-values of LinSeed's edge re-assignment null, computed instead of sampled.

    Under the null a gene with ``d`` edges has the summed weight of ``d``
    draws, with replacement, from all edge weights: the distribution the
    permutation test samples (:func:`_permutation_pvalues`).  Its tail is
    computed by the saddlepoint approximation
    (:func:`fastdeconv.kernels.linearity.saddlepoint_pvalues`) from the
    histogram of every edge weight, so the p-values have no Monte Carlo error
    and do not depend on the seed.
    """
    from fastdeconv.kernels.linearity import saddlepoint_pvalues

    if weights.count.sum() == 0:
        return np.ones(len(power))
    values, probs = weights.support()
    return saddlepoint_pvalues(power, degree.astype(np.int64), values, probs)


def _draw_edge_weights(X, R, sq, tss, spearman_threshold, size, n_edges, rng, advance=None):
    """``size`` edge weights drawn uniformly with replacement from all edges.

    Uniform random gene pairs are scored and the non-edges rejected, so the
    n x n weight matrix is never stored.  The pairs of a batch are scored in
    pieces (each pair's weight is its own, so the pieces change nothing), and
    ``advance(count)``, when given, hears how many weights each piece adds.
    """
    from fastdeconv.kernels.linearity import pair_weights

    n = X.shape[0]
    n_pairs = n * (n - 1) / 2.0
    rate = n_edges / n_pairs
    out = np.empty(size)
    filled = 0
    while filled < size:
        batch = int(min(max((size - filled) / rate * 1.2, 1024), 1 << 21))  # <= 48 MB
        i = rng.integers(0, n, size=batch)
        j = rng.integers(0, n - 1, size=batch)
        j += j >= i  # a uniform j != i
        need = size - filled
        pieces = []
        for start in range(0, batch, _PAIRS_PER_CALL):
            stop = min(start + _PAIRS_PER_CALL, batch)
            w = pair_weights(X, R, sq, tss, i[start:stop], j[start:stop], spearman_threshold)
            pieces.append(w[w > 0.0])
            if advance:  # the edges found, at most this piece's share of the weights needed
                advance(min(pieces[-1].size, need * (stop - start) // batch))
        w = np.concatenate(pieces)
        take = min(w.size, need)
        out[filled:filled + take] = w[:take]
        filled += take
    return out


def _permutation_pvalues(X, R, sq, tss, power, degree, n_edges, spearman_threshold,
                         n_permutations, rng, progress=False):
    """Permutation p-values of each gene's summed edge weight.

    The null re-assigns the edge weights at random (drawn with replacement
    from all edges) while every gene keeps its number of edges, as in the
    LinSeed package; so a gene's null statistic is the sum of ``degree``
    random edge weights.  Per permutation one pool of weights is drawn and
    each gene sums a window of ``degree`` consecutive pool values at a random
    start: exactly that null for every gene, at a cost of
    ``O(n_permutations * (max degree + n))`` instead of
    ``O(n_permutations * n_edges)``.  The bar counts permutations, advancing
    as their pools of weights fill.
    """
    from fastdeconv.kernels.linearity import window_sums

    n = X.shape[0]
    count = np.zeros(n, dtype=np.int64)
    max_degree = int(degree.max()) if n else 0
    if n_edges == 0 or max_degree == 0:
        return np.ones(n)
    pool = 2 * max_degree
    span = pool - degree + 1
    degree64 = degree.astype(np.int64)
    # permutations in chunks of ~16 MB of pool, so memory does not grow with n_permutations
    chunk = max(1, min(n_permutations, (1 << 21) // max(pool, n)))
    with progress_bar(n_permutations, progress, desc="linseed permutations",
                      unit="permutation") as bar:
        fill = _PoolFill(bar, pool)
        for b0 in range(0, n_permutations, chunk):
            b = min(chunk, n_permutations - b0)
            fill.start(b0 + b)
            weights = _draw_edge_weights(X, R, sq, tss, spearman_threshold, b * pool, n_edges,
                                         rng, fill.weights)
            cumulative = np.zeros((b, pool + 1))
            np.cumsum(weights.reshape(b, pool), axis=1, out=cumulative[:, 1:])
            starts = (rng.random((b, n)) * span).astype(np.int64)
            count += window_sums(cumulative, starts, degree64, power)
            fill.done(b0 + b)
    # a gene without edges has statistic 0 and reaches it in every permutation
    count[degree == 0] = n_permutations
    return (count + 1.0) / (n_permutations + 1.0)


class _PoolFill:
    """The permutations bar: the weights drawn, shown as the permutations whose pools they fill."""

    def __init__(self, bar, pool):
        self.bar, self.pool = bar, pool
        self.drawn = self.limit = 0
        self.weights = None if bar.disable else self._weights

    def start(self, permutations):
        """The pools of the permutations up to ``permutations`` are being drawn."""
        self.limit = permutations * self.pool

    def _weights(self, count):
        """``count`` more weights drawn."""
        self._move(self.drawn + count)

    def done(self, permutations):
        """Every permutation up to ``permutations`` is counted."""
        self._move(permutations * self.pool)

    def _move(self, drawn):
        drawn = min(max(drawn, self.drawn), self.limit)
        step = drawn // self.pool - self.drawn // self.pool
        self.drawn = drawn
        if step > 0:
            self.bar.update(step)


# -------------------------------------------------------------------- corners


def _project(Xf, k):
    """Centre the filtered rows and keep the top k-1 right singular vectors."""
    mu = Xf.mean(axis=0)
    centred = Xf - mu
    # right singular vectors from the small samples x samples Gram matrix
    _, vectors = np.linalg.eigh(centred.T @ centred)
    V = np.ascontiguousarray(vectors[:, ::-1][:, : k - 1])
    # fix the sign of each axis (largest loading positive) so results are reproducible
    flip = np.sign(V[np.abs(V).argmax(axis=0), np.arange(k - 1)])
    V *= np.where(flip == 0, 1.0, flip)
    return mu, V, np.ascontiguousarray(centred @ V)


def _sum_to_one(corners):
    """Proportions from corners (k x samples) by the sum-to-one model.

    The scales that make every sample's proportions sum to 1 best (NNLS of a
    vector of ones on the corners): ``component_scale="sum_to_one"``, and the
    common scale on which the stability score compares the starts.
    """
    C = np.clip(corners, 0.0, None)
    lam = _solve(C.T, np.ones((C.shape[1], 1)), "nnls", 1)[0][:, 0]
    P = lam[:, None] * C
    total = P.sum(axis=0)
    return P / np.where(total > 0, total, 1.0)


def _restarts(run, n_restarts, progress, desc):
    """Run ``run(r)`` for starts r = 0, 1, ... and keep the best (smallest ``.fun``).

    ``n_restarts`` an int: that many restarts besides start 0.  ``"auto"``:
    rounds of ``AUTO_ROUND`` until the best objective has been reached (to
    ``AUTO_SAME``, relative) by at least two starts, or ``AUTO_MAX`` restarts:
    the rule of :func:`fastdeconv.factorization.nmf`.
    Returns the best result, every start's objective and every start's result.
    """
    auto = isinstance(n_restarts, str)
    total = AUTO_MAX + 1 if auto else n_restarts + 1
    results = []
    with progress_bar(None if auto else total, progress, desc=desc, unit="start") as bar:
        r = 0
        while r < total:
            stop = min(total, r + (AUTO_ROUND if r else 1 + AUTO_ROUND))
            for i in range(r, stop):
                results.append(run(i))
                bar.update(1)
            r = stop
            if auto:
                funs = np.array([res.fun for res in results])
                best = funs.min()
                if np.isfinite(best) and np.sum(
                        np.abs(funs - best) <= AUTO_SAME * max(1.0, abs(best))) >= 2:
                    break
    funs = np.array([res.fun for res in results])
    best = results[int(np.argmin(np.where(np.isfinite(funs), funs, np.inf)))]
    return best, funs, results


@dataclass
class _Start:
    """One start of the corner search: its corners (flattened), objective, iterations."""

    x: np.ndarray
    fun: float
    nit: int
    success: bool


def _find_corners(Y, k, hinge_weight, n_restarts, rng, more_genes=(), progress=False,
                  dual=None):
    """SPA start, then the hinge-penalised minimum-volume refinement with restarts.

    Returns the corners ((k-1) x k, one column per corner), the SPA genes, a
    dict of diagnostics and every start's corners.  ``more_genes``: the
    remedies (:class:`Fix`) that keep more genes, named when the genes span
    no ``k``-corner simplex.  ``dual``, when given, is ``(base, dirs, weight)``:
    the dual simplex's hinge on the corners' sample-space profiles
    (:func:`fastdeconv.kernels.corners.minimise_corners`).  Each start is
    minimised by the kernel's BFGS (no Python call per iteration).
    """
    from fastdeconv._parallel import single_threaded_blas
    from fastdeconv.kernels.corners import (
        minimise_corners,
        simplex_objective,
        successive_projection,
    )

    Ya = np.ascontiguousarray(np.column_stack([Y, np.ones(len(Y))]))
    spa, residual = successive_projection(Ya, k)
    start = np.ascontiguousarray(Y[spa].T)
    if len(set(spa.tolist())) < k or np.linalg.matrix_rank(np.vstack([start, np.ones(k)])) < k:
        fixes = [Fix("n_types", k - 1)] if k > 2 else []
        fixes += list(more_genes)
        advice = f"; use {_one_of(fixes)}" if fixes else ""
        raise InputProblem(
            f"the significant genes do not span a {k}-corner simplex (the successive "
            f"projection found only degenerate corners){advice}", *fixes
        )
    spread = Y.std(axis=0)[:, None]
    base, dirs, weight = dual if dual is not None else (np.zeros(0), np.zeros((0, 0)), 0.0)

    # one stream of jitter per start, drawn in order: the same starts whatever stops the loop
    n_jitter = AUTO_MAX if isinstance(n_restarts, str) else n_restarts
    jitter = [None] + [rng.normal(scale=0.1, size=start.shape) for _ in range(n_jitter)]

    def run(r):
        x0 = start if r == 0 else start + jitter[r] * spread
        x, value, n_iter, ok = minimise_corners(np.ascontiguousarray(x0.ravel()), Ya,
                                                float(hinge_weight), base, dirs, float(weight),
                                                1000, 1e-5, 2.2e-9)
        return _Start(x, float(value), int(n_iter), bool(ok))

    # small dense algebra: multi-threaded BLAS only adds contention here
    with single_threaded_blas():
        best, funs, results = _restarts(run, n_restarts, progress, "linseed corners")
    corners = best.x.reshape(k - 1, k)
    _, _, n_outside = simplex_objective(best.x, Ya, hinge_weight)
    info = {"objective": float(best.fun), "n_iter": int(best.nit), "converged": bool(best.success),
            "n_outside": int(n_outside), "spa_residual": residual, "n_starts": len(results),
            "start_objectives": funs}
    return corners, spa, info, [res.x.reshape(k - 1, k) for res in results]


def sinkhorn_scale(G, *, tol=1e-12, max_iter=10000):
    """Scale the rows and columns of ``G`` so rows sum to 1 and columns to ``n / m``.

    Sinkhorn-Knopp alternation (Sinkhorn 1964): ``V = diag(r) G diag(c)``.  In
    ``V`` the genes (rows) lie in a simplex whose corners are the scaled
    proportion profiles, and the samples (columns, divided by ``n / m``) in a
    simplex whose corners are the scaled pure profiles: the two simplices of
    DualSimplex (Kleverov et al. 2024).

    Parameters
    ----------
    G : ndarray, shape (n, m)
        Non-negative, every row and column with a positive value.
    tol : float, default 1e-12
        Stop when every column sum is within ``tol`` (relative) of ``n / m``.
    max_iter : int, default 10000
        Most alternations.

    Returns
    -------
    V : ndarray, shape (n, m)
    row_scale : ndarray, shape (n,)
    column_scale : ndarray, shape (m,)
    n_iter : int
    converged : bool
        Whether the column sums reached ``tol`` (a pattern of zeros can make the
        balance unreachable: then the rows sum to 1 and the columns do not).

    Raises
    ------
    ValueError
        If ``G`` is not a finite, non-negative 2-D array, or a row or column of
        it is all zero (such a gene or sample cannot be scaled).

    References
    ----------
    Sinkhorn, R. (1964). A relationship between arbitrary positive matrices and doubly
    stochastic matrices. Annals of Mathematical Statistics 35, 876-879.
    Kleverov, D. et al. (2024). Non-negative matrix factorization and deconvolution as dual
    simplex problem. bioRxiv 2024.04.09.588652.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.reference_free import sinkhorn_scale
    >>> V, r, c, _, ok = sinkhorn_scale(np.array([[1.0, 2.0], [3.0, 1.0], [2.0, 2.0]]))
    >>> np.allclose(V.sum(1), 1.0), np.allclose(V.sum(0), 1.5), ok
    (True, True, True)
    """
    V = np.array(G, dtype=np.float64)
    if V.ndim != 2 or not np.all(np.isfinite(V)) or np.any(V < 0):
        raise ValueError("G must be a finite, non-negative 2-D array (genes x samples)")
    if not (np.all(V.sum(axis=1) > 0) and np.all(V.sum(axis=0) > 0)):
        raise ValueError("G has an all-zero row or column; drop those genes or samples first")
    n, m = V.shape
    r = np.ones(n)
    c = np.ones(m)
    target = n / m
    it = 0
    for it in range(1, max_iter + 1):
        rows = V.sum(axis=1)
        V /= rows[:, None]
        r /= rows
        cols = V.sum(axis=0) / target
        V /= cols[None, :]
        c /= cols
        if np.abs(cols - 1.0).max() <= tol:
            return V, r, c, it, True
    return V, r, c, it, False


def _dual_corners(G, k, hinge_weight, n_restarts, rng, more_genes=(), progress=False):
    """Corners of the Sinkhorn-scaled dual simplex (DualSimplex), in sample space.

    ``G`` (the significant genes, linear) is Sinkhorn-scaled
    (:func:`sinkhorn_scale`) and projected on its top ``k`` singular vectors:
    the genes' coordinates ``X = V R'`` (their first column is the constant
    ``1/sqrt(m)``) lie in a simplex whose corners ``X_hat`` map back to the
    scaled proportions ``H = X_hat R``.  The corners minimise the volume of the
    gene simplex with a squared hinge on genes outside it (the genes' weights
    ``W >= 0``, as in :func:`_find_corners`) plus the same hinge on negative
    entries of ``m * H`` (the proportions ``H >= 0``: the samples inside the
    dual simplex).  Returns the corners in the original sample space (k x m,
    rows summing to 1), the diagnostics and every start's corners.
    """
    V, _, col_scale, n_sinkhorn, balanced = sinkhorn_scale(G)
    if not balanced:
        raise InputProblem(
            f"the significant genes cannot be Sinkhorn-balanced (their zeros leave some "
            f"sample almost empty; {n_sinkhorn} iterations); use {{0}}",
            Fix("method", "simplex"))
    _, vectors = np.linalg.eigh(V.T @ V)
    R = np.ascontiguousarray(vectors[:, ::-1][:, :k].T)  # k x m, orthonormal rows
    R[0] *= np.sign(R[0].sum()) or 1.0
    flip = np.sign(R[np.arange(1, k), np.abs(R[1:]).argmax(axis=1)])
    R[1:] *= np.where(flip == 0, 1.0, flip)[:, None]
    X = V @ R.T
    c0 = float(X[:, 0].mean())
    Y = np.ascontiguousarray(X[:, 1:])
    R1 = np.ascontiguousarray(R[1:])
    dual = (np.ascontiguousarray(c0 * R[0]), R1, float(hinge_weight))
    corners_x, spa, info, starts = _find_corners(Y, k, hinge_weight, n_restarts, rng,
                                                 more_genes, progress, dual=dual)

    def to_samples(Cm):
        H = (c0 * R[0][None, :] + Cm.T @ R1) / col_scale[None, :]
        H = np.clip(H, 0.0, None)
        total = H.sum(axis=1, keepdims=True)
        return H / np.where(total > 0, total, 1.0)

    info["sinkhorn_iterations"] = n_sinkhorn
    return to_samples(corners_x), spa, info, [to_samples(c) for c in starts]


def _variance_power(mean, residual_var):
    """Exponent ``b`` of the variance function ``var ~ mean**b``, clipped to [0, 2].

    Ordinary least squares of ``log(residual_var)`` on ``log(mean)`` over the
    genes with a non-zero residual: ``b = 1`` is counting (Poisson) noise,
    ``b = 2`` multiplicative (constant coefficient of variation) noise.
    Returns 0 (no weighting) when fewer than 3 genes have a residual or the
    means do not vary.
    """
    ok = (residual_var > 0) & (mean > 0)
    if ok.sum() < 3:
        return 0.0
    x = np.log(mean[ok])
    y = np.log(residual_var[ok])
    x = x - x.mean()
    sxx = float(x @ x)
    if sxx <= 0:
        return 0.0
    return float(np.clip((x @ (y - y.mean())) / sxx, 0.0, 2.0))


def _solve(A, B, kind, n_jobs, weights=None, residuals=False):
    """The solvers' core on the pipeline's arrays (finite by construction).

    ``A`` is made float64 C-contiguous here; the core does not re-check, and a
    sample that stops at the iteration cap warns as the public solvers do.
    """
    from fastdeconv.solvers._core import solve
    from fastdeconv.solvers.api import warn_unconverged

    X, info = solve(np.ascontiguousarray(A, dtype=np.float64), B, kind=kind, weights=weights,
                    n_jobs=n_jobs, residuals=residuals)
    warn_unconverged(info.status, -1)
    return X, info


def _proportions(corners, G, keep, n_jobs, weighting="variance", component_scale="totals"):
    """Proportions (k x samples, columns summing to 1) from the corners.

    NNLS of every analysed gene on the corners gives the pure profiles up to
    scale; normalised to sum 1 they fit each column-normalised sample by
    simplex-constrained least squares on the significant genes.  With
    ``weighting="variance"`` the fit is weighted least squares: an unweighted
    fit first, then the power ``b`` of the genes' residual variance against
    their mean expression (:func:`_variance_power`), then the fit again with
    weights ``mean**-b`` (normalised to mean 1).

    Returns the proportions, the solver's info (its ``residual_norm`` and
    ``converged`` describe the final fit), the normalised profiles and the
    variance power used (0.0 for an unweighted fit).
    """
    k = corners.shape[0]
    W0 = _solve(corners.T, G.T, "nnls", n_jobs)[0].T  # genes x k
    totals = W0.sum(axis=0)
    if np.any(totals <= 0):
        empty = [j + 1 for j in np.flatnonzero(totals <= 0)]
        if k > 2:
            raise InputProblem(
                f"component(s) {empty} explain no gene; the data do not support {k} "
                "components: use fewer ({0})", Fix("n_types", k - 1)
            )
        raise ValueError(
            f"component(s) {empty} explain no gene; the data do not support {k} components"
        )
    Wn = W0 / totals
    A, B = Wn[keep], G[keep] / G.sum(axis=0)
    if component_scale == "sum_to_one":
        from types import SimpleNamespace

        P = _sum_to_one(corners)
        residual = B - A @ P
        info = SimpleNamespace(residual_norm=np.sqrt(np.einsum("ij,ij->j", residual, residual)),
                               converged=np.ones(P.shape[1], dtype=bool))
        return P, info, Wn, 0.0
    weighted = weighting == "variance"
    # the residuals are computed once: by the solver for the final fit, or here for the
    # variance model (whose fit is final when the model asks for no weights)
    P, info = _solve(A, B, "simplex", n_jobs, residuals=not weighted)
    power = 0.0
    if weighted:
        mean = B.mean(axis=1)
        residual = B - A @ P
        gene_ss = np.einsum("ij,ij->i", residual, residual)
        power = _variance_power(mean, gene_ss / B.shape[1])
        if power > 0.0:
            w = mean**-power
            P, info = _solve(A, B, "simplex", n_jobs, weights=w / w.mean(), residuals=True)
        else:
            info = replace(info, residual_norm=np.sqrt(np.einsum("ij,ij->j", residual, residual)))
    return P, info, Wn, power


# --------------------------------------------------------------------- result


@dataclass
class LinseedResult(ProportionsResult):
    """Result of :func:`linseed`.

    Like every proportions result (:class:`fastdeconv.results.ProportionsResult`),
    :meth:`to_frame` gives the proportions and the per-sample :attr:`fit` side
    by side and :meth:`write` writes the proportions (and optionally the fit,
    the signature and the markers); :meth:`plot` draws the three diagnostic
    panels.

    Attributes
    ----------
    proportions : pandas.DataFrame
        Samples x components; every row sums to exactly 1.
    signature : pandas.DataFrame
        Genes x components, linear scale (NNLS of each gene on the proportions).
    markers : dict
        Component -> list of marker genes: the significant genes whose largest
        barycentric coordinate is that component's, nearest its corner first.
    corners : pandas.DataFrame
        Components x samples: the simplex corners in sample space (each a
        row-normalised proportion profile, summing to 1).
    k_diagnostics : KDiagnostics
        The spectrum and the automatic choice of ``k``.
    genes : pandas.DataFrame
        Per analysed gene: ``power`` (summed edge weight), ``degree`` (edges),
        ``pvalue``, ``significant``.
    projection : pandas.DataFrame
        The significant genes' coordinates in the (k-1)-dimensional subspace,
        the ``component`` whose corner has their largest barycentric
        coordinate, that ``coordinate`` and the Euclidean ``distance`` to
        that corner.
    corner_coordinates : pandas.DataFrame
        The corners in the same coordinates (components x dimensions).
    fit : pandas.DataFrame
        Per sample: ``residual_norm`` of the simplex-constrained fit (on the
        column-normalised significant genes; ``||sqrt(w) (A x - b)||`` with the
        gene weights ``w`` of the weighted fit) and ``converged``.
    dropped : dict
        Genes removed by preprocessing: ``missing`` (with NaN values, when
        ``missing="drop"``; refused otherwise, as by :func:`fastdeconv.deconvolve`),
        ``all_zero``, ``low_mean`` (below ``min_mean``), ``below_top`` (not
        among the most expressed), ``not_significant``.
    info : dict
        Diagnostics of the corner search, the number of edges, the seed,
        ``variance_power`` (the exponent ``b`` of the weights of the
        proportions fit; 0.0 when unweighted) and ``timings`` (seconds per
        stage).

    Examples
    --------
    >>> from fastdeconv.reference_free import linseed
    >>> from fastdeconv.simulate import synthetic
    >>> data = synthetic(n_genes=400, n_types=3, n_samples=12, seed=1)
    >>> res = linseed(data.bulk, 3, n_permutations=20, pvalue=0.05)
    >>> res.n_types, res.proportions.shape, res.signature.shape
    (3, (12, 3), (400, 3))
    >>> sorted(res.markers)
    ['component_1', 'component_2', 'component_3']
    >>> list(res.to_frame().columns)
    ['component_1', 'component_2', 'component_3', 'residual_norm', 'converged']
    """

    proportions: pd.DataFrame
    signature: pd.DataFrame
    markers: dict
    corners: pd.DataFrame
    k_diagnostics: KDiagnostics
    genes: pd.DataFrame
    projection: pd.DataFrame
    corner_coordinates: pd.DataFrame
    fit: pd.DataFrame
    dropped: dict
    info: dict = field(default_factory=dict)

    @property
    def n_types(self):
        """Number of components."""
        return self.proportions.shape[1]

    def summary(self):
        """A short text report.

        Returns
        -------
        str

        Examples
        --------
        >>> from fastdeconv.reference_free import linseed
        >>> from fastdeconv.simulate import synthetic
        >>> data = synthetic(n_genes=400, n_types=3, n_samples=12, seed=1)
        >>> res = linseed(data.bulk, 3, n_permutations=20, pvalue=0.05)
        >>> print(res.summary().splitlines()[0])
        LinSeed: 3 components from 12 samples
        """
        d = self.k_diagnostics
        how = "automatic" if d.automatic else "fixed"
        sig = int(self.genes["significant"].sum())
        lines = [
            f"LinSeed: {self.n_types} components from {self.proportions.shape[0]} samples",
            f"  k = {d.k} ({how}; variance rule {d.k_variance} at {d.variance_threshold:g}, "
            f"noise subspace {d.k_noise}; explained by k: {d.explained[d.k - 1]:.4f})",
            f"  genes: {len(self.genes)} analysed, {sig} significantly linear; dropped "
            + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in self.dropped.items()),
            f"  corners: {self.info.get('n_outside', 0)} significant genes outside the simplex",
        ]
        if "method" in self.info:
            starts = self.info.get("n_starts", 1)
            if starts > 1:
                stability = (f"stability {self.info.get('stability', float('nan')):.2f} (share "
                             f"of {starts} starts agreeing with the best to 0.01)")
            else:
                stability = "stability not measured (one run, no restarts)"
            rule = self.info.get("k_rule")
            lines.append(
                f"  method {self.info['method']}, "
                + (f"k rule {rule}" if rule else "k given") + f", null "
                f"{self.info.get('null')}, scale {self.info.get('component_scale')}; {stability}")
        if "variance_power" in self.info:
            b = self.info["variance_power"]
            how = f"gene weights mean^-{b:.2f}" if b > 0 else "unweighted"
            lines.append(f"  proportions fit: {how}")
        for comp, genes in self.markers.items():
            lines.append(f"  {comp}: {len(genes)} markers, e.g. {', '.join(map(str, genes[:3]))}")
        timings = self.info.get("timings", {})
        if timings:
            lines.append("  time: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
        return "\n".join(lines)

    def write(self, path, *, fit_path=None, signature_path=None, markers_path=None):
        """Write the proportions, and optionally the fit, signature and markers, atomically.

        Every table is TSV or CSV by its extension, optionally gzipped (see
        :func:`fastdeconv.io.write_table`).

        Parameters
        ----------
        path : str or os.PathLike
            Proportions, samples x components (first header ``sample``).
        fit_path : str or os.PathLike, optional
            The per-sample fit table (:attr:`fit`).
        signature_path : str or os.PathLike, optional
            The signature, genes x components (first header ``gene``).
        markers_path : str or os.PathLike, optional
            The markers as a long table (:meth:`markers_frame`: component,
            gene, rank, distance).

        Examples
        --------
        >>> import os, tempfile
        >>> from fastdeconv.reference_free import linseed
        >>> from fastdeconv.simulate import synthetic
        >>> data = synthetic(n_genes=400, n_types=3, n_samples=12, seed=1)
        >>> res = linseed(data.bulk, 3, n_permutations=20, pvalue=0.05)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     res.write(os.path.join(d, "p.tsv"), markers_path=os.path.join(d, "m.tsv"))
        ...     print(open(os.path.join(d, "m.tsv")).readline().split())
        ['component', 'gene', 'rank', 'distance']
        """
        from fastdeconv.io import write_table

        super().write(path, fit_path=fit_path)
        if signature_path is not None:
            write_table(self.signature, signature_path, index_label="gene")
        if markers_path is not None:
            write_table(self.markers_frame().set_index("component"), markers_path)

    def markers_frame(self):
        """The markers as a long table (component, gene, rank, distance to the corner).

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> from fastdeconv.reference_free import linseed
        >>> from fastdeconv.simulate import synthetic
        >>> data = synthetic(n_genes=400, n_types=3, n_samples=12, seed=1)
        >>> res = linseed(data.bulk, 3, n_permutations=20, pvalue=0.05)
        >>> list(res.markers_frame().columns)
        ['component', 'gene', 'rank', 'distance']
        """
        rows = []
        for comp, genes in self.markers.items():
            dist = self.projection.loc[genes, "distance"].to_numpy()
            for r, (g, dd) in enumerate(zip(genes, dist), start=1):
                rows.append((comp, g, r, float(dd)))
        return pd.DataFrame(rows, columns=["component", "gene", "rank", "distance"])

    def plot_spectrum(self, path=None, ax=None, *, title=None):
        """Singular-value spectrum with the chosen k; see :func:`fastdeconv.plotting.plot_spectrum`."""
        from fastdeconv.plotting._linseed import plot_spectrum

        return plot_spectrum(self, path=path, ax=ax, title=title)

    def plot_simplex(self, path=None, ax=None, dims=(0, 1), *, title=None):
        """Projected genes, simplex and corners; see :func:`fastdeconv.plotting.plot_simplex`."""
        from fastdeconv.plotting._linseed import plot_simplex

        return plot_simplex(self, path=path, ax=ax, dims=dims, title=title)

    def plot_significance(self, path=None, ax=None, *, title=None):
        """Degree vs summed edge weight; see :func:`fastdeconv.plotting.plot_significance`."""
        from fastdeconv.plotting._linseed import plot_significance

        return plot_significance(self, path=path, ax=ax, title=title)

    def plot(self, path=None, *, title=None):
        """The three diagnostic plots side by side; see :func:`fastdeconv.plotting.plot_linseed`.

        (The stacked proportions are :meth:`plot_proportions`.)

        Parameters
        ----------
        path : str or os.PathLike, optional
            Save the figure there.
        title : str, optional
            The figure's title: name the dataset (default: the number of
            components, genes and samples; ``""`` for none).

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> from fastdeconv.reference_free import linseed
        >>> from fastdeconv.simulate import synthetic
        >>> res = linseed(synthetic(n_genes=400, n_types=3, n_samples=12, seed=1).bulk, 3,
        ...               n_permutations=20, pvalue=0.05)
        >>> len(res.plot(title="LinSeed: GSE19830").axes)
        4
        """
        from fastdeconv.plotting._linseed import plot_linseed

        return plot_linseed(self, path=path, title=title)


# ------------------------------------------------------------------- options

#: The scales :func:`linseed` accepts: those of :data:`fastdeconv.inputs.SCALES`
#: (un-logged by :func:`fastdeconv.inputs.unlog`), as :func:`fastdeconv.deconvolve` does.
LINSEED_SCALES = SCALES
#: What to do with duplicated gene names (:func:`fastdeconv.inputs.harmonize_genes`).
DUPLICATES = ("raise", "sum")
#: The weightings of the proportions fit.
WEIGHTINGS = ("variance", "none")
#: How the corners (or factors) are found: see :func:`linseed`, ``method``.
METHODS = ("simplex", "dualsimplex", "nmf", "ica", "anchors")
#: The nulls of the significance test (``null``).
NULLS = ("saddlepoint", "permutation")
#: The models of each component's scale (``component_scale``).
COMPONENT_SCALES = ("totals", "sum_to_one")


@dataclass(frozen=True)
class LinseedOptions:
    """The options of :func:`linseed`, validated once when built.

    Every stage of the pipeline takes this object.  The fields are the keywords
    of :func:`linseed` (except the input-reading ones, ``genes`` and
    ``layer``), checked and converted: integers as ``int``, numbers as
    ``float``, ``n_jobs`` as a thread count (:func:`fastdeconv._parallel.resolve_n_jobs`).

    Parameters
    ----------
    n_types, top_genes, min_mean, n_permutations, pvalue, seed, spearman_threshold, \
variance_threshold, hinge_weight, n_restarts, weighting, n_markers, marker_genes, scale, \
transpose, duplicates, missing, case_insensitive, strip_version, block_memory_mb, n_jobs, \
progress
        As in :func:`linseed`, with the same defaults.

    Raises
    ------
    TypeError
        If an option has the wrong type (``marker_genes`` not a dict, a number
        that is not one).
    ValueError
        If an option has an invalid value, or ``n_permutations`` is too small
        for any gene to reach ``pvalue``.

    Examples
    --------
    >>> from fastdeconv.reference_free import LinseedOptions
    >>> opts = LinseedOptions(n_types=3, pvalue=0.05, n_permutations=20, n_jobs=1)
    >>> opts.n_types, opts.pvalue, opts.scale
    (3, 0.05, 'auto')
    >>> try:
    ...     LinseedOptions(pvalue=0.01, n_permutations=50, null="permutation")
    ... except ValueError as err:
    ...     print(str(err)[:58])
    with 50 permutations the smallest possible p-value is 1/51
    """

    n_types: object = "auto"
    method: str = "simplex"
    k_rule: str = "spectrum"
    null: str = "saddlepoint"
    component_scale: str = "totals"
    top_genes: int = 10000
    min_mean: object = "auto"
    n_permutations: int = 100
    pvalue: float = 0.01
    seed: object = 0
    spearman_threshold: float = 0.0
    variance_threshold: float = 0.99
    hinge_weight: float = 1000.0
    n_restarts: object = "auto"
    weighting: str = "variance"
    n_markers: int = 100
    marker_genes: dict = None
    scale: str = "auto"
    transpose: bool = False
    duplicates: str = "raise"
    missing: str = "raise"
    case_insensitive: bool = False
    strip_version: bool = False
    block_memory_mb: float = 64
    n_jobs: int = None
    progress: bool = None

    def __post_init__(self):
        checked = {}
        if isinstance(self.min_mean, str):
            check_choice(self.min_mean, "min_mean", ("auto",))
        else:
            checked["min_mean"] = check_float(self.min_mean, "min_mean", allow_minimum=True)
        if isinstance(self.n_types, str):
            check_choice(self.n_types, "n_types", ("auto",))
        else:
            checked["n_types"] = check_int(self.n_types, "n_types", minimum=2)
        check_choice(self.method, "method", METHODS)
        check_choice(self.k_rule, "k_rule", K_RULES)
        check_choice(self.null, "null", NULLS)
        check_choice(self.component_scale, "component_scale", COMPONENT_SCALES)
        if isinstance(self.n_restarts, str):
            check_choice(self.n_restarts, "n_restarts", ("auto",))
        else:
            checked["n_restarts"] = check_int(self.n_restarts, "n_restarts", minimum=0)
        for name, low in (("top_genes", 3), ("n_permutations", 1), ("n_markers", 1)):
            checked[name] = check_int(getattr(self, name), name, minimum=low)
        pvalue = checked["pvalue"] = check_float(self.pvalue, "pvalue", maximum=1.0,
                                                 allow_maximum=True)
        n_permutations = checked["n_permutations"]
        if self.null == "permutation" and 1.0 / (n_permutations + 1.0) >= pvalue:
            need = int(np.ceil(1.0 / pvalue))
            fixes = [Fix("n_permutations", need)]
            larger = next((p for p in (*_LARGER_PVALUES, 1.0) if p > 1.0 / (n_permutations + 1)))
            fixes.append(Fix("pvalue", larger))
            raise InputProblem(
                f"with {n_permutations} permutations the smallest possible p-value is "
                f"1/{n_permutations + 1} = {1 / (n_permutations + 1):.3g}, not below the "
                f"threshold {pvalue}: no gene could pass; use {{0}} (or more) or {{1}}", *fixes
            )
        checked["spearman_threshold"] = check_float(
            self.spearman_threshold, "spearman_threshold", minimum=-1.0, allow_minimum=True,
            maximum=1.0)
        checked["variance_threshold"] = check_float(self.variance_threshold, "variance_threshold",
                                                    maximum=1.0)
        checked["hinge_weight"] = check_float(self.hinge_weight, "hinge_weight")
        check_choice(self.scale, "scale", LINSEED_SCALES)
        check_choice(self.duplicates, "duplicates", DUPLICATES)
        check_choice(self.missing, "missing", MISSING)
        check_choice(self.weighting, "weighting", WEIGHTINGS)
        for name in ("transpose", "case_insensitive", "strip_version"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
            checked[name] = bool(getattr(self, name))
        if self.progress is not None:
            if not isinstance(self.progress, (bool, np.bool_)):
                raise TypeError(f"progress must be True, False or None, got {self.progress!r}")
            checked["progress"] = bool(self.progress)
        if isinstance(self.seed, (int, np.integer)) and not isinstance(self.seed, bool):
            checked["seed"] = check_int(self.seed, "seed", minimum=0)
        if self.marker_genes and not isinstance(self.marker_genes, dict):
            raise TypeError("marker_genes must be a dict {cell type name: list of genes}")
        checked["block_memory_mb"] = check_float(self.block_memory_mb, "block_memory_mb")
        checked["n_jobs"] = resolve_n_jobs(self.n_jobs)
        for name, value in checked.items():
            object.__setattr__(self, name, value)


# ---------------------------------------------------------------- preparation

#: Smallest mean count of a gene analysed in count data (``min_mean="auto"``): the
#: ``min.count`` of edgeR's ``filterByExpr``. Below it Poisson noise (coefficient of
#: variation ``1/sqrt(mean)`` > 0.3) swamps the mixing signal, and the many sparse genes
#: of RNA-seq data form chance edges with the markers of minority cell types.
MIN_MEAN_COUNT = 10.0


def _prepare(bulk, top_genes, scale, genes, layer, min_mean="auto", *, transpose=False,
             n_types="auto", duplicates="raise", missing="raise", case_insensitive=False,
             strip_version=False):
    """Read, check the shape, then clean (count what was dropped) and keep the top genes.

    The orientation, the number of samples and ``n_types`` are checked on the
    table as read, before anything else is computed; the table is then read
    as :func:`fastdeconv.deconvolve` reads its bulk
    (:func:`fastdeconv.inputs.read_expression`: scale, NaN, negative values,
    duplicated gene names).  All-zero genes are dropped.  Returns the clean
    table (genes x samples, linear), its values, the positions of the analysed
    genes and the counts of dropped genes.
    """
    from fastdeconv.inputs import as_expression_frame, is_anndata, read_expression

    if transpose and (is_anndata(bulk) or str(bulk).lower().endswith(".h5ad")):
        raise ValueError("bulk: transpose applies to tables and arrays; AnnData is always "
                         "samples x genes")
    orient = "columns_by_genes" if transpose else "genes_by_columns"
    df = as_expression_frame(bulk, name="bulk", genes=genes, layer=layer, orient=orient)
    n, m = df.shape
    if n < m:
        if transpose:
            raise ValueError(
                f"bulk, transposed as asked, has {n} genes (rows) and {m} samples (columns): "
                "LinSeed needs many more genes than samples, so the table was genes x samples "
                "already; do not transpose it"
            )
        raise InputProblem(
            f"bulk has {n} rows and {m} columns: fewer genes than samples, so the table looks "
            "transposed (samples as rows, genes as columns; LinSeed needs many genes and few "
            "samples); pass {0} to read it as samples x genes, or transpose the table",
            Fix("transpose"),
        )
    if m < 3:
        raise ValueError(
            f"bulk has {m} sample(s); LinSeed needs at least 3 samples (and more "
            "samples than components) to find a simplex"
        )
    _check_samples(m, "bulk")
    if not isinstance(n_types, str) and n_types >= m:
        raise InputProblem(
            f"{n_types} components need more samples than components, but bulk has {m} "
            "samples; use {0} or fewer, or {1}", Fix("n_types", m - 1), Fix("n_types", "auto")
        )
    n_missing = 0
    if missing == "drop":
        n_missing = int(np.isnan(df.to_numpy(dtype=np.float64)).any(axis=1).sum())
    df = read_expression(df, name="bulk", scale=scale, duplicates=duplicates, missing=missing,
                         case_insensitive=case_insensitive, strip_version=strip_version)
    values = df.to_numpy(dtype=np.float64)
    nonzero = values.any(axis=1)
    if not nonzero.all():
        values = values[nonzero]
        df = pd.DataFrame(values, index=df.index[nonzero], columns=df.columns)
    if df.shape[0] == 0:
        raise ValueError("bulk has no gene with a non-zero value")
    dropped = {"missing": n_missing, "all_zero": int((~nonzero).sum())}
    if isinstance(min_mean, str):  # "auto": filter count data only
        min_mean = MIN_MEAN_COUNT if np.array_equal(values, np.round(values)) else 0.0
    low = values.mean(axis=1) < min_mean
    dropped["low_mean"] = int(low.sum())
    if low.all():
        raise InputProblem(
            f"no gene has a mean of at least {min_mean:g}; lower the threshold ({{0}} keeps "
            "every gene)", Fix("min_mean", 0)
        )
    if low.any():
        df, values = df.loc[~low], values[~low]
    mean_log = np.log2(1.0 + values).mean(axis=1)
    order = np.argsort(-mean_log, kind="stable")[: min(top_genes, len(values))]
    order.sort()
    dropped["below_top"] = int(len(values) - len(order))
    return df, values, order, dropped


def _marker_names(genes, options):
    """A marker list's gene names normalised as the bulk's (case, Ensembl versions)."""
    genes = [str(g) for g in genes]
    if not (options.case_insensitive or options.strip_version) or not genes:
        return genes
    from fastdeconv.inputs import harmonize_genes

    frame = pd.DataFrame({"x": np.zeros(len(genes))}, index=genes)
    return list(harmonize_genes(frame, name="marker_genes", duplicates="sum",
                                case_insensitive=options.case_insensitive,
                                strip_version=options.strip_version).index)


def _unmatched_markers(name, genes, clean_index, n_analysed, options):
    """The error for a marker list none of whose genes is analysed, with its remedies."""
    fixes = []
    if any(g in clean_index for g in genes):  # present, but not among the top genes
        fixes.append(Fix("top_genes", len(clean_index)))
    elif not options.case_insensitive and clean_index.str.upper().isin(
            [g.upper() for g in genes]).any():
        fixes.append(Fix("case_insensitive"))
    advice = f"; use {_one_of(fixes)}" if fixes else ""
    return InputProblem(
        f"none of the {len(genes)} marker genes given for {literal(repr(name))} (e.g. "
        f"{literal(genes[:3])}) is among the {n_analysed} analysed genes; check the gene "
        f"names{advice}", *fixes
    )


def _name_components(k, Wn, top_index, marker_genes, clean_index=None, options=None):
    """Default names component_1..K, or matched to a user's marker lists.

    ``clean_index`` (the genes left by the filters) and ``options`` let the
    markers be normalised as the bulk's genes and the error name its remedies.
    """
    names = [f"component_{j + 1}" for j in range(k)]
    if not marker_genes:
        return names
    from scipy.optimize import linear_sum_assignment

    if options is None:
        options = LinseedOptions()
    share = Wn / np.maximum(Wn.sum(axis=1, keepdims=True), 1e-300)
    position = pd.Index(top_index)
    types = list(marker_genes)
    score = np.zeros((k, len(types)))
    for t, name in enumerate(types):
        given = _marker_names(marker_genes[name], options)
        genes = [g for g in given if g in position]
        if not genes:
            clean = pd.Index(top_index if clean_index is None else clean_index)
            raise _unmatched_markers(name, given, clean, len(position), options)
        score[:, t] = share[position.get_indexer(genes)].mean(axis=0)
    rows, cols = linear_sum_assignment(-score)
    for r, c in zip(rows, cols):
        names[r] = str(types[c])
    if len(set(names)) < k:
        raise ValueError(f"component names are not unique after matching markers: {names}")
    return names


def linseed(
    bulk,
    n_types="auto",
    *,
    method="simplex",
    k_rule="spectrum",
    null="saddlepoint",
    component_scale="totals",
    top_genes=10000,
    min_mean="auto",
    n_permutations=100,
    pvalue=0.01,
    seed=0,
    spearman_threshold=0.0,
    variance_threshold=0.99,
    hinge_weight=1000.0,
    n_restarts="auto",
    weighting="variance",
    n_markers=100,
    marker_genes=None,
    scale="auto",
    transpose=False,
    duplicates="raise",
    missing="raise",
    case_insensitive=False,
    strip_version=False,
    genes=None,
    layer=None,
    block_memory_mb=64,
    n_jobs=None,
    progress=None,
):
    """Reference-free deconvolution by mutual linearity of marker genes (LinSeed).

    Parameters
    ----------
    bulk : DataFrame, ndarray, AnnData or path
        Bulk expression, genes x samples on a **linear** scale (an AnnData
        object is samples x genes); anything
        :func:`fastdeconv.inputs.as_expression_frame` accepts.  It is read as
        :func:`fastdeconv.deconvolve` reads its bulk
        (:func:`fastdeconv.inputs.read_expression`): NaN or infinite values,
        negative values and duplicated gene names are refused with a message
        naming them.  A table with fewer genes (rows) than samples (columns)
        is refused before any work as transposed (see ``transpose``).
    n_types : int or "auto", default "auto"
        Number of components ``k``, at least 2 and fewer than the samples;
        ``"auto"`` applies the rule ``k_rule`` to the significant genes.
    method : {"simplex", "dualsimplex", "nmf", "ica", "anchors"}, default "simplex"
        How the components are found from the significant genes (see
        :doc:`/linseed` for each method's model and the comparison on data):

        - ``"simplex"``: LinSeed's corners, a successive-projection start
          refined to the minimum-volume simplex enclosing the row-normalised
          genes (hinge-penalised, ``hinge_weight``);
        - ``"dualsimplex"``: the genes Sinkhorn-scaled (rows and columns,
          :func:`sinkhorn_scale`) and the corners found in the dual simplex
          formulation of DualSimplex: the genes inside the gene simplex and
          the samples inside the sample simplex (non-negative proportions);
        - ``"nmf"``: non-negative matrix factorisation of the significant
          genes by HALS polished by the library's exact NNLS, started from the
          simplex corners (:func:`fastdeconv.factorization.nmf`);
        - ``"ica"``: scikit-learn's FastICA, the sources oriented, rectified
          and refitted by NNLS (:func:`fastdeconv.factorization.ica`; needs
          ``pip install fastdeconv[ica]``);
        - ``"anchors"``: the separable (topic-model) factorisation of
          CellDistinguisher: anchor genes by successive projection, every gene
          an exact convex combination of them
          (:func:`fastdeconv.factorization.anchors`).

        Every method then shares the proportions step (``component_scale``,
        ``weighting``), the signature, the markers and the diagnostics.
    k_rule : {"spectrum", "mdl", "bcv"}, default "spectrum"
        The rule for ``n_types="auto"`` (:mod:`fastdeconv.n_types`): the
        singular-value spectrum with the noise-subspace guard
        (:func:`estimate_k`), the minimum description length of debCAM, or
        bi-cross-validated (held-out) reconstruction.
    null : {"saddlepoint", "permutation"}, default "saddlepoint"
        The null of the significance test, both LinSeed's edge re-assignment
        (a gene's summed edge weight against that of as many edges drawn at
        random from all edges): ``"saddlepoint"`` computes its tail from the
        histogram of all edge weights (no Monte Carlo error: the same genes
        for every seed); ``"permutation"`` samples it ``n_permutations`` times,
        as the R package does.
    component_scale : {"totals", "sum_to_one"}, default "totals"
        The model for each component's scale, which the corners leave free:
        ``"totals"`` fits the pure profiles (NNLS of every gene on the corners)
        with equal total expression, as after library-size normalisation, and
        each sample by simplex-constrained (weighted) least squares;
        ``"sum_to_one"`` takes the scales that make the proportions of every
        sample sum to 1 best (NNLS of a vector of ones on the corners); it fits
        no genes, so ``weighting`` does not apply to it.
    top_genes : int, default 10000
        Analyse the most expressed genes (by mean ``log2(1 + x)``).
    min_mean : "auto" or float, default "auto"
        Drop genes whose mean across samples is below this before choosing the
        top genes. ``"auto"``: 10 for count data (every value an integer; the
        ``min.count`` of edgeR's ``filterByExpr``), no filter otherwise
        (microarray intensities, TPM). Sparse low-count genes are Poisson noise
        and form chance linear edges with the markers of minority cell types;
        on RNA-seq pseudo-bulk they made the unfiltered defaults fail.
    n_permutations : int, default 100
        Permutations of the linearity null with ``null="permutation"``; the
        smallest p-value is then ``1 / (n_permutations + 1)``.
    pvalue : float, default 0.01
        Keep genes whose p-value is below this.
    seed : int, default 0
        Seed of the random parts (the permutations with ``null="permutation"``,
        the restarts' jitter); the result is deterministic for a given seed
        (and independent of ``n_jobs``), and with the defaults the same for
        every seed to 0.01 wherever the restarts find one optimum (see
        ``info["stability"]``).
    spearman_threshold : float, default 0.0
        A gene pair is an edge when its linearity R^2 is positive and its
        Spearman correlation exceeds this.
    variance_threshold : float, default 0.99
        Explained-variance threshold of the automatic ``k``.
    hinge_weight : float, default 1000.0
        Weight of the squared hinge on genes outside the simplex in the corner
        refinement; large values give the minimum-volume enclosing simplex,
        small ones let outlying genes stay outside.
    n_restarts : int or "auto", default "auto"
        Seeded random restarts of the corner refinement, or of NMF (besides
        the first start).  ``"auto"``: rounds of 4 until the best objective
        has been reached by two starts (or 40 restarts).  The share of starts
        whose proportions agree with the best's to 0.01 is reported as
        ``info["stability"]``.
    weighting : {"variance", "none"}, default "variance"
        How the genes are weighted in the fit of the proportions:
        ``"variance"`` estimates the power ``b`` of the genes' residual
        variance against their mean expression (``var ~ mean**b``; about 1
        for counts, 2 for multiplicative noise) and refits by weighted least
        squares with weights ``mean**-b``; ``"none"`` is the unweighted fit.
    n_markers : int, default 100
        Marker genes reported per component.
    marker_genes : dict, optional
        ``{cell type: genes}``: name the components after the cell types whose
        markers they carry most (one-to-one matching); default names are
        ``component_1..K``.
    scale : {"auto", "linear", "log2", "log2p1", "log1p"}, default "auto"
        ``"auto"`` refuses data that look log-transformed; ``"linear"`` asserts
        the data are linear; ``"log2"``, ``"log2p1"`` and ``"log1p"`` un-log
        them first (``2**x``, ``2**x - 1``, ``exp(x) - 1``; see
        :func:`fastdeconv.inputs.unlog`), as :func:`fastdeconv.deconvolve` does.
    transpose : bool, default False
        ``bulk`` is samples x genes (a DataFrame, array or table file; AnnData
        is always samples x genes): read it transposed.
    duplicates : {"raise", "sum"}, default "raise"
        Duplicated gene names: refuse them, or add their rows up.
    missing : {"raise", "drop"}, default "raise"
        Genes with missing (NaN) values: refuse them, naming them, or leave
        them out (counted in :attr:`LinseedResult.dropped`).
    case_insensitive : bool, default False
        Upper-case the gene names (of ``bulk`` and ``marker_genes``), so that
        ``Cd4`` and ``CD4`` are one gene.
    strip_version : bool, default False
        Drop Ensembl version suffixes (``ENSG00000010610.12`` ->
        ``ENSG00000010610``) from the gene names of ``bulk`` and ``marker_genes``.
    genes : sequence of str, optional
        Gene names for array input.
    layer : str, optional
        AnnData layer to read.
    block_memory_mb : float, default 64
        Memory per worker thread for the blocked pairwise step: each worker
        computes one block of gene pairs at a time, two products of at most
        this size, so the step needs about ``n_jobs * block_memory_mb`` (plus
        a few vectors of the genes per worker) whatever the number of genes.
        No step forms a genes x genes matrix; the largest others are genes x
        samples and samples x samples (at most :data:`MAX_SAMPLES` samples).
    n_jobs : int, optional
        Threads for the pairwise step and the solvers (default: all cores).
    progress : bool, optional
        Progress bars on stderr (the pairwise step, the permutations, the
        corner restarts); default: shown when stderr is a terminal and the
        analysed genes' pairs times the samples exceed 2e9 (10,000 genes x
        40 samples).

    Returns
    -------
    LinseedResult

    Raises
    ------
    ValueError
        For invalid options, a transposed table, too few samples or genes,
        more than :data:`MAX_SAMPLES` samples, ``n_types`` not below the number
        of samples, NaN, negative or duplicated genes, log-scale input, or when
        too few genes are significant to span ``k`` corners.  Problems that an
        option fixes are :class:`fastdeconv.errors.InputProblem` naming it.

    Notes
    -----
    Corners are estimated in the space of row-normalised genes; each is the
    row-normalised proportion profile of one component.  The pure profiles
    ``W0`` follow by NNLS of every analysed gene on the corners; with their
    columns normalised to sum 1 (pure profiles with equal total expression, as
    after library-size normalisation), each sample's proportions are the
    simplex-constrained least-squares fit of the sample (normalised to sum 1)
    by those profiles on the significant genes, so they sum to exactly 1.  By
    default (``weighting="variance"``) that fit is weighted: the genes'
    residual variance is modelled as ``mean**b`` (the power ``b`` estimated by
    regressing the log residual variance of a first, unweighted fit on the
    log mean; reported as ``info["variance_power"]``) and the fit repeated
    with weights ``mean**-b``, so that the few most expressed genes, whose
    absolute errors are largest, do not dominate it.  The
    proportions are therefore fractions of expression (RNA), like those of
    :func:`fastdeconv.deconvolve` with a normalised signature.  The signature
    is then NNLS of every gene on the proportions, in the units of ``bulk``.

    The permutation null of a gene's summed edge weight keeps its number of
    edges and re-draws their weights with replacement from all edges, the
    null of the LinSeed package; it is computed from prefix sums of one pool
    of drawn weights per permutation, which gives every gene exactly that null
    distribution at a fraction of the cost (the statistics of different genes
    within one permutation are correlated differently from the package's,
    which does not change any gene's p-value distribution).

    References
    ----------
    Zaitsev, K., Bambouskova, M., Swain, A., Artyomov, M. N. (2019). Complete
    deconvolution of cellular mixtures based on linearity of transcriptional
    signatures. Nature Communications 10, 2209. doi:10.1038/s41467-019-09990-5

    Examples
    --------
    >>> from fastdeconv.reference_free import linseed
    >>> from fastdeconv.simulate import synthetic
    >>> data = synthetic(n_genes=400, n_types=3, n_samples=12, seed=1)
    >>> res = linseed(data.bulk, 3, n_permutations=20, pvalue=0.05)
    >>> res.proportions.shape
    (12, 3)
    >>> bool(abs(res.proportions.sum(axis=1) - 1).max() < 1e-12)
    True
    """
    from fastdeconv._parallel import single_threaded_blas

    options = LinseedOptions(
        n_types=n_types, method=method, k_rule=k_rule, null=null,
        component_scale=component_scale, top_genes=top_genes, min_mean=min_mean,
        n_permutations=n_permutations,
        pvalue=pvalue, seed=seed, spearman_threshold=spearman_threshold,
        variance_threshold=variance_threshold, hinge_weight=hinge_weight, n_restarts=n_restarts,
        weighting=weighting, n_markers=n_markers, marker_genes=marker_genes, scale=scale,
        transpose=transpose, duplicates=duplicates, missing=missing,
        case_insensitive=case_insensitive, strip_version=strip_version,
        block_memory_mb=block_memory_mb, n_jobs=n_jobs, progress=progress,
    )
    # our threads are the parallelism; multi-threaded BLAS on the many small
    # products below only adds contention (and would change the rounding)
    with single_threaded_blas():
        return _pipeline(bulk, genes, layer, options)


# -------------------------------------------------------------------- stages


class _Stopwatch:
    """Seconds per stage, in the order the stages ran, and the total."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.timings = {}

    def lap(self, name):
        now = time.perf_counter()
        self.timings[name] = now - self.last
        self.last = now

    def stop(self):
        self.timings["total"] = self.last - self.start
        return self.timings


@dataclass
class _Data:
    """Stage 1: the clean data and the analysed (top) genes, row-normalised."""

    frame: pd.DataFrame  # clean genes x samples, linear scale
    values: np.ndarray  # its values
    top: np.ndarray  # positions of the analysed genes
    dropped: dict
    G: np.ndarray  # analysed genes x samples, C-contiguous
    X: np.ndarray  # their rows normalised to sum 1
    sq: np.ndarray
    tss: np.ndarray
    R: np.ndarray  # their scaled ranks

    @property
    def top_index(self):
        return self.frame.index[self.top]


@dataclass
class _Significance:
    """Stage 2: mutual linearity and the permutation p-values."""

    power: np.ndarray
    degree: np.ndarray
    n_edges: int
    pvalues: np.ndarray
    significant: np.ndarray
    keep: np.ndarray  # positions (among the analysed genes) of the significant ones
    block_rows: int


@dataclass
class _Simplex:
    """Stage 4: the projection of the significant genes and the corners."""

    mu: np.ndarray
    V: np.ndarray
    Y: np.ndarray  # significant genes in the (k-1)-dimensional subspace
    corners_y: np.ndarray  # (k-1) x k
    corners: np.ndarray  # k x samples, rows summing to 1
    spa: np.ndarray
    info: dict
    distance: np.ndarray  # genes x k, to every corner
    barycentric: np.ndarray  # genes x k


@dataclass
class _Fit:
    """Stage 5: proportions, their fit, the component names and the signature."""

    P: np.ndarray  # k x samples
    info: object  # the solver core's info of the final fit
    variance_power: float
    names: list
    signature: np.ndarray  # clean genes x k


def _stage_prepare(bulk, genes, layer, options):
    """Read and clean the bulk, keep the top genes and normalise them."""
    o = options
    df, values, top, dropped = _prepare(
        bulk, o.top_genes, o.scale, genes, layer, o.min_mean, transpose=o.transpose,
        n_types=o.n_types, duplicates=o.duplicates, missing=o.missing,
        case_insensitive=o.case_insensitive, strip_version=o.strip_version)
    G = np.ascontiguousarray(values[top])
    X, sq, tss, R = _normalise(G)
    return _Data(df, values, top, dropped, G, X, sq, tss, R)


def _stage_significance(data, options, rng, clock, progress=False):
    """All-pairs mutual linearity, then the permutation p-values; keep the significant genes."""
    d = data
    block = _block_rows(len(d.G), options.block_memory_mb)
    power, degree, n_edges, weights = _linearity(d.X, d.R, d.sq, d.tss,
                                                 options.spearman_threshold, block,
                                                 options.n_jobs, progress)
    clock.lap("linearity")
    if options.null == "saddlepoint":
        pvalues = _saddlepoint_pvalues(power, degree, weights)
    else:
        pvalues = _permutation_pvalues(d.X, d.R, d.sq, d.tss, power, degree, n_edges,
                                       options.spearman_threshold, options.n_permutations, rng,
                                       progress)
    significant = pvalues < options.pvalue
    keep = np.flatnonzero(significant)
    n = len(d.G)
    d.dropped["not_significant"] = int(n - keep.size)
    clock.lap("significance")
    if keep.size < 3:
        fixes = _more_genes(options, len(d.values))
        if options.null == "permutation" and options.n_permutations < 1000:  # finer p-values
            fixes.append(Fix("n_permutations", 1000))
        advice = f"use {_one_of(fixes)}, or " if fixes else ""
        raise InputProblem(
            f"only {keep.size} of {n} genes are significantly linear at p < {options.pvalue}; "
            f"{advice}check that the samples are mixtures of a few cell types", *fixes
        )
    return _Significance(power, degree, n_edges, pvalues, significant, keep, block)


def _mdl_fits(data, significance, Xf, ks, options, rng):
    """The pipeline's own fit ``(W, H)`` of the significant genes for every ``k`` (for MDL).

    The corners by LinSeed's simplex (the fastest method) from its deterministic
    successive-projection start alone (no restarts: the rule scores up to nine
    fits), the proportions by the proportions step, and ``W`` by NNLS of the
    genes on them; a ``k`` the data do not support (degenerate corners, an
    empty component) is left out.
    """
    keep = significance.keep
    G = np.ascontiguousarray(data.G[keep])
    fits = {}
    for k in ks:
        try:
            mu, V, Y = _project(Xf, k)
            corners_y = _find_corners(Y, k, options.hinge_weight, 0, rng)[0]
            corners = mu + corners_y.T @ V.T
            P = _proportions(corners, data.G, keep, options.n_jobs, options.weighting,
                             options.component_scale)[0]
        except (InputProblem, ValueError):
            continue
        W = _solve(P.T, G.T, "nnls", options.n_jobs)[0].T
        fits[k] = (W, P)
    return fits


def _stage_k(data, significance, options, rng):
    """The number of components: fixed, or by ``options.k_rule``.

    The spectrum rule's diagnostics are always computed (they are plotted);
    with ``k_rule="mdl"`` or ``"bcv"`` and an automatic ``k`` the rule of
    :mod:`fastdeconv.n_types` picks ``k`` among 2 .. min(samples - 1, 10).
    """
    from fastdeconv.n_types import DEFAULT_MAX_K, choose_k

    keep = significance.keep
    Xf = np.ascontiguousarray(data.X[keep])
    kd = _choose_k(Xf, options.variance_threshold, None, options.n_types)
    if kd.automatic and options.k_rule != "spectrum":
        upper = min(Xf.shape[1] - 1, DEFAULT_MAX_K, keep.size - 1)
        ks = list(range(2, max(upper, 2) + 1))
        if options.k_rule == "bcv":
            # the retained blocks of a 2 x 2 split hold m - ceil(m / 2) samples
            m = Xf.shape[1]
            fitting = [k for k in ks if k <= m - (m + 1) // 2]
            if not fitting:
                raise InputProblem(
                    f"bi-cross-validation holds out half of the {m} samples, which leaves too "
                    "few to fit 2 components; use {0} or {1}", Fix("k_rule", "spectrum"),
                    Fix("k_rule", "mdl"))
            choice = choose_k("bcv", Xf, fitting)
        else:
            fits = _mdl_fits(data, significance, Xf, ks, options, rng)
            if not fits:
                raise InputProblem(
                    f"no number of components from 2 to {upper} gives a fit to score by MDL; "
                    "use {0}", Fix("k_rule", "spectrum"))
            choice = choose_k("mdl", np.ascontiguousarray(data.G[keep]), sorted(fits),
                              fits=fits, n_jobs=options.n_jobs)
        kd = replace(kd, k=int(choice.k), rule=options.k_rule, rule_choice=choice)
    if keep.size <= kd.k:
        fixes = _more_genes(options, len(data.values))
        if kd.k > 2:
            fixes.insert(0, Fix("n_types", min(kd.k - 1, max(2, keep.size - 1))))
        advice = f"; use {_one_of(fixes)}" if fixes else ""
        raise InputProblem(
            f"only {keep.size} significant genes for {kd.k} components{advice}", *fixes
        )
    return Xf, kd


def _int_seed(options):
    """The seed as the integer the factorisations take (a Generator seed draws one)."""
    seed = options.seed
    if isinstance(seed, (int, np.integer)):
        return int(seed)
    return int(np.random.default_rng(seed).integers(2**31))


def _factor_corners(method, G, k, options, init):
    """Corners (k x samples, rows summing to 1) from a factorisation ``G ~ W H``: H's rows."""
    from fastdeconv import factorization

    if method == "nmf":
        # n_restarts counts the starts besides the first, as for the corners; nmf counts runs
        restarts = options.n_restarts
        fact = factorization.nmf(G, k, init=init, n_jobs=options.n_jobs, seed=_int_seed(options),
                                 n_restarts=restarts if isinstance(restarts, str) else restarts + 1)
    elif method == "ica":
        try:
            fact = factorization.ica(G, k, seed=_int_seed(options))
        except ImportError:
            raise InputProblem(
                "method 'ica' needs scikit-learn: pip install fastdeconv[ica] (or pip install "
                "scikit-learn), or use {0}", Fix("method", "simplex")) from None
    else:
        fact = factorization.anchors(G, k)
    H = np.clip(fact.H, 0.0, None)
    total = H.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        empty = [j + 1 for j in np.flatnonzero(total[:, 0] <= 0)]
        raise InputProblem(
            f"the {method} factorisation left component(s) {empty} empty; the data do not "
            f"support {k} components: use fewer ({{0}})", Fix("n_types", max(2, k - 1))
        )
    info = {"objective": float(fact.objective), "n_iter": int(fact.n_iter),
            "converged": bool(fact.converged), "n_starts": len(fact.restarts),
            "start_objectives": np.asarray(fact.restarts), "stability": float(fact.stability)}
    if fact.anchors is not None:
        info["anchors"] = np.asarray(fact.anchors)
    return H / total, info


def _stage_corners(data, significance, Xf, k, options, rng, n_clean, progress=False):
    """Project the significant genes and find the corners by ``options.method``.

    Every method gives the corners in sample space (k x samples, rows summing
    to 1: the row-normalised proportion profiles); they are then placed in the
    (k-1)-dimensional subspace of the significant genes, where the genes'
    barycentric coordinates name the markers.
    """
    mu, V, Y = _project(Xf, k)
    more = _more_genes(options, n_clean)
    method = options.method
    G = np.ascontiguousarray(data.G[significance.keep])
    starts = None  # every start's corners, where the method restarts
    if method == "dualsimplex":
        corners, spa, info, starts = _dual_corners(G, k, options.hinge_weight,
                                                   options.n_restarts, rng, more, progress)
    elif method in ("simplex", "nmf"):
        corners_y, spa, info, starts = _find_corners(Y, k, options.hinge_weight,
                                                     options.n_restarts, rng, more, progress)
        corners = mu + corners_y.T @ V.T  # k x m, rows sum to 1
        starts = [mu + c.T @ V.T for c in starts]
        if method == "nmf":  # started from the simplex corners; its own restarts and stability
            simplex_objective = info["objective"]
            corners, info = _factor_corners("nmf", G, k, options, np.clip(corners, 0.0, None))
            info["simplex_objective"] = simplex_objective
            starts = None
    else:
        corners, info = _factor_corners(method, G, k, options, None)
        spa = info.pop("anchors", np.zeros(0, dtype=np.int64))
    if starts is not None:
        best = _sum_to_one(corners)
        info["stability"] = agreement(best, [_sum_to_one(c) for c in starts])
    corners_y = ((corners - mu) @ V).T  # (k-1) x k
    distance = np.sqrt(((Y[:, :, None] - corners_y[None, :, :]) ** 2).sum(axis=1))  # genes x k
    # barycentric coordinates of the significant genes: each gene belongs to the
    # corner with the largest one (the nearest corner can be another one when the
    # simplex is elongated)
    E = np.vstack([corners_y, np.ones(k)])
    barycentric = np.column_stack([Y, np.ones(len(Y))]) @ np.linalg.pinv(E).T
    # the corner searches count the genes outside by their own objective; the factorisations here
    info.setdefault("n_outside", int(np.sum((barycentric < -1e-9).any(axis=1))))
    info["method"] = method
    return _Simplex(mu, V, Y, corners_y, corners, spa, info, distance, barycentric)


def _stage_proportions(data, significance, simplex, options):
    """Proportions from the corners, the component names and the signature."""
    P, info, Wn, variance_power = _proportions(simplex.corners, data.G, significance.keep,
                                               options.n_jobs, options.weighting,
                                               options.component_scale)
    names = _name_components(len(P), Wn, data.top_index, options.marker_genes,
                             data.frame.index, options)
    signature = _solve(P.T, data.values.T, "nnls", options.n_jobs)[0].T
    return _Fit(P, info, variance_power, names, signature)


def _stage_result(data, significance, kd, simplex, fit, options, timings):
    """Name everything and assemble the :class:`LinseedResult`."""
    names, k = fit.names, kd.k
    samples = data.frame.columns
    top_index = data.top_index
    keep = significance.keep
    nearest = simplex.barycentric.argmax(axis=1)
    sig_index = top_index[keep]
    markers = {}
    for j, name in enumerate(names):
        members = np.flatnonzero(nearest == j)
        members = members[np.argsort(simplex.distance[members, j], kind="stable")]
        markers[name] = [sig_index[i] for i in members[: options.n_markers]]
    dims = [f"dim_{d + 1}" for d in range(k - 1)]
    rows = np.arange(len(keep))
    projection = pd.DataFrame(simplex.Y, index=sig_index, columns=dims)
    projection["component"] = [names[j] for j in nearest]
    projection["coordinate"] = simplex.barycentric[rows, nearest]
    projection["distance"] = simplex.distance[rows, nearest]
    info = dict(simplex.info)
    info.update({"variance_power": fit.variance_power, "n_edges": significance.n_edges,
                 "spa_genes": [sig_index[i] for i in simplex.spa], "seed": options.seed,
                 "null": options.null, "k_rule": options.k_rule if kd.automatic else None,
                 "component_scale": options.component_scale,
                 "block_rows": significance.block_rows, "timings": timings})
    return LinseedResult(
        proportions=pd.DataFrame(fit.P.T, index=samples, columns=names),
        signature=pd.DataFrame(fit.signature, index=data.frame.index, columns=names),
        markers=markers,
        corners=pd.DataFrame(simplex.corners, index=names, columns=samples),
        k_diagnostics=kd,
        genes=pd.DataFrame({"power": significance.power, "degree": significance.degree,
                            "pvalue": significance.pvalues,
                            "significant": significance.significant}, index=top_index),
        projection=projection,
        corner_coordinates=pd.DataFrame(simplex.corners_y.T, index=names, columns=dims),
        fit=pd.DataFrame({"residual_norm": fit.info.residual_norm,
                          "converged": fit.info.converged}, index=samples),
        dropped=data.dropped,
        info=info,
    )


def _pipeline(bulk, genes, layer, options):
    """The body of :func:`linseed`: the stages in order, each timed."""
    rng = np.random.default_rng(options.seed)
    clock = _Stopwatch()
    data = _stage_prepare(bulk, genes, layer, options)
    clock.lap("preprocess")
    n, m = data.G.shape
    show = show_progress(options.progress, n * (n + 1) / 2 * m > PROGRESS_WORK)
    with compile_notice(show):
        significance = _stage_significance(data, options, rng, clock, show)
        Xf, kd = _stage_k(data, significance, options, rng)
        clock.lap("choose_k")
        simplex = _stage_corners(data, significance, Xf, kd.k, options, rng, len(data.values),
                                 show)
        clock.lap("corners")
        fit = _stage_proportions(data, significance, simplex, options)
    clock.lap("proportions")
    return _stage_result(data, significance, kd, simplex, fit, options, clock.stop())
