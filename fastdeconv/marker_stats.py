"""Marker-gene statistics from per-group sums: t and likelihood-ratio tests, FDR.

The per-gene, per-group sums of a count matrix (one Numba pass:
:meth:`fastdeconv.inputs.counts.Counts.group_sums` over the kernels of
:mod:`fastdeconv.kernels.markers`) hold everything a test of one group of
cells against all the others needs, so these statistics are vectorised
NumPy/SciPy on (genes x groups) arrays and never loop over genes:

* :func:`welch_t` -- Welch's t-test on the (log-normalised) values;
* :func:`poisson_lrt` -- Poisson likelihood-ratio test with library-size offsets;
* :func:`nb_dispersion`, :func:`nb_lrt` -- negative-binomial dispersion by the
  method of moments and the likelihood-ratio test with it;
* :func:`bh_fdr` -- Benjamini-Hochberg adjusted p-values per group
  (:func:`scipy.stats.false_discovery_control`).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = ["welch_t", "poisson_lrt", "nb_dispersion", "nb_lrt", "bh_fdr"]


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
    >>> from fastdeconv.marker_stats import welch_t
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
    >>> from fastdeconv.marker_stats import poisson_lrt
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
    >>> from fastdeconv.marker_stats import nb_dispersion
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
    >>> from fastdeconv.marker_stats import nb_lrt
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

    :func:`scipy.stats.false_discovery_control` (``method="bh"``), except
    that NaN p-values are left out: they stay NaN and each family is the
    non-NaN p-values of its slice (as R's ``p.adjust`` does).

    Parameters
    ----------
    pvalues : array_like
        P-values in [0, 1] (or NaN).
    axis : int
        Axis holding one family of tests (genes); each slice along the other
        axes (e.g. each cell type) is adjusted separately.

    Returns
    -------
    ndarray
        Adjusted p-values, same shape.

    References
    ----------
    Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery
    rate. J. R. Stat. Soc. B 57, 289-300.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.marker_stats import bh_fdr
    >>> bh_fdr(np.array([0.01, 0.04, 0.03, 0.5]))
    array([0.04      , 0.05333333, 0.05333333, 0.5       ])
    >>> bh_fdr(np.array([0.01, np.nan, 0.03]))
    array([0.02, nan, 0.03])
    """
    p = np.asarray(pvalues, dtype=np.float64)
    nan = np.isnan(p)
    if p.size == 0 or not nan.any():
        return stats.false_discovery_control(p, axis=axis, method="bh")
    out = np.full(p.shape, np.nan)
    flat_p = np.moveaxis(p, axis, -1).reshape(-1, p.shape[axis])
    flat_out = np.moveaxis(out, axis, -1).reshape(-1, p.shape[axis])  # a copy
    for row, q in zip(flat_p, flat_out):
        ok = ~np.isnan(row)
        if ok.any():
            q[ok] = stats.false_discovery_control(row[ok], method="bh")
    return np.moveaxis(flat_out.reshape(np.moveaxis(p, axis, -1).shape), -1, axis)
