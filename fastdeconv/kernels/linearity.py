"""Mutual-linearity kernels for LinSeed: pairwise scores in blocks, and the null.

The null of a gene's summed edge weight is sampled (the permutation null:
:func:`pair_weights`, :func:`window_sums`) or computed from the histogram of all
edge weights that :func:`accumulate_block` keeps (:func:`saddlepoint_pvalues`).

All functions take float64 arrays prepared by :mod:`fastdeconv.reference_free`:

* ``X`` (n, m): the genes' rows normalised to sum 1 (a gene's profile over samples);
* ``sq`` (n,): ``sum(X**2, axis=1)``; ``tss`` (n,): the total sum of squares of each
  row about its mean (0 for a constant gene);
* ``R`` (n, m): each gene's ranks over the samples, centred and scaled to unit norm,
  so that ``R[i] @ R[j]`` is the Spearman correlation of genes ``i`` and ``j``
  (an all-zero row for a constant gene).

The linearity score of two genes is the R^2 of the identity fit between their
normalised profiles, symmetrised as in LinSeed: with ``rss = ||x_i - x_j||^2``,
``r2_ij = 1 - rss / 2 * (1 / tss_i + 1 / tss_j)``.  A pair is an *edge* when
``r2_ij > 0`` and ``spearman_ij > spearman_threshold``; its weight is
``r2_ij * spearman_ij``.  Genes with ``tss == 0`` (constant profiles) have no
edges, which is how the NaN that crashes the R package's permutation step is
avoided.

References
----------
Zaitsev, K., Bambouskova, M., Swain, A., Artyomov, M. N. (2019). Complete
deconvolution of cellular mixtures based on linearity of transcriptional
signatures. Nature Communications 10, 2209. doi:10.1038/s41467-019-09990-5
"""

from __future__ import annotations

import math

import numpy as np

from fastdeconv._jit import jit, jit_helper

__all__ = ["accumulate_block", "pair_weights", "window_sums", "saddlepoint_pvalues"]


@jit_helper
def _pair_weight(i, j, Zij, Sij, sq, tss, spearman_threshold):
    """Edge weight of one pair from its two dot products (0 when not an edge)."""
    if tss[i] <= 0.0 or tss[j] <= 0.0:
        return 0.0
    rss = sq[i] + sq[j] - 2.0 * Zij
    if rss < 0.0:
        rss = 0.0
    r2 = 1.0 - 0.5 * rss * (1.0 / tss[i] + 1.0 / tss[j])
    if r2 > 0.0 and Sij > spearman_threshold:
        return r2 * Sij
    return 0.0


@jit
def accumulate_block(Z, S, start, sq, tss, spearman_threshold, power, degree, hist_count,
                     hist_sum):
    """Add the edges of one block of rows to the per-gene sums (upper triangle only).

    Parameters
    ----------
    Z : ndarray, shape (b, n - start)
        ``X[start:start + b] @ X[start:].T``.
    S : ndarray, shape (b, n - start)
        ``R[start:start + b] @ R[start:].T`` (Spearman correlations).
    start : int
        Index of the block's first gene; column ``c`` of ``Z`` is gene ``start + c``.
    sq, tss : ndarray, shape (n,)
        Squared norms and total sums of squares of the normalised rows.
    spearman_threshold : float
        Minimum Spearman correlation of an edge.
    power : ndarray, shape (n,)
        Summed edge weight per gene, updated in place.
    degree : ndarray of int64, shape (n,)
        Number of edges per gene, updated in place.
    hist_count : ndarray of int64, shape (B,)
        Histogram of the edge weights (``B`` equal bins on ``[0, 1]``), updated in place.
    hist_sum : ndarray, shape (B,)
        Summed weight of the edges in each bin, updated in place (so that each
        bin's mean weight is exact: the analytic null of
        :func:`saddlepoint_pvalues` uses these).

    Returns
    -------
    n_edges : int
        Number of edges found in the block (pairs ``i < j``).
    total_weight : float
        Their summed weight.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.linearity import accumulate_block
    >>> X = np.array([[0.1, 0.2, 0.7], [0.12, 0.18, 0.7], [0.5, 0.3, 0.2]])
    >>> sq = (X ** 2).sum(1); tss = ((X - X.mean(1, keepdims=True)) ** 2).sum(1)
    >>> R = np.array([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]]) / np.sqrt(2)
    >>> power = np.zeros(3); degree = np.zeros(3, dtype=np.int64)
    >>> hc = np.zeros(8, dtype=np.int64); hs = np.zeros(8)
    >>> accumulate_block(X @ X.T, R @ R.T, 0, sq, tss, 0.0, power, degree, hc, hs)[0]
    1
    >>> degree
    array([1, 1, 0])
    """
    b, w = Z.shape
    n_bins = hist_count.shape[0]
    n_edges = 0
    total = 0.0
    for r in range(b):
        i = start + r
        for c in range(r + 1, w):
            j = start + c
            wt = _pair_weight(i, j, Z[r, c], S[r, c], sq, tss, spearman_threshold)
            if wt > 0.0:
                power[i] += wt
                power[j] += wt
                degree[i] += 1
                degree[j] += 1
                n_edges += 1
                total += wt
                h = int(wt * n_bins)
                if h >= n_bins:
                    h = n_bins - 1
                hist_count[h] += 1
                hist_sum[h] += wt
    return n_edges, total


