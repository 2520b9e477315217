"""Per-group sufficient statistics and marker-gene tests.

One pass over a genes x cells count matrix (dense, or the three arrays of a
CSR/CSC matrix) accumulates, for every gene and every group of cells:

* the sum and the sum of squares of the raw counts,
* the sum of the library-size-normalised values ``x * scale[c]`` (e.g. CPM),
* the sum and the sum of squares of ``log1p`` of the normalised values,
* the number of cells with a non-zero count.

Everything the marker tests need follows from these sums, so no statistic ever
loops over genes in Python.  The Numba kernels (:func:`group_sums_dense`,
:func:`group_sums_sparse`) are serial and ``nogil``; the tests
(:func:`welch_t`, :func:`poisson_lrt`, :func:`nb_lrt`) and the
Benjamini-Hochberg adjustment (:func:`bh_fdr`) are vectorised NumPy/SciPy on
the (genes x groups) sum arrays.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from fastdeconv._jit import jit

#: names of the arrays returned by the sum kernels, in order
SUM_NAMES = ("count_sum", "count_sq", "norm_sum", "log_sum", "log_sq", "nnz")


@jit
def _accumulate(acc, g, k, x, v):
    """Add one non-zero entry to the interleaved accumulator ``acc[g, k, :]``."""
    lv = math.log1p(v)
    a = acc[g, k]
    a[0] += x
    a[1] += x * x
    a[2] += v
    a[3] += lv
    a[4] += lv * lv
    a[5] += 1.0


@jit
def group_sums_dense(X, rows_are_genes, groups, n_groups, scale, row_start, row_stop):
    """Per-group sums of a dense count matrix in one pass over rows ``[row_start, row_stop)``.

    Parameters
    ----------
    X : ndarray, shape (n_rows, n_cols), C-contiguous
        Counts.  Genes x cells when ``rows_are_genes`` is true, cells x genes
        otherwise (pass ``X.T`` of an F-ordered genes x cells matrix).
    rows_are_genes : bool
        Orientation of ``X``.
    groups : ndarray of int64, shape (n_cells,)
        Group index of each cell, in ``[0, n_groups)``.
    n_groups : int
        Number of groups.
    scale : ndarray of float64, shape (n_cells,)
        Per-cell normalisation factor (``1e6 / library_size`` for CPM).
    row_start, row_stop : int
        The rows of ``X`` to visit (a chunk, so that threads can share the work).

    Returns
    -------
    acc : ndarray, shape (n_genes, n_groups, 6)
        Sums over the visited cells of each group of ``x``, ``x**2``,
        ``x*scale``, ``log1p(x*scale)``, ``log1p(x*scale)**2`` and ``x != 0``
        (in the order of :data:`SUM_NAMES`).  Interleaved so that one entry
        updates one cache line.
    n_visited : int
        Number of non-zero entries accumulated (a diagnostic).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0, 3.0], [0.0, 2.0, 2.0]])
    >>> acc, n = group_sums_dense(X, True, np.array([0, 1, 1]), 2, np.ones(3), 0, 2)
    >>> acc[:, :, 0], n
    (array([[1., 3.],
           [0., 4.]]), 4)
    """
    n_genes = X.shape[0] if rows_are_genes else X.shape[1]
    acc = np.zeros((n_genes, n_groups, 6))
    n_visited = 0
    for r in range(row_start, row_stop):
        for j in range(X.shape[1]):
            x = float(X[r, j])
            if x != 0.0:
                if rows_are_genes:
                    g, c = r, j
                else:
                    g, c = j, r
                _accumulate(acc, g, groups[c], x, x * scale[c])
                n_visited += 1
    return acc, n_visited


@jit
def group_sums_sparse(
    indptr, indices, data, n_genes, rows_are_genes, groups, n_groups, scale, row_start, row_stop
):
    """Per-group sums of a compressed sparse (CSR or CSC) matrix over rows ``[row_start, row_stop)``.

    Parameters
    ----------
    indptr, indices, data : ndarray
        The compressed arrays.  For a genes x cells CSR matrix (or a cells x
        genes CSC one) the compressed rows are genes: ``rows_are_genes=True``.
        For a genes x cells CSC matrix (or cells x genes CSR, the AnnData
        layout) the compressed rows are cells: ``rows_are_genes=False``.
        Duplicate entries are summed, as scipy does.
    n_genes : int
        Number of genes.
    rows_are_genes : bool
        Whether the compressed axis is the gene axis.
    groups : ndarray of int64, shape (n_cells,)
        Group index of each cell.
    n_groups : int
        Number of groups.
    scale : ndarray of float64, shape (n_cells,)
        Per-cell normalisation factor.
    row_start, row_stop : int
        The compressed rows to visit.

    Returns
    -------
    acc : ndarray, shape (n_genes, n_groups, 6)
        As in :func:`group_sums_dense`.
    n_visited : int
        Number of stored non-zero entries accumulated.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> X = sp.csr_array(np.array([[1.0, 0.0, 3.0], [0.0, 2.0, 2.0]]))
    >>> acc, n = group_sums_sparse(X.indptr, X.indices, X.data, 2, True,
    ...                            np.array([0, 1, 1]), 2, np.ones(3), 0, 2)
    >>> acc[:, :, 5]
    array([[1., 1.],
           [0., 2.]])
    """
    acc = np.zeros((n_genes, n_groups, 6))
    n_visited = 0
    for r in range(row_start, row_stop):
        for p in range(indptr[r], indptr[r + 1]):
            x = float(data[p])
            if x != 0.0:
                if rows_are_genes:
                    g, c = r, indices[p]
                else:
                    g, c = indices[p], r
                _accumulate(acc, g, groups[c], x, x * scale[c])
                n_visited += 1
    return acc, n_visited


def _rest(total, part):
    """Sums over the cells outside each group: ``total[:, None] - part``."""
    return total[:, None] - part


def welch_t(s, ss, n):
    """Welch's t-test of each group against all other cells, from sums.

    Parameters
    ----------
    s, ss : ndarray, shape (n_genes, n_groups)
        Per-group sums and sums of squares of the (log-normalised) values.
    n : ndarray, shape (n_groups,)
        Cells per group (each >= 2, and >= 2 cells outside each group).

    Returns
    -------
    t : ndarray, shape (n_genes, n_groups)
        Welch t statistic (group minus rest); 0 where both variances and the
        mean difference are 0.
    pvalue : ndarray
        Two-sided p-value from the t distribution with Welch-Satterthwaite
        degrees of freedom; equal to
        ``scipy.stats.ttest_ind(a, b, equal_var=False).pvalue``.
    df : ndarray
        The Welch-Satterthwaite degrees of freedom.

    References
    ----------
    Welch, B. L. (1947). The generalization of "Student's" problem when several
    different population variances are involved. Biometrika 34, 28-35.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.array([1.0, 2.0, 4.0]), np.array([0.0, 1.0, 0.0, 1.0])
    >>> s = np.array([[a.sum(), b.sum()]]); ss = np.array([[(a**2).sum(), (b**2).sum()]])
    >>> t, p, df = welch_t(s, ss, np.array([3, 4]))
    >>> round(float(t[0, 0]), 6), round(float(p[0, 0]), 6)
    (1.975658, 0.163686)
    >>> from scipy import stats
    >>> r = stats.ttest_ind(a, b, equal_var=False)
    >>> bool(np.isclose(r.statistic, t[0, 0]) and np.isclose(r.pvalue, p[0, 0]))
    True
    """
    s = np.asarray(s, dtype=np.float64)
    ss = np.asarray(ss, dtype=np.float64)
    n1 = np.asarray(n, dtype=np.float64)[None, :]
    n2 = n1.sum() - n1
    s2 = _rest(s.sum(axis=1), s)
    ss2 = _rest(ss.sum(axis=1), ss)
    m1 = s / n1
    m2 = s2 / n2
    v1 = np.maximum(ss - n1 * m1 * m1, 0.0) / (n1 - 1.0)
    v2 = np.maximum(ss2 - n2 * m2 * m2, 0.0) / (n2 - 1.0)
    a1 = v1 / n1
    a2 = v2 / n2
    se2 = a1 + a2
    diff = m1 - m2
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / np.sqrt(se2)
        df = se2 * se2 / (a1 * a1 / (n1 - 1.0) + a2 * a2 / (n2 - 1.0))
    # no spread at all: equal means -> no evidence; different means -> certain
    flat = se2 <= 0.0
    t = np.where(flat & (diff == 0.0), 0.0, t)
    df = np.where(flat, n1 + n2 - 2.0, df)
    p = 2.0 * stats.t.sf(np.abs(t), df)
    return t, np.minimum(p, 1.0), df


def _xlogy_ratio(y, num, den):
    """``y * log(num / den)`` with the convention ``0 * log(0) = 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return special.xlogy(y, num) - special.xlogy(y, den)


