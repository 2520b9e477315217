"""Rules for the number of cell types ``k`` of a reference-free deconvolution.

Three rules, one calling convention (:func:`choose_k`), one result type
(:class:`KChoice`); every rule is deterministic (no seed):

- ``"spectrum"`` (:func:`spectrum_k`): LinSeed's rule, the smallest ``k``
  explaining ``variance_threshold`` of the squared singular values of the
  row-normalised genes, capped by the HySime noise-subspace estimate
  (:func:`fastdeconv.reference_free.estimate_k`);
- ``"mdl"`` (:func:`mdl_k`): the minimum description length of debCAM / CAM,
  the code length of the data under a fitted ``k``-type model plus the code
  length of the model's parameters, from factorisations the caller fitted;
- ``"bcv"`` (:func:`bicross_validation_k`): bi-cross-validation (Owen & Perry
  2009), the error of predicting held-out blocks of the matrix from a rank-``k``
  (or non-negative rank-``k``) fit of the rest.

The module works on NumPy arrays only (genes x samples, float64).

References
----------
Wang, N., Hoffman, E. P., Chen, L., et al. (2016). Mathematical modelling of
transcriptional heterogeneity identifies novel markers and subpopulations in
complex tissues. Scientific Reports 6, 18909. doi:10.1038/srep18909

Chen, L., Wu, C.-T., Wang, N., Herrington, D. M., Clarke, R., Wang, Y. (2020).
debCAM: a bioconductor R package for fully unsupervised deconvolution of
complex tissues. Bioinformatics 36, 3927-3929. doi:10.1093/bioinformatics/btaa205

Owen, A. B., Perry, P. O. (2009). Bi-cross-validation of the SVD and the
nonnegative matrix factorization. Annals of Applied Statistics 3, 564-594.
doi:10.1214/08-AOAS227
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fastdeconv._checks import check_choice, check_float, check_int

__all__ = [
    "K_RULES",
    "KChoice",
    "KDiagnostics",
    "choose_k",
    "spectrum_k",
    "mdl_k",
    "bicross_validation_k",
    "bcv_folds",
]

#: The rules :func:`choose_k` dispatches to.
K_RULES = ("spectrum", "mdl", "bcv")
#: The largest ``k`` tried by default (``ks=None``) by the bi-cross-validation.
DEFAULT_MAX_K = 10


@dataclass
class KChoice:
    """The number of components a rule picked, and the numbers behind the pick.

    Attributes
    ----------
    rule : str
        ``"spectrum"``, ``"mdl"`` or ``"bcv"``.
    k : int
        The number of components the rule picks.
    ks : ndarray of int
        The candidates, increasing.
    scores : ndarray
        One value per candidate, lower is better: the description length
        (``"mdl"``), the held-out squared error summed over the folds (``"bcv"``),
        the share of the squared singular values left unexplained (``"spectrum"``,
        whose pick is not its argmin but its threshold rule).
    details : dict
        Rule-specific numbers (see each rule).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.n_types import KChoice
    >>> c = KChoice("mdl", 3, np.array([2, 3]), np.array([5.0, 1.0]))
    >>> c.k, c.score_of(2)
    (3, 5.0)
    """

    rule: str
    k: int
    ks: np.ndarray
    scores: np.ndarray
    details: dict = field(default_factory=dict)

    def score_of(self, k):
        """The score of candidate ``k``.

        Parameters
        ----------
        k : int
            One of :attr:`ks`.

        Returns
        -------
        float

        Raises
        ------
        KeyError
            If ``k`` is not a candidate.

        Examples
        --------
        >>> import numpy as np
        >>> from fastdeconv.n_types import KChoice
        >>> KChoice("bcv", 2, np.array([1, 2]), np.array([3.0, 2.0])).score_of(1)
        3.0
        """
        hit = np.flatnonzero(self.ks == k)
        if hit.size == 0:
            raise KeyError(f"k={k} is not a candidate; the candidates are {self.ks.tolist()}")
        return float(self.scores[hit[0]])


# ----------------------------------------------------------------- checks


def _as_matrix(G, name="G"):
    """``G`` as a finite float64 C-contiguous genes x samples array with >= 2 of each."""
    try:
        X = np.asarray(G, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric genes x samples array ({err})") from None
    if X.ndim != 2 or min(X.shape) < 2:
        raise ValueError(
            f"{name} must be a 2-D genes x samples array with at least 2 genes and 2 samples, "
            f"got shape {X.shape}"
        )
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or inf; remove or impute them first")
    return np.ascontiguousarray(X)


def _as_ks(ks, upper, why, name="ks"):
    """``ks`` as a sorted array of distinct integers in ``[1, upper]``."""
    if isinstance(ks, numbers.Integral) and not isinstance(ks, bool):
        ks = [ks]
    try:
        values = list(ks)
    except TypeError:
        raise TypeError(
            f"{name} must be a sequence of candidate numbers of components, e.g. "
            f"{name}=range(2, {max(3, upper + 1)}); got {type(ks).__name__}"
        ) from None
    if not values:
        raise ValueError(
            f"{name} is empty; give at least one candidate, e.g. "
            f"{name}=range(2, {max(3, upper + 1)})"
        )
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must hold integers, got {v!r}")
        if v < 1:
            raise ValueError(f"{name} must hold integers >= 1, got {int(v)}")
        if v > upper:
            raise ValueError(
                f"{name} holds k={int(v)}, but {why} allow at most k={upper}; "
                + (f"use {name}=range(2, {upper + 1}) or smaller candidates" if name == "ks"
                   else f"fit only k <= {upper}")
            )
    return np.unique(np.asarray(values, dtype=np.int64))


# --------------------------------------------------------------- spectrum


@dataclass
class KDiagnostics:
    """How the number of components was chosen.

    Attributes
    ----------
    singular_values : ndarray
        Singular values of the row-normalised, filtered data (genes x samples,
        not centred), largest first.
    explained : ndarray
        Cumulative fraction of the squared singular values (``explained[j]``
        is the share of the first ``j + 1`` components).
    variance_threshold : float
        The threshold of the variance rule.
    k_variance : int
        Smallest ``k`` with ``explained[k - 1] >= variance_threshold``.
    k_noise : int
        Number of components whose signal power exceeds twice the estimated
        noise power (HySime).
    k_auto : int
        ``min(k_variance, k_noise)``, clipped to ``[2, max_k]``.
    k : int
        The number of components used (``k_auto`` or the user's).
    automatic : bool
        Whether ``k`` was chosen automatically.
    rule : str
        The rule that chose ``k`` when automatic (``"spectrum"``, ``"mdl"``,
        ``"bcv"``; :data:`K_RULES`).
    rule_choice : KChoice or None
        The other rules' scores per candidate ``k`` (None for ``"spectrum"``,
        whose scores are the spectrum above).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.reference_free import estimate_k
    >>> rng = np.random.default_rng(0)
    >>> G = rng.gamma(0.3, 1.0, (300, 2)) @ rng.dirichlet([1, 1], 10).T
    >>> d = estimate_k(G / G.sum(1, keepdims=True))
    >>> d.k, d.automatic
    (2, True)
    """

    singular_values: np.ndarray
    explained: np.ndarray
    variance_threshold: float
    k_variance: int
    k_noise: int
    k_auto: int
    k: int
    automatic: bool
    rule: str = "spectrum"
    rule_choice: object = None

    def to_frame(self):
        """Spectrum as a table: component, singular value, cumulative explained variance.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> import numpy as np
        >>> from fastdeconv.reference_free import KDiagnostics
        >>> d = KDiagnostics(np.array([2.0, 1.0]), np.array([0.8, 1.0]), 0.99, 2, 2, 2, 2, True)
        >>> d.to_frame().shape
        (2, 2)
        """
        import pandas as pd

        index = pd.RangeIndex(1, len(self.singular_values) + 1, name="component")
        return pd.DataFrame(
            {"singular_value": self.singular_values, "explained": self.explained}, index=index
        )


def _hysime_k(Y):
    """HySime subspace size of ``Y`` (bands x pixels: here samples x genes).

    Noise is estimated by regressing each sample on all the others; a
    component of the signal correlation matrix counts when the data's power
    along it exceeds twice the noise power (Bioucas-Dias & Nascimento 2008).
    Every matrix is samples x samples: with ``P`` the inverse of the (lightly
    regularised) Gram matrix ``Y Y'``, the residual of sample ``i`` regressed
    on the others is ``P[i] Y / P[i, i]``, so all the regressions are one
    product (the paper's loop over samples costs a cube of the samples more).
    """
    L, N = Y.shape
    RR = Y @ Y.T
    RR = RR + (1e-10 * np.trace(RR) / L) * np.eye(L)
    RRi = np.linalg.inv(RR)
    noise = (RRi @ Y) / np.diag(RRi)[:, None]
    Rn = np.diag(np.einsum("ij,ij->i", noise, noise) / N)
    Xs = Y - noise
    Ry = Y @ Y.T / N
    Rx = Xs @ Xs.T / N
    _, E = np.linalg.eigh(Rx)
    E = E[:, ::-1]
    Py = np.einsum("ij,ij->j", E, Ry @ E)
    Pn = np.einsum("ij,ij->j", E, Rn @ E)
    return int(np.sum(Py > 2.0 * Pn))


def _choose_k(X, variance_threshold, max_k, n_types):
    """The rule of :func:`estimate_k` on checked input (float64 genes x samples, >= 2 of each)."""
    n, m = X.shape
    # the singular values from the smaller Gram matrix (samples x samples, or genes x
    # genes when fewer genes than samples are left); the missing ones are zero
    if n >= m:
        eig = np.linalg.eigvalsh(X.T @ X)
    else:
        eig = np.concatenate([np.linalg.eigvalsh(X @ X.T), np.zeros(m - n)])
        eig.sort()
    s = np.sqrt(np.clip(eig[::-1], 0.0, None))
    total = float(np.sum(s**2))
    explained = np.cumsum(s**2) / total if total > 0 else np.ones_like(s)
    upper = X.shape[1] if max_k is None else int(max_k)
    upper = max(2, min(upper, X.shape[1], X.shape[0]))
    k_variance = int(np.searchsorted(explained, variance_threshold) + 1)
    k_noise = _hysime_k(X.T)
    k_auto = int(min(max(min(k_variance, k_noise), 2), upper))
    automatic = isinstance(n_types, str)
    k = k_auto if automatic else int(n_types)
    return KDiagnostics(s, explained, float(variance_threshold), k_variance, k_noise, k_auto, k, automatic)




def spectrum_k(X, ks=None, *, variance_threshold=0.99):
    """LinSeed's rule: variance explained by the spectrum, capped by the noise subspace.

    A thin wrapper of the rule :func:`fastdeconv.reference_free.estimate_k`
    applies (``k = min(k_variance, k_noise)``, clipped to ``[2, max(ks)]``), so
    that every rule has the calling convention of :func:`choose_k`.

    Parameters
    ----------
    X : array_like, shape (n_genes, n_samples)
        Row-normalised genes (each row summing to 1), as LinSeed analyses them.
    ks : sequence of int, optional
        Candidates; the pick is clipped into ``[min(ks), max(ks)]``.  Default:
        ``2 .. n_samples`` (the existing rule's range).
    variance_threshold : float, default 0.99
        Share of the squared singular values the components must explain.

    Returns
    -------
    KChoice
        ``scores`` are the shares left unexplained by the first ``k`` singular
        components; ``details`` holds ``k_variance``, ``k_noise`` and the
        :class:`fastdeconv.reference_free.KDiagnostics` (``diagnostics``).

    Raises
    ------
    ValueError
        If ``X`` is not a finite 2-D array with at least 2 genes and 2 samples,
        has fewer genes than samples, or ``ks`` is empty or out of range.

    References
    ----------
    Zaitsev, K., Bambouskova, M., Swain, A., Artyomov, M. N. (2019). Complete
    deconvolution of cellular mixtures based on linearity of transcriptional
    signatures. Nature Communications 10, 2209.

    Bioucas-Dias, J. M., Nascimento, J. M. P. (2008). Hyperspectral subspace
    identification. IEEE Transactions on Geoscience and Remote Sensing 46, 2435-2445.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.n_types import spectrum_k
    >>> rng = np.random.default_rng(0)
    >>> G = rng.gamma(0.3, 1.0, (500, 3)) @ rng.dirichlet(np.ones(3), 20).T
    >>> G = G * rng.lognormal(0, 0.02, G.shape)
    >>> spectrum_k(G / G.sum(1, keepdims=True)).k
    3
    """
    X = _as_matrix(X, "X")
    n, m = X.shape
    if n < m:
        raise ValueError(
            f"X has {n} rows (genes) and {m} columns (samples): fewer genes than samples, so "
            "it looks transposed; pass its transpose"
        )
    variance_threshold = check_float(variance_threshold, "variance_threshold", maximum=1.0)
    ks = np.arange(2, m + 1) if ks is None else _as_ks(ks, m, f"{m} samples")
    d = _choose_k(X, variance_threshold, int(ks[-1]), "auto")
    k = int(min(max(d.k_auto, ks[0]), ks[-1]))
    scores = 1.0 - d.explained[np.minimum(ks, len(d.explained)) - 1]
    details = {"k_variance": d.k_variance, "k_noise": d.k_noise, "diagnostics": d,
               "variance_threshold": float(variance_threshold)}
    return KChoice("spectrum", k, ks, np.clip(scores, 0.0, None), details)


# -------------------------------------------------------------------- MDL


def _nnls(A, B, n_jobs=None):
    """NNLS of every column of ``B`` on ``A`` (the factorisations' solver, without its flag)."""
    from fastdeconv.factorization import _nnls as solve_nnls

    return solve_nnls(A, B, n_jobs)[0]


def _mdl_terms(n, m, k, mse):
    """debCAM's two code lengths: ``n`` genes, ``m`` samples, ``k`` types, mean squared error."""
    data_length = 0.5 * n * m * np.log(mse)
    penalty = 0.5 * (k - 1) * m * np.log(n) + 0.5 * k * n * np.log(m)
    return data_length, penalty


def mdl_k(G, fits, *, refit=True, norm_quantiles=(0.05, 0.95), n_jobs=None):
    """Minimum description length of fitted ``k``-type models (debCAM / CAM); ``k`` = argmin.

    For each fitted ``G ~ W H`` (genes x samples = genes x k times k x samples),
    debCAM's description length (``CAMASest``, the default ``mdl.method = 3`` of
    its ``MDL``) is, with ``n`` genes, ``m`` samples and Gaussian residuals::

        MDL(k) = n m / 2 * log(mean((G - W H)**2))      # code length of the data
               + (k - 1) m / 2 * log(n)                  # the proportions A = H'
               + k n / 2 * log(m)                        # the profiles S = W'

    The first term is the negative Gaussian log-likelihood at the maximum
    likelihood variance (up to a constant); the second and third are the
    two-part code of the parameters, ``log(N) / 2`` per parameter where ``N`` is
    the number of observations that inform it: each sample's ``k``
    proportions, ``k - 1`` of them free because they sum to one, are
    informed by the ``n`` genes, and each gene's ``k`` expression levels by
    the ``m`` samples.

    With ``refit=True`` (default, as debCAM does) the caller's ``H`` only fixes
    the proportions: negative values are set to 0, each sample's column is
    scaled to sum 1, and the profiles are refitted by NNLS of every gene on
    them (debCAM's ``S <- fcnnls(A, X)``); with ``refit=False`` the
    reconstruction ``W H`` is scored as given.

    The genes scored (and counted as ``n``) are those whose Euclidean norm
    over the samples lies in ``(q_low, q_high]``, the quantiles
    ``norm_quantiles`` of the norms: debCAM's norm filter (``CAMPrep``,
    ``thres.low = 0.05``, ``thres.high = 0.95``).  It matters: the few most
    expressed genes otherwise dominate the mean squared error (on the
    Shen-Orr mixtures, without it the rule picks 5 to 7 types instead of 3).

    Where debCAM differs: it estimates ``A`` from the medians of marker-gene
    clusters (k-means of the perspective-projected genes) and also leaves out
    of the score the genes of small clusters (outliers) and, optionally,
    local outliers; here the proportions come from the caller's
    factorisations (LinSeed's, NMF's ...) and no gene is clustered.

    Parameters
    ----------
    G : array_like, shape (n_genes, n_samples)
        The analysed genes on a linear scale (the model ``G = W H`` with
        proportions summing to 1 per sample is that of the raw mixtures).
    fits : mapping
        ``k -> (W, H)`` with ``W`` of shape (n_genes, k) and ``H`` of shape
        (k, n_samples); ``k`` from 1 to ``n_samples - 1``.
    refit : bool, default True
        Normalise ``H`` to proportions and refit ``W`` by NNLS (debCAM), or
        score ``W H`` as given.
    norm_quantiles : (float, float) or None, default (0.05, 0.95)
        Score the genes whose norm lies between these quantiles of the genes'
        norms (debCAM's defaults); ``None`` (or ``(0, 1)``) scores every gene.
    n_jobs : int, optional
        Threads of the NNLS refit (the result does not depend on it).

    Returns
    -------
    KChoice
        ``scores`` the description lengths; ``details`` holds ``data_length``
        and ``penalty`` (arrays over ``ks``), ``mse`` and ``scored`` (the
        boolean mask of the genes scored).

    Raises
    ------
    ValueError
        If ``fits`` is empty, a ``k`` is not below the number of samples, a
        factor's shape does not match ``G`` and ``k``, ``H`` has a sample
        with no positive proportion (``refit=True``), or ``norm_quantiles``
        is not two increasing numbers in ``[0, 1]`` leaving at least 2 genes.
    TypeError
        If ``fits`` is not a mapping of ``k`` to pairs of arrays.

    References
    ----------
    Wang, N. et al. (2016). Mathematical modelling of transcriptional
    heterogeneity identifies novel markers and subpopulations in complex
    tissues. Scientific Reports 6, 18909.

    Chen, L. et al. (2020). debCAM: a bioconductor R package for fully
    unsupervised deconvolution of complex tissues. Bioinformatics 36, 3927-3929.

    Rissanen, J. (1978). Modeling by shortest data description. Automatica 14, 465-471.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.n_types import mdl_k
    >>> rng = np.random.default_rng(0)
    >>> W = rng.gamma(0.5, 10.0, (400, 3))
    >>> H = rng.dirichlet(np.ones(3), 15).T
    >>> G = W @ H * rng.lognormal(0, 0.05, (400, 15))
    >>> fits = {k: (W[:, :k], H[:k]) for k in (1, 2, 3)}
    >>> fits[4] = (np.hstack([W, W[:, :1]]), np.vstack([H, np.zeros((1, 15))]))
    >>> mdl_k(G, fits).k
    3
    """
    G = _as_matrix(G)
    n, m = G.shape
    if not isinstance(fits, Mapping):
        raise TypeError(
            "fits must be a mapping k -> (W, H) of fitted factorisations, got "
            f"{type(fits).__name__}"
        )
    ks = _as_ks(list(fits), m - 1, f"{m} samples (a model needs fewer types than samples)",
                name="fits")
    if len(ks) != len(fits):
        raise ValueError("fits has the same k twice; give one factorisation per k")
    refit = bool(refit)
    scored = _norm_filter(G, norm_quantiles)
    n_scored = int(scored.sum())
    data_length = np.empty(len(ks))
    penalty = np.empty(len(ks))
    mse = np.empty(len(ks))
    floor = np.finfo(np.float64).tiny + np.finfo(np.float64).eps ** 2 * float(np.mean(G[scored]**2))
    by_int = {int(key): value for key, value in fits.items()}
    for i, k in enumerate(ks):
        W, H = _factors(by_int[int(k)], n, m, int(k))
        if refit:
            H = np.clip(H, 0.0, None)
            total = H.sum(axis=0)
            if np.any(total <= 0):
                j = int(np.flatnonzero(total <= 0)[0])
                raise ValueError(
                    f"fits[{int(k)}]: sample {j} has no positive proportion in H; fix the fit, "
                    "or pass refit=False to score W @ H as given"
                )
            H = H / total
            W = _nnls(H.T, G.T, n_jobs).T
        R = G[scored] - W[scored] @ H
        mse[i] = max(float(np.mean(R * R)), floor)
        data_length[i], penalty[i] = _mdl_terms(n_scored, m, int(k), mse[i])
    scores = data_length + penalty
    k = int(ks[int(np.argmin(scores))])
    return KChoice("mdl", k, ks, scores,
                   {"data_length": data_length, "penalty": penalty, "mse": mse, "refit": refit,
                    "scored": scored})


def _norm_filter(G, norm_quantiles):
    """debCAM's gene filter: norms in ``(quantile(low), quantile(high)]`` (R's default quantile)."""
    if norm_quantiles is None:
        return np.ones(G.shape[0], dtype=bool)
    try:
        low, high = (float(q) for q in norm_quantiles)
    except (TypeError, ValueError):
        raise TypeError(
            f"norm_quantiles must be two numbers (low, high) or None, got {norm_quantiles!r}; "
            "use norm_quantiles=(0.05, 0.95)"
        ) from None
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(
            f"norm_quantiles must satisfy 0 <= low < high <= 1, got {norm_quantiles!r}; "
            "use norm_quantiles=(0.05, 0.95), or None to score every gene"
        )
    norm = np.sqrt(np.einsum("ij,ij->i", G, G))
    q_low, q_high = np.quantile(norm, [low, high])
    keep = (norm > q_low) & (norm <= q_high)
    if low == 0.0:
        keep |= norm == q_low  # the lowest norm itself when nothing is cut below
    if keep.sum() < 2:
        raise ValueError(
            f"norm_quantiles={norm_quantiles!r} leaves {int(keep.sum())} gene(s) to score; "
            "use norm_quantiles=(0.05, 0.95), or None to score every gene"
        )
    return keep


def _factors(pair, n, m, k):
    """The pair ``(W, H)`` of ``fits[k]`` as float64 arrays of the right shapes."""
    try:
        W, H = pair
        W = np.asarray(W, dtype=np.float64)
        H = np.asarray(H, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"fits[{k}] must be a pair (W, H) of numeric arrays") from None
    if W.shape != (n, k) or H.shape != (k, m):
        raise ValueError(
            f"fits[{k}] has W of shape {W.shape} and H of shape {H.shape}; with G of shape "
            f"({n}, {m}) they must be ({n}, {k}) and ({k}, {m})"
        )
    if not (np.isfinite(W).all() and np.isfinite(H).all()):
        raise ValueError(f"fits[{k}] contains NaN or inf")
    return W, H


# -------------------------------------------------------------------- BCV


def bcv_folds(n, n_folds):
    """Deterministic interleaved folds: item ``i`` is in fold ``i % n_folds``.

    Parameters
    ----------
    n : int
        Number of items (genes or samples).
    n_folds : int
        Number of folds, from 2 to ``n``.

    Returns
    -------
    ndarray of int64, shape (n,)
        The fold of every item.

    Raises
    ------
    ValueError
        If ``n_folds`` is below 2 or above ``n``.

    Examples
    --------
    >>> from fastdeconv.n_types import bcv_folds
    >>> bcv_folds(5, 2).tolist()
    [0, 1, 0, 1, 0]
    """
    n_folds = check_int(n_folds, "n_folds", minimum=2)
    if n_folds > n:
        raise ValueError(f"n_folds={n_folds} is more than the {n} items; use n_folds={n} or fewer")
    return np.arange(n, dtype=np.int64) % n_folds


def _svd_errors(A, B, C, D, ks):
    """Held-out squared errors of ``B D_k^+ C`` against ``A`` for every ``k`` in ``ks``.

    With the thin SVD ``D = U S V'``, ``D_k^+ = V_k S_k^-1 U_k'``, so the
    predictions are nested: ``A_hat_k = sum_{j < k} (B v_j)(u_j' C) / s_j``.
    Singular values at or below ``max(D.shape) * eps * s_1`` count as zero (the
    pseudo-inverse's cut): a ``k`` past the numerical rank of ``D`` repeats the
    error at that rank.
    """
    U, s, Vt = np.linalg.svd(D, full_matrices=False)
    cut = max(D.shape) * np.finfo(np.float64).eps * (s[0] if s.size else 0.0)
    rank = int(np.sum(s > cut))
    P = B @ Vt[:rank].T / s[:rank]  # |I| x rank
    Q = U[:, :rank].T @ C           # rank x |J|
    out = np.empty(len(ks))
    R = A.copy()
    done = 0
    for i, k in enumerate(ks):
        upto = min(int(k), rank)
        if upto > done:
            R -= P[:, done:upto] @ Q[done:upto]
            done = upto
        out[i] = float(np.einsum("ij,ij->", R, R))
    return out


def _nmf(D, k, n_iter, tol, n_jobs):
    """Rank-``k`` NMF of ``D`` by alternating exact NNLS from the NNDSVD start."""
    from fastdeconv.factorization import _nndsvd

    W, H = _nndsvd(D, k)
    DT = np.ascontiguousarray(D.T)
    previous = np.inf
    scale = float(np.einsum("ij,ij->", D, D)) or 1.0
    for _ in range(n_iter):
        H = _nnls(W, D, n_jobs)
        W = _nnls(H.T, DT, n_jobs).T
        R = D - W @ H
        obj = float(np.einsum("ij,ij->", R, R))
        if previous - obj <= tol * scale:
            break
        previous = obj
    return W, H


def _nmf_errors(A, B, C, D, ks, n_iter, tol, n_jobs):
    """Owen & Perry's NMF held-out errors: ``A_hat = W_B H_C`` from an NMF ``D ~ W_D H_D``."""
    out = np.empty(len(ks))
    BT = np.ascontiguousarray(B.T)
    for i, k in enumerate(ks):
        W_D, H_D = _nmf(D, int(k), n_iter, tol, n_jobs)
        W_B = _nnls(H_D.T, BT, n_jobs).T   # B ~ W_B H_D
        H_C = _nnls(W_D, C, n_jobs)        # C ~ W_D H_C
        R = A - W_B @ H_C
        out[i] = float(np.einsum("ij,ij->", R, R))
    return out


def bicross_validation_k(G, ks=None, *, n_row_folds=2, n_col_folds=2, method="svd",
                         one_se=False, n_iter=200, tol=1e-7, n_jobs=None):
    """Bi-cross-validation of the rank (Owen & Perry 2009); ``k`` = the smallest held-out error.

    The genes are split into ``n_row_folds`` and the samples into
    ``n_col_folds`` interleaved folds (gene ``i`` in fold ``i % n_row_folds``:
    deterministic, no seed).  For every pair (row fold ``I``, column fold
    ``J``) the matrix is permuted to ``[[A, B], [C, D]]``, ``A = G[I, J]`` held
    out, ``B = G[I, not J]``, ``C = G[not I, J]``, ``D`` the rest, and ``A`` is
    predicted from a rank-``k`` fit of ``D`` alone:

    - ``method="svd"``: ``A_hat = B D_k^+ C``, ``D_k`` the truncated SVD;
    - ``method="nmf"``: ``D ~ W_D H_D`` (non-negative, rank ``k``, alternating
      NNLS from a deterministic NNDSVD start), then ``B ~ W_B H_D`` and
      ``C ~ W_D H_C`` by NNLS, ``A_hat = W_B H_C`` (Owen & Perry, section 5).

    The score of ``k`` is ``||A - A_hat||_F^2`` summed over the
    ``n_row_folds * n_col_folds`` blocks, which cover every entry exactly once.

    Which data: pass the row-normalised genes (each row summing to 1), the
    data LinSeed's simplex and its spectrum rule see.  On raw expression the
    error is dominated by the few most expressed genes; on the Abbas mixtures
    (true k = 4) the raw data's picks were 5 and 6 (argmin, one-SE 5) against
    5 and 4 on the row-normalised genes.  On real microarray mixtures the
    held-out error keeps falling past the number of cell types (the mixing is
    not exactly linear on the linear scale, and technical structure is
    predictable too): on the Shen-Orr mixtures (true k = 3) the argmin is the
    largest candidate allowed, whatever the data's scale.  The one-SE rule is
    closer there (4) but rests on only ``n_row_folds * n_col_folds`` block
    errors and moves with the order of the samples; the default stays Owen
    & Perry's argmin.

    The NMF variant predicts a held-out sample as a non-negative combination
    of the profiles fitted on the retained samples; when those do not span
    the cone of all the samples (no near-pure samples), held-out samples fall
    outside it and the rule overshoots (planted Dirichlet(1) proportions, 24
    samples: 2 -> 4, 3 -> 6).

    Parameters
    ----------
    G : array_like, shape (n_genes, n_samples)
        The data (non-negative for ``method="nmf"``).
    ks : sequence of int, optional
        Candidate ranks, each at most the size of the retained block ``D``
        (``n_samples`` minus the largest column fold, and likewise for genes).
        Default: ``2 ..`` that bound, at most ``2 .. 10``.
    n_row_folds, n_col_folds : int, default 2
        Folds of the genes and of the samples (Owen & Perry recommend holding
        out about half of each: 2 x 2).
    method : {"svd", "nmf"}, default "svd"
        Truncated SVD (the predictions are nested in ``k``: one SVD per block),
        or NMF (one factorisation per block and ``k``: much slower).
    one_se : bool, default False
        Pick the smallest ``k`` whose error is within one standard error of the
        minimum (the standard error of the summed error, from the spread of
        the blocks' errors) instead of the minimum itself.  Both are in
        ``details`` (``k_min``, ``k_one_se``).
    n_iter : int, default 200
        Most alternations of the NMF (``method="nmf"``).
    tol : float, default 1e-7
        The NMF stops when an alternation lowers the squared error by less
        than ``tol`` times ``||D||^2``.
    n_jobs : int, optional
        Threads of the NNLS solves (``method="nmf"``; results do not depend on it).

    Returns
    -------
    KChoice
        ``scores`` the summed held-out errors; ``details`` holds
        ``fold_errors`` (blocks x ks), ``standard_error`` (of the summed
        error, per k), ``k_min``, ``k_one_se``, ``row_folds``, ``col_folds``,
        ``method``.

    Raises
    ------
    ValueError
        If ``G`` is not a finite 2-D array (non-negative for NMF), ``ks`` is
        empty or holds a rank the retained block cannot have, or a number of
        folds is below 2 or above the genes or samples.

    References
    ----------
    Owen, A. B., Perry, P. O. (2009). Bi-cross-validation of the SVD and the
    nonnegative matrix factorization. Annals of Applied Statistics 3, 564-594.

    Boutsidis, C., Gallopoulos, E. (2008). SVD based initialization: a head
    start for nonnegative matrix factorization. Pattern Recognition 41, 1350-1362.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.n_types import bicross_validation_k
    >>> rng = np.random.default_rng(0)
    >>> G = rng.gamma(0.5, 1.0, (300, 3)) @ rng.dirichlet(np.ones(3), 16).T
    >>> G = G + rng.normal(0, 1e-3, G.shape)
    >>> bicross_validation_k(G, range(1, 7)).k
    3
    """
    G = _as_matrix(G)
    n, m = G.shape
    method = check_choice(method, "method", ("svd", "nmf"))
    if not isinstance(n_row_folds, numbers.Integral) or isinstance(n_row_folds, bool) \
            or not 2 <= n_row_folds <= n:
        raise ValueError(f"n_row_folds must be an integer from 2 to the {n} genes, got "
                         f"{n_row_folds!r}; use n_row_folds=2")
    if not isinstance(n_col_folds, numbers.Integral) or isinstance(n_col_folds, bool) \
            or not 2 <= n_col_folds <= m:
        raise ValueError(f"n_col_folds must be an integer from 2 to the {m} samples, got "
                         f"{n_col_folds!r}; use n_col_folds=2")
    rows = bcv_folds(n, int(n_row_folds))
    cols = bcv_folds(m, int(n_col_folds))
    # the retained block of the largest held-out fold bounds the rank
    upper = int(min(n - np.bincount(rows).max(), m - np.bincount(cols).max()))
    why = (f"the retained blocks ({m} samples less a column fold of up to "
           f"{int(np.bincount(cols).max())}, with n_col_folds={int(n_col_folds)})")
    if ks is None:
        ks = range(2, max(2, min(upper, DEFAULT_MAX_K)) + 1)
    ks = _as_ks(ks, upper, why)
    if method == "nmf":
        if np.any(G < 0):
            raise ValueError("G has negative values; method='nmf' needs non-negative data "
                             "(use method='svd')")
        n_iter = check_int(n_iter, "n_iter")
        tol = check_float(tol, "tol", minimum=0.0, allow_minimum=True)
    one_se = bool(one_se)
    blocks = [(a, b) for a in range(int(n_row_folds)) for b in range(int(n_col_folds))]
    fold_errors = np.empty((len(blocks), len(ks)))
    for f, (a, b) in enumerate(blocks):
        I, J = rows == a, cols == b
        A = G[np.ix_(I, J)]
        B = G[np.ix_(I, ~J)]
        C = G[np.ix_(~I, J)]
        D = np.ascontiguousarray(G[np.ix_(~I, ~J)])
        if method == "svd":
            fold_errors[f] = _svd_errors(A, B, C, D, ks)
        else:
            fold_errors[f] = _nmf_errors(A, B, C, D, ks, n_iter, tol, n_jobs)
    scores = fold_errors.sum(axis=0)
    # the standard error of a sum of F block errors: sqrt(F) times their standard deviation
    F = len(blocks)
    se = np.sqrt(F) * fold_errors.std(axis=0, ddof=1)
    best = int(np.argmin(scores))
    k_min = int(ks[best])
    k_one_se = int(ks[int(np.flatnonzero(scores <= scores[best] + se[best])[0])])
    details = {"fold_errors": fold_errors, "standard_error": se, "k_min": k_min,
               "k_one_se": k_one_se, "row_folds": rows, "col_folds": cols, "method": method,
               "one_se": one_se}
    return KChoice("bcv", k_one_se if one_se else k_min, ks, scores, details)


# --------------------------------------------------------------- dispatch


def choose_k(rule, G, ks=None, *, fits=None, **options):
    """The number of components by one of the rules of :data:`K_RULES`.

    Parameters
    ----------
    rule : {"spectrum", "mdl", "bcv"}
        :func:`spectrum_k`, :func:`mdl_k` or :func:`bicross_validation_k`.
    G : array_like, shape (n_genes, n_samples)
        The data the rule reads: the row-normalised genes for ``"spectrum"``
        and ``"bcv"`` (LinSeed's geometry), the linear mixtures for ``"mdl"``.
    ks : sequence of int, optional
        Candidates (for ``"mdl"``: a subset of ``fits``; default all of them).
    fits : mapping, optional
        ``k -> (W, H)``, needed by ``"mdl"`` only.
    **options
        The rule's own keywords (``variance_threshold``; ``refit``;
        ``n_row_folds``, ``n_col_folds``, ``method``, ``one_se`` ...).

    Returns
    -------
    KChoice

    Raises
    ------
    ValueError
        If ``rule`` is unknown, ``"mdl"`` is given no ``fits`` or ``ks`` names a
        ``k`` missing from ``fits``, or the rule refuses its input.
    TypeError
        If an option is not one of the rule's keywords.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.n_types import choose_k, K_RULES
    >>> rng = np.random.default_rng(1)
    >>> G = rng.gamma(0.3, 1.0, (400, 2)) @ rng.dirichlet([1, 1], 12).T
    >>> X = G / G.sum(1, keepdims=True)
    >>> K_RULES
    ('spectrum', 'mdl', 'bcv')
    >>> choose_k("spectrum", X).k, choose_k("bcv", X, range(1, 5)).k
    (2, 2)
    """
    rule = check_choice(rule, "rule", K_RULES)
    if rule != "mdl" and fits is not None:
        raise ValueError(f"fits is used by rule='mdl' only, not by rule={rule!r}; drop it")
    if rule == "spectrum":
        return spectrum_k(G, ks, **options)
    if rule == "bcv":
        return bicross_validation_k(G, ks, **options)
    if fits is None:
        raise ValueError("rule='mdl' scores fitted models: pass fits={k: (W, H), ...}")
    if ks is not None:
        if not isinstance(fits, Mapping):
            raise TypeError(f"fits must be a mapping k -> (W, H), got {type(fits).__name__}")
        wanted = _as_ks(ks, max(int(k) for k in fits) if fits else 1, "the fits given")
        missing = [int(k) for k in wanted if k not in {int(key) for key in fits}]
        if missing:
            raise ValueError(f"ks holds k={missing} but fits has no factorisation for them; "
                             f"fit them, or use ks={sorted(int(key) for key in fits)}")
        fits = {int(key): value for key, value in fits.items() if int(key) in set(wanted.tolist())}
    return mdl_k(G, fits, **options)