@jit
def pair_weights(X, R, sq, tss, rows, cols, spearman_threshold):
    """Edge weights of the given gene pairs (0 for pairs that are not edges).

    Used to draw edge weights for the permutation null without storing the
    n x n weight matrix: random pairs are scored here and the non-edges
    rejected.

    Parameters
    ----------
    X, R : ndarray, shape (n, m)
        Normalised rows and scaled centred ranks.
    sq, tss : ndarray, shape (n,)
        Squared norms and total sums of squares of the rows of ``X``.
    rows, cols : ndarray of int64, shape (p,)
        The pairs (``rows[t] != cols[t]``).
    spearman_threshold : float
        Minimum Spearman correlation of an edge.

    Returns
    -------
    ndarray, shape (p,)
        The weights.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.linearity import pair_weights
    >>> X = np.array([[0.1, 0.2, 0.7], [0.12, 0.18, 0.7]])
    >>> R = np.array([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]) / np.sqrt(2)
    >>> sq = (X ** 2).sum(1); tss = ((X - X.mean(1, keepdims=True)) ** 2).sum(1)
    >>> bool(pair_weights(X, R, sq, tss, np.array([0]), np.array([1]), 0.0)[0] > 0.99)
    True
    """
    p = rows.shape[0]
    m = X.shape[1]
    out = np.zeros(p)
    for t in range(p):
        i = rows[t]
        j = cols[t]
        z = 0.0
        s = 0.0
        for c in range(m):
            z += X[i, c] * X[j, c]
            s += R[i, c] * R[j, c]
        out[t] = _pair_weight(i, j, z, s, sq, tss, spearman_threshold)
    return out


@jit
def window_sums(cumulative, starts, degree, power):
    """Null statistics from windows of prefix sums, and how often they reach ``power``.

    Row ``b`` of ``cumulative`` holds the prefix sums (leading 0) of a pool of
    edge weights drawn with replacement for permutation ``b``; gene ``i``'s
    null statistic in that permutation is the sum of ``degree[i]`` consecutive
    pool values starting at ``starts[b, i]``, i.e. the summed weight of its
    ``degree[i]`` edges after the weights are re-assigned at random.

    Parameters
    ----------
    cumulative : ndarray, shape (n_perm, L + 1)
        Prefix sums of each permutation's pool.
    starts : ndarray of int64, shape (n_perm, n)
        Window starts, ``0 <= starts[b, i] <= L - degree[i]``.
    degree : ndarray of int64, shape (n,)
        Edges per gene.
    power : ndarray, shape (n,)
        Observed summed edge weight per gene.

    Returns
    -------
    ndarray of int64, shape (n,)
        Number of permutations whose statistic is ``>= power``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.linearity import window_sums
    >>> cum = np.cumsum(np.r_[0.0, np.full(4, 0.5)])[None, :]
    >>> window_sums(cum, np.array([[0, 1]]), np.array([2, 1]), np.array([1.0, 0.6]))
    array([1, 0])
    """
    n_perm = cumulative.shape[0]
    n = degree.shape[0]
    count = np.zeros(n, dtype=np.int64)
    for b in range(n_perm):
        for i in range(n):
            s = starts[b, i]
            stat = cumulative[b, s + degree[i]] - cumulative[b, s]
            # relative slack so that a gene whose weights are all equal to the
            # pool's (a tie) counts as reached despite rounding
            if stat >= power[i] - 1e-12 * (abs(power[i]) + 1.0):
                count[i] += 1
    return count


@jit_helper
def _cgf(t, values, logp, wmax):
    """Cumulant generating function of the edge-weight distribution at ``t``, and its
    first two derivatives (the tilted mean and variance), by a stable log-sum-exp."""
    z = 0.0
    m1 = 0.0
    m2 = 0.0
    for b in range(values.shape[0]):
        e = np.exp(logp[b] + t * (values[b] - wmax))
        z += e
        m1 += e * values[b]
        m2 += e * values[b] * values[b]
    m1 /= z
    m2 /= z
    return np.log(z) + t * wmax, m1, max(m2 - m1 * m1, 0.0)