def poisson_lrt(y, lib, n=None):
    """Poisson likelihood-ratio test of a group-specific mean against a shared one.

    Model: the count of a gene in cell ``c`` is Poisson with mean
    ``L_c * mu`` (``L_c`` the library size of the cell).  The alternative
    has one rate inside the group and one outside; the null one shared rate.
    The maximum-likelihood rates are ``sum(y) / sum(L)`` over the cells
    concerned, so the statistic needs only the per-group sums.

    Parameters
    ----------
    y : ndarray, shape (n_genes, n_groups)
        Per-group sums of the counts.
    lib : ndarray, shape (n_groups,)
        Per-group sums of the library sizes.
    n : ignored
        Accepted for a uniform signature with :func:`nb_lrt`.

    Returns
    -------
    stat : ndarray, shape (n_genes, n_groups)
        The likelihood-ratio statistic ``G = 2 (loglik_alt - loglik_null)``.
    pvalue : ndarray
        ``chi2(1).sf(G)``.

    Examples
    --------
    >>> import numpy as np
    >>> g, p = poisson_lrt(np.array([[30.0, 10.0]]), np.array([1000.0, 1000.0]))
    >>> round(float(g[0, 0]), 3)
    10.465
    """
    y = np.asarray(y, dtype=np.float64)
    lib = np.asarray(lib, dtype=np.float64)[None, :]
    y_tot = y.sum(axis=1)
    y_out = _rest(y_tot, y)
    l_out = lib.sum() - lib
    mu0 = (y_tot / lib.sum())[:, None]
    ll = _xlogy_ratio(y, y, lib * mu0) + _xlogy_ratio(y_out, y_out, l_out * mu0)
    g = np.maximum(2.0 * ll, 0.0)
    return g, stats.chi2.sf(g, 1)


def nb_dispersion(count_sum, count_sq, n):
    """Gene-wise negative-binomial dispersion by the method of moments.

    Pools the within-group spread of all groups: with ``var = mu + phi mu**2``,
    ``phi = sum_k (SS_k - n_k m_k) / sum_k n_k m_k**2`` where ``SS_k`` is the
    sum of squared deviations from the group mean ``m_k``; clipped at 1e-8
    (the Poisson limit).

    Parameters
    ----------
    count_sum, count_sq : ndarray, shape (n_genes, n_groups)
        Per-group sums and sums of squares of the raw counts.
    n : ndarray, shape (n_groups,)
        Cells per group.

    Returns
    -------
    phi : ndarray, shape (n_genes,)
        Dispersion (``1/theta``).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0.0, 4.0, 0.0, 4.0])     # mean 2, variance 4 (divisor n)
    >>> float(nb_dispersion(np.array([[y.sum()]]), np.array([[(y**2).sum()]]), np.array([4]))[0])
    0.5
    """
    n = np.asarray(n, dtype=np.float64)[None, :]
    m = count_sum / n
    ss_within = np.maximum(count_sq - n * m * m, 0.0)
    num = (ss_within - n * m).sum(axis=1)
    den = (n * m * m).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(den > 0.0, num / den, 0.0)
    return np.maximum(phi, 1e-8)