@jit
def saddlepoint_pvalues(power, degree, values, probs):
    """P-values of the genes' summed edge weights under the edge re-assignment null.

    The null of a gene with ``d`` edges is the sum of ``d`` independent draws
    from the distribution of all edge weights (``values`` with probabilities
    ``probs``): the null that the permutation test samples.  Its upper tail
    ``P(S_d >= power)`` is computed by the Lugannani-Rice saddlepoint formula
    (Daniels 1987), exact to relative ``O(1/d)`` and with no Monte Carlo error:
    the same p-values for every seed.  ``t`` solves ``K'(t) = power / d`` by
    safeguarded Newton steps on the cumulant generating function ``K``.

    Parameters
    ----------
    power : ndarray, shape (n,)
        Observed summed edge weight per gene.
    degree : ndarray of int64, shape (n,)
        Edges per gene.
    values, probs : ndarray, shape (B,)
        Support (the bins' mean weights) and probabilities of the edge-weight
        distribution (bins with no edge left out).

    Returns
    -------
    ndarray, shape (n,)
        The p-values (1 for a gene without edges).

    References
    ----------
    Lugannani, R., Rice, S. (1980). Saddle point approximation for the distribution of
    the sum of independent random variables. Advances in Applied Probability 12, 475-490.
    Daniels, H. E. (1987). Tail probability approximations. International Statistical
    Review 55, 37-48.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.linearity import saddlepoint_pvalues
    >>> values, probs = np.array([0.25, 0.75]), np.array([0.5, 0.5])
    >>> p = saddlepoint_pvalues(np.array([50.0, 80.0]), np.array([100, 100]), values, probs)
    >>> [round(float(x), 3) for x in p]   # mean 50, sd 2.5: z = 0 and z = 12
    [0.5, 0.0]
    """
    n = power.shape[0]
    B = values.shape[0]
    out = np.ones(n)
    logp = np.log(probs)
    wmax = 0.0
    wmin = np.inf
    mean = 0.0
    for b in range(B):
        wmax = max(wmax, values[b])
        wmin = min(wmin, values[b])
        mean += probs[b] * values[b]
    var = 0.0
    for b in range(B):
        var += probs[b] * (values[b] - mean) ** 2
    for g in range(n):
        d = degree[g]
        if d <= 0:
            continue
        x = power[g] / d  # the mean weight of the gene's edges
        if var <= 0.0:
            out[g] = 1.0 if x <= mean * (1.0 + 1e-12) else 0.0
            continue
        if x >= wmax:
            # only every edge at the largest weight reaches it
            out[g] = np.exp(d * logp[np.argmax(values)]) if x <= wmax * (1.0 + 1e-12) else 0.0
            continue
        if x <= wmin:
            continue
        z = (x - mean) * np.sqrt(d / var)
        if abs(z) < 1e-4:  # at the mean: the saddlepoint formula's removable singularity
            out[g] = 0.5 - 0.5 * math.erf(z / np.sqrt(2.0))
            continue
        # Newton on K'(t) = x, safeguarded by a bracket (K' is increasing)
        t = (x - mean) / var
        lo = -np.inf
        hi = np.inf
        K = 0.0
        k2 = var
        for _ in range(200):
            K, k1, k2 = _cgf(t, values, logp, wmax)
            f = k1 - x
            if f > 0.0:
                hi = min(hi, t)
            else:
                lo = max(lo, t)
            step = f / k2 if k2 > 0.0 else np.inf
            new = t - step
            if not (lo < new < hi) or not np.isfinite(new):
                if np.isfinite(lo) and np.isfinite(hi):
                    new = 0.5 * (lo + hi)
                elif np.isfinite(lo):
                    new = lo + max(1.0, abs(lo))
                else:
                    new = hi - max(1.0, abs(hi))
            if abs(new - t) <= 1e-12 * max(1.0, abs(t)):
                t = new
                break
            t = new
        K, k1, k2 = _cgf(t, values, logp, wmax)
        r2 = 2.0 * d * (t * x - K)
        r = np.sqrt(max(r2, 0.0))
        if t < 0.0:
            r = -r
        u = t * np.sqrt(d * k2)
        if abs(r) < 1e-8 or abs(u) < 1e-12:
            out[g] = 0.5 - 0.5 * math.erf(z / np.sqrt(2.0))
            continue
        tail = 0.5 * math.erfc(r / np.sqrt(2.0))
        dens = np.exp(-0.5 * r * r) / np.sqrt(2.0 * np.pi)
        p = tail + dens * (1.0 / u - 1.0 / r)
        out[g] = min(max(p, 0.0), 1.0)
    return out