def _nb_profile(y, n, theta):
    """Maximised NB log-likelihood (mean-dependent part) of ``n`` cells summing to ``y``."""
    mu = y / n
    return _xlogy_ratio(y, mu, theta + mu) + n * theta * np.log(theta / (theta + mu))


def nb_lrt(y, n, count_sq):
    """Negative-binomial likelihood-ratio test of a group-specific mean against a shared one.

    Counts of a gene are negative binomial with mean ``mu`` and a dispersion
    ``phi = 1/theta`` shared by all cells (estimated per gene by
    :func:`nb_dispersion` from the within-group spread, held fixed in both
    models).  For a fixed ``theta`` the maximum-likelihood mean of a set of
    cells is their sample mean, so the statistic follows from the sums.
    Library-size differences are not modelled as offsets: they are absorbed
    into the dispersion, which makes the test conservative.

    Parameters
    ----------
    y : ndarray, shape (n_genes, n_groups)
        Per-group sums of the counts.
    n : ndarray, shape (n_groups,)
        Cells per group.
    count_sq : ndarray, shape (n_genes, n_groups)
        Per-group sums of squared counts (for the dispersion).

    Returns
    -------
    stat : ndarray, shape (n_genes, n_groups)
        ``G = 2 (loglik_alt - loglik_null)``.
    pvalue : ndarray
        ``chi2(1).sf(G)``.

    References
    ----------
    Robinson, M. D. and Smyth, G. K. (2008). Small-sample estimation of
    negative binomial dispersion. Biostatistics 9, 321-332.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[40.0, 10.0]]); sq = np.array([[200.0, 20.0]])
    >>> g, p = nb_lrt(y, np.array([10, 10]), sq)
    >>> bool(p[0, 0] < 0.05)
    True
    """
    y = np.asarray(y, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    theta = (1.0 / nb_dispersion(y, count_sq, n))[:, None]
    y_tot = y.sum(axis=1)[:, None]
    n_tot = n.sum()
    n_in = n[None, :]
    ll_alt = _nb_profile(y, n_in, theta) + _nb_profile(y_tot - y, n_tot - n_in, theta)
    ll_null = _nb_profile(y_tot, n_tot, theta)
    g = np.maximum(2.0 * (ll_alt - ll_null), 0.0)
    return g, stats.chi2.sf(g, 1)


def bh_fdr(pvalues, axis=0):
    """Benjamini-Hochberg adjusted p-values (q-values) along one axis.

    Parameters
    ----------
    pvalues : ndarray
        P-values in [0, 1].
    axis : int
        Axis holding one family of tests (genes); each slice along the other
        axes (e.g. each cell type) is adjusted separately.

    Returns
    -------
    ndarray
        Adjusted p-values, same shape; equal to
        ``scipy.stats.false_discovery_control(p, method="bh")`` per slice.

    References
    ----------
    Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery
    rate. J. R. Stat. Soc. B 57, 289-300.

    Examples
    --------
    >>> import numpy as np
    >>> bh_fdr(np.array([0.01, 0.04, 0.03, 0.5]))
    array([0.04     , 0.05333333, 0.05333333, 0.5      ])
    """
    p = np.moveaxis(np.asarray(pvalues, dtype=np.float64), axis, -1)
    m = p.shape[-1]
    if m == 0:
        return np.moveaxis(p.copy(), -1, axis)
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1) * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[..., ::-1], axis=-1)[..., ::-1]
    out = np.empty_like(p)
    np.put_along_axis(out, order, np.minimum(ranked, 1.0), axis=-1)
    return np.moveaxis(out, -1, axis)
