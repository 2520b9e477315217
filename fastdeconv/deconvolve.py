"""Reference-based deconvolution: from expression tables to cell-type proportions.

:func:`deconvolve` is the one pipeline for a bulk expression table and a
signature (reference profiles): it reads and checks the inputs
(:mod:`fastdeconv.inputs`), matches genes by name, selects informative genes,
solves every sample with the exact core solvers (:func:`fastdeconv.nnls`,
:func:`fastdeconv.simplex_lstsq`), optionally re-weights genes robustly, and
returns a :class:`DeconvolutionResult` with names attached again, per-sample
fit diagnostics and plots.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fastdeconv.inputs import (
    as_expression_frame,
    check_expression,
    harmonize_genes,
    match_genes,
    warn_if_collinear,
)
from fastdeconv.kernels.robust import HUBER_C, MAD_TO_SD

__all__ = ["deconvolve", "DeconvolutionResult", "select_marker_genes", "to_cell_fractions"]

METHODS = ("simplex", "nnls", "wls", "simplex_le")
_SCALES = ("auto", "linear", "log2", "log2p1")
#: Name of the extra column holding ``1 - sum(p)`` for ``method="simplex_le"``.
UNEXPLAINED = "unexplained"
_BLOCK = 4096  # samples per block between progress-bar updates
#: Most genes per cell type that CIBERSORT's signature-matrix builder keeps (it
#: searches 50-200); a signature with at most this many genes per type is taken
#: to be a curated signature matrix and used whole by ``genes="auto"``.
CURATED_GENES_PER_TYPE = 200


# ---------------------------------------------------------------------------
# gene selection
# ---------------------------------------------------------------------------


def select_marker_genes(
    signature, *, n_markers=100, min_fold_change=2.0, min_per_type=10, pseudocount=None
):
    """Pick the genes that tell the cell types of a signature apart.

    Each gene is assigned to the cell type in which it is highest, and scored
    by its fold change over the *second* highest type, with a pseudocount
    ``c``: ``(S[g, first] + c) / (S[g, second] + c)``.  For every type the genes
    assigned to it with a fold change of at least ``min_fold_change`` are
    ranked by that fold change and the best ``n_markers`` kept.  A type with
    fewer than ``min_per_type`` such genes keeps its ``min_per_type``
    best-ranked genes anyway (a type with no gene of its own cannot be
    estimated).

    The pseudocount (default: the mean of all signature values) keeps genes
    expressed far below the average gene from winning on a ratio of two tiny
    numbers: such ratios are dominated by measurement noise (sampling noise of
    single-cell profiles, the background of arrays).  Because it is a mean of
    the data, the selection does not change when the signature is rescaled.

    This is the rule by which marker-based signatures such as LM22 are
    built (genes specific to one type, capped per type so that every type is
    represented equally); applied to whole-transcriptome references it drops
    the many genes shared by all types, whose measurement noise and
    platform effects otherwise dominate a least-squares fit.

    Parameters
    ----------
    signature : pandas.DataFrame
        Genes x cell types, linear scale.
    n_markers : int, default 100
        Most genes kept per cell type (the middle of the 50-200 genes per
        type among which CIBERSORT's signature builder chooses).
    min_fold_change : float, default 2.0
        Smallest fold change (highest / second highest type) of a marker.
    min_per_type : int, default 10
        Fewest genes kept per type, relaxing ``min_fold_change`` if needed.
    pseudocount : float, optional
        Added to both sides of the fold change; default the mean of the
        signature's values; 0 for the plain ratio.

    Returns
    -------
    list of str
        The selected genes, in signature order.

    References
    ----------
    .. [1] Newman A. M. et al. (2015) Robust enumeration of cell subsets from
       tissue expression profiles. Nat Methods 12:453-457. doi:10.1038/nmeth.3337
    .. [2] Abbas A. R. et al. (2009) Deconvolution of blood microarray data
       identifies cellular activation patterns in systemic lupus erythematosus.
       PLoS One 4(7):e6098. doi:10.1371/journal.pone.0006098

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.deconvolve import select_marker_genes
    >>> sig = pd.DataFrame({"T": [100.0, 5.0, 50.0, 9.0, 0.5], "B": [10.0, 80.0, 45.0, 10.0, 0.01]},
    ...                    index=["CD3E", "MS4A1", "ACTB", "GAPDH", "NOISY"])
    >>> select_marker_genes(sig, min_per_type=1)
    ['CD3E', 'MS4A1']
    >>> select_marker_genes(sig, min_per_type=1, n_markers=1, pseudocount=0.0)  # 0.5/0.01 wins
    ['MS4A1', 'NOISY']
    """
    if n_markers < 1 or min_per_type < 0 or min_fold_change < 1:
        raise ValueError(
            "need n_markers >= 1, min_per_type >= 0 and min_fold_change >= 1, got "
            f"{n_markers}, {min_per_type}, {min_fold_change}"
        )
    values = signature.to_numpy(dtype=np.float64)
    k = values.shape[1]
    if k == 1:
        return list(signature.index)
    c = float(values.mean()) if pseudocount is None else float(pseudocount)
    if not np.isfinite(c) or c < 0:
        raise ValueError(f"pseudocount must be finite and >= 0, got {pseudocount}")
    order = np.sort(values, axis=1)
    top = np.argmax(values, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        fold = (order[:, -1] + c) / (order[:, -2] + c)
    fold = np.where(order[:, -1] <= 0, 0.0, np.nan_to_num(fold, nan=0.0, posinf=np.inf))
    keep = np.zeros(values.shape[0], dtype=bool)
    for t in range(k):
        idx = np.flatnonzero(top == t)
        idx = idx[np.argsort(-fold[idx], kind="stable")]
        n_pass = int(np.count_nonzero(fold[idx] >= min_fold_change))
        n_keep = min(n_markers, max(n_pass, min_per_type))
        keep[idx[:n_keep]] = True
    return [g for g, k_ in zip(signature.index, keep) if k_]


def _choose_genes(signature, genes, n_markers, min_fold_change):
    """Apply the ``genes=`` option to the matched signature; return the gene list."""
    k = signature.shape[1]
    if isinstance(genes, str):
        if genes == "all":
            return list(signature.index)
        if genes == "markers" or (
            genes == "auto" and signature.shape[0] > CURATED_GENES_PER_TYPE * k
        ):
            return select_marker_genes(
                signature, n_markers=n_markers, min_fold_change=min_fold_change
            )
        if genes == "auto":
            return list(signature.index)
        raise ValueError(
            f"genes must be 'auto', 'markers', 'all' or a list of gene names, got {genes!r}"
        )
    wanted = [str(g) for g in genes]
    present = signature.index.intersection(pd.Index(wanted))
    if len(present) < k:
        raise ValueError(
            f"only {len(present)} of the {len(wanted)} genes given in genes= are among the "
            f"genes common to bulk and signature; at least {k} (one per cell type) are needed"
        )
    return [g for g in signature.index if g in set(present)]


# ---------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------


class _Progress:
    """A minimal progress bar on stderr (no dependency), shown only when enabled."""

    def __init__(self, total, enabled, label="deconvolve"):
        self.total = total
        self.enabled = enabled
        self.label = label
        self.done = 0
        self.start = time.perf_counter()

    def update(self, n):
        self.done += n
        if not self.enabled:
            return
        frac = self.done / max(self.total, 1)
        width = 30
        bar = "#" * int(round(frac * width))
        elapsed = time.perf_counter() - self.start
        sys.stderr.write(
            f"\r{self.label}: |{bar:<{width}}| {self.done}/{self.total} samples "
            f"[{elapsed:.1f} s]"
        )
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _progress_enabled(progress, n_samples):
    if progress is None:
        try:
            tty = sys.stderr.isatty()
        except (AttributeError, ValueError):
            tty = False
        return tty and n_samples > _BLOCK
    return bool(progress)


# ---------------------------------------------------------------------------
# solving
# ---------------------------------------------------------------------------


def _solve(S, B, w, method, loss, max_reweight, reweight_tol, n_jobs, max_iter, tol):
    """One batched call of the core solver for the columns of B with gene weights w."""
    from fastdeconv.solvers import nnls, simplex_lstsq

    options = dict(
        weights=w, loss=loss, max_reweight=max_reweight, reweight_tol=reweight_tol,
        n_jobs=n_jobs, return_info=True, max_iter=max_iter, tol=tol,
    )
    if method in ("simplex", "simplex_le"):
        return simplex_lstsq(S, B, constraint="eq" if method == "simplex" else "le", **options)
    return nnls(S, B, **options)


def _huber_gene_weights(S, B, X, w0):
    """The Huber weights of the last re-weighting round, genes x samples (vectorised)."""
    sw0 = 1.0 if w0 is None else np.sqrt(w0)[:, None]
    resid = np.abs(B - S @ X[: S.shape[1]]) * sw0
    scale = MAD_TO_SD * np.median(resid, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        hw = np.where(resid <= HUBER_C * scale, 1.0, HUBER_C * scale / resid)
    hw[:, ~(scale > 0)] = 1.0
    return hw if w0 is None else hw * w0[:, None]


def _fit_block(S, B, w0, method, robust, max_reweight, reweight_tol, n_jobs, max_iter, tol):
    """Solve a block of samples; return X (k x m), converged, n_iter, rounds, gene weights (n x m).

    The Huber loss runs inside the core solver (IRLS in a Numba kernel, all
    samples in parallel threads); only the final weights are recomputed here.
    """
    loss = "huber" if robust == "huber" else "squared"
    X, info = _solve(S, B, w0, method, loss, max_reweight, reweight_tol, n_jobs, max_iter, tol)
    if robust == "huber":
        W = _huber_gene_weights(S, B, X, w0)
    else:
        # a read-only view: the caller copies it into its genes x samples table
        W = np.broadcast_to((np.ones(S.shape[0]) if w0 is None else w0)[:, None], B.shape)
    return X, info.converged.copy(), info.n_iter.copy(), info.n_reweight.copy(), W


def _fit_statistics(S, B, X, block=1024):
    """Residual norm, RMSE, R^2 and Pearson r of B against the reconstruction S X.

    Computed over blocks of samples, so the temporaries stay cache-sized instead of
    several genes x samples arrays.
    """
    n, m = B.shape
    rss, tss, cross, rr = (np.empty(m) for _ in range(4))
    for j0 in range(0, m, block):
        j1 = min(j0 + block, m)
        Bj = B[:, j0:j1]
        R = S @ X[:, j0:j1]
        resid = Bj - R
        rss[j0:j1] = np.einsum("ij,ij->j", resid, resid)
        Bc = Bj - Bj.mean(axis=0)
        R -= R.mean(axis=0)
        tss[j0:j1] = np.einsum("ij,ij->j", Bc, Bc)
        cross[j0:j1] = np.einsum("ij,ij->j", Bc, R)
        rr[j0:j1] = np.einsum("ij,ij->j", R, R)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(tss > 0, 1.0 - rss / np.where(tss > 0, tss, 1.0), np.nan)
        pearson = cross / np.sqrt(tss * rr)
    return np.sqrt(rss), np.sqrt(rss / n), r2, pearson


def _unlog(df, scale, name):
    if scale == "log2":
        return 2.0**df
    if scale == "log2p1":
        return 2.0**df - 1.0
    return df


def _prepare(obj, name, genes, columns, layer, scale, case_insensitive, strip_version, duplicates):
    if scale not in _SCALES:
        raise ValueError(f"{name} scale must be one of {_SCALES}, got {scale!r}")
    df = as_expression_frame(obj, name=name, genes=genes, columns=columns, layer=layer)
    if scale in ("log2", "log2p1"):
        # log2 values below 0 (expression below 1) are legitimate; NaN/inf are not
        check_expression(df.clip(lower=0) if scale == "log2" else df, name=name, allow_log=True)
        df = _unlog(df, scale, name)
        check_expression(df, name=f"{name} (un-logged)", allow_log=True)  # overflow to inf
    else:
        check_expression(df, name=name, allow_log=scale == "linear")
    return harmonize_genes(
        df, name=name, case_insensitive=case_insensitive, strip_version=strip_version,
        duplicates=duplicates,
    )


# ---------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------


def deconvolve(
    bulk,
    signature,
    method="nnls",
    *,
    weights=None,
    genes="auto",
    n_markers=100,
    min_fold_change=2.0,
    robust="huber",
    background=None,
    max_reweight=500,
    reweight_tol=1e-5,
    scale="auto",
    signature_scale="auto",
    case_insensitive=False,
    strip_version=False,
    duplicates="raise",
    min_genes=None,
    layer=None,
    bulk_genes=None,
    signature_genes=None,
    cell_types=None,
    n_jobs=None,
    progress=None,
    max_iter=None,
    tol=None,
):
    """Estimate cell-type proportions of bulk samples from a signature.

    Solves ``bulk ~ signature @ P`` sample by sample, ``P >= 0``, with the
    exact solvers :func:`fastdeconv.nnls` and :func:`fastdeconv.simplex_lstsq`,
    after matching genes by name, checking the inputs and selecting
    informative genes.  Everything is on the linear scale; nothing is
    log-transformed inside.

    Parameters
    ----------
    bulk : DataFrame, ndarray, AnnData or path
        Bulk expression, genes x samples (AnnData: samples x genes). See
        :func:`fastdeconv.inputs.as_expression_frame`.
    signature : DataFrame, ndarray, AnnData or path
        Reference profiles, genes x cell types (AnnData: cell types x genes),
        on the same linear scale as the bulk.
    method : {"nnls", "simplex", "wls", "simplex_le"}, default "nnls"
        ``"nnls"``: non-negative least squares; the raw coefficients are kept
        in ``.coefficients`` and the proportions are them divided by their
        sum (scale-free: bulk and signature may differ by a factor per
        sample, as they do across platforms or normalisations).
        ``"simplex"``: exact sum-to-one constraint (bulk and signature must be
        on the same scale).  ``"wls"``: NNLS with the per-gene ``weights``
        (required), normalised like ``"nnls"``.  ``"simplex_le"``: sum at most
        one; the remainder ``1 - sum(p)`` is reported as an extra column
        ``"unexplained"`` (cells the signature does not describe, EPIC's
        "other cells").
    weights : array_like or pandas.Series, optional
        Non-negative per-gene weights, minimising ``sum_g w_g (S p - b)_g^2``;
        a Series is matched by gene name (genes without a weight get 0), an
        array must have one weight per *signature* gene (in signature order).
        Accepted by every method; required by ``"wls"``.
    genes : {"auto", "markers", "all"} or list of str, default "auto"
        Genes used in the fit, among those common to bulk and signature.
        ``"markers"``: :func:`select_marker_genes` (at most ``n_markers``
        type-specific genes per cell type).  ``"auto"``: markers when the
        signature has more than 200 genes per cell type (a whole-transcriptome
        reference), else all its genes (it already is a curated signature
        matrix such as LM22: CIBERSORT's builder keeps 50-200 genes per type).
        ``"all"``: every common gene.  A list uses exactly those genes.
    n_markers : int, default 100
        Marker genes per cell type for ``genes="auto"``/``"markers"``.
    min_fold_change : float, default 2.0
        Fold change over the second-highest type required of a marker.
    robust : {"huber", None}, default "huber"
        ``"huber"``: iteratively re-weighted least squares with Huber's loss
        (constant 1.345, residuals scaled by their median absolute deviation),
        so that genes that fit badly -- cross-hybridisation, platform or
        batch effects, genes of cells missing from the signature -- lose
        influence instead of pulling every proportion.  Each re-weighted
        problem is solved exactly by the core solver.  ``None``: plain
        (weighted) least squares.
    background : bool, optional
        Fit a non-negative constant background level per sample alongside
        the cell types (a column of ones in the signature): the additive
        floor of microarray intensities and of noisy low counts, which a
        signature of purified cells does not share, would otherwise be
        explained by spurious fractions of cell types.  The level is
        reported in ``.fit["background"]`` and is not a proportion.  Default:
        on for ``"nnls"`` and ``"wls"``; not available for the simplex
        methods (the sum constraint would include it).
    max_reweight : int, default 500
        Most re-weighting rounds per sample (robust fits).
    reweight_tol : float, default 1e-5
        Stop re-weighting when no coefficient changes by more than this
        fraction of the largest.
    scale : {"auto", "linear", "log2", "log2p1"}, default "auto"
        Scale of the bulk.  ``"auto"`` refuses data that look log-transformed
        (maximum below 50 with non-integer values); ``"linear"`` asserts the
        linear scale (skips that check); ``"log2"``/``"log2p1"`` un-log with
        ``2**x`` / ``2**x - 1`` first.
    signature_scale : {"auto", "linear", "log2", "log2p1"}, default "auto"
        The same for the signature.
    case_insensitive : bool, default False
        Match gene names ignoring case.
    strip_version : bool, default False
        Drop Ensembl version suffixes (``ENSG00000010610.12`` -> ``ENSG00000010610``).
    duplicates : {"raise", "sum"}, default "raise"
        Duplicated gene names: raise, or add their rows up.
    min_genes : int, optional
        Fewest common genes accepted (default: ``max(2 k, 50)`` and at least
        half of the signature; see :func:`fastdeconv.inputs.match_genes`).
    layer : str, optional
        AnnData layer of the bulk to use instead of ``.X``.
    bulk_genes, signature_genes : sequence of str, optional
        Gene names for array input.
    cell_types : sequence of str, optional
        Cell-type names for array signatures.
    n_jobs : int, optional
        Worker threads of the solver (default: all cores).
    progress : bool, optional
        Progress bar on stderr; default: shown when stderr is a terminal and
        there are more than 256 samples.
    max_iter, tol : optional
        Passed to the core solver (active-set iteration cap and tolerance).

    Returns
    -------
    DeconvolutionResult
        ``.proportions`` (samples x cell types), ``.fit`` (per-sample residual
        norm, RMSE, R^2, Pearson r, convergence), ``.coefficients``,
        ``.genes_used``, ``.gene_match``, ``.gene_weights``, summary and plots.

    Raises
    ------
    ValueError
        On NaN/inf, negative or log-looking input, duplicated gene names
        (``duplicates="raise"``), too few common genes, or invalid options;
        every message says what to change.
    TypeError
        On unsupported input types.

    Warns
    -----
    UserWarning
        When samples are all zero on the genes used, or (NNLS) explained by no
        cell type at all -- their proportions are NaN -- or when the signature
        is badly conditioned (naming the nearly collinear cell types).

    See Also
    --------
    fastdeconv.nnls, fastdeconv.simplex_lstsq : the solvers.
    fastdeconv.evaluate : accuracy against known proportions.

    Notes
    -----
    The defaults (NNLS normalised to sum one, marker genes for
    whole-transcriptome references, Huber re-weighting) and the reasons for
    them are described in the user guide; their accuracy on real mixtures
    with known proportions is on the accuracy page
    (``benchmarks/accuracy_reference.py`` reproduces it).

    References
    ----------
    .. [1] Huber P. J. (1964) Robust estimation of a location parameter. Ann Math
       Statist 35(1):73-101. doi:10.1214/aoms/1177703732
    .. [2] Lawson C. L., Hanson R. J. (1974) Solving Least Squares Problems.
       Prentice-Hall (NNLS).
    .. [3] Racle J. et al. (2017) Simultaneous enumeration of cancer and immune cell
       types from bulk tumor gene expression data. eLife 6:e26476.
       doi:10.7554/eLife.26476 (EPIC; the "other cells" fraction)
    .. [4] Newman A. M. et al. (2015) Robust enumeration of cell subsets from tissue
       expression profiles. Nat Methods 12:453-457. doi:10.1038/nmeth.3337

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import fastdeconv
    >>> rng = np.random.default_rng(0)
    >>> genes = [f"g{i}" for i in range(100)]
    >>> sig = pd.DataFrame(rng.gamma(1.0, 200.0, size=(100, 3)), index=genes,
    ...                    columns=["T cells", "B cells", "Monocytes"])
    >>> truth = np.array([[0.6, 0.1], [0.3, 0.2], [0.1, 0.7]])
    >>> bulk = pd.DataFrame(sig.to_numpy() @ truth, index=genes, columns=["s1", "s2"])
    >>> result = fastdeconv.deconvolve(bulk, sig)
    >>> result.proportions.round(3)
         T cells  B cells  Monocytes
    s1       0.6      0.3        0.1
    s2       0.1      0.2        0.7
    >>> bool(result.fit["converged"].all())
    True
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if robust not in ("huber", None):
        raise ValueError(f"robust must be 'huber' or None, got {robust!r}")
    if method == "wls" and weights is None:
        raise ValueError("method='wls' needs per-gene weights: pass weights= (one per gene)")
    if background is None:
        background = method in ("nnls", "wls")
    elif background and method not in ("nnls", "wls"):
        raise ValueError(
            f"background=True needs method 'nnls' or 'wls' (the sum constraint of {method!r} "
            "would include the background); use method='nnls' or background=False"
        )
    if max_reweight < 0:
        raise ValueError(f"max_reweight must be >= 0, got {max_reweight}")
    options = dict(
        method=method, genes=genes if isinstance(genes, str) else f"{len(genes)} given",
        n_markers=n_markers, min_fold_change=min_fold_change, robust=robust,
        background=bool(background),
    )

    B_df = _prepare(bulk, "bulk", bulk_genes, None, layer, scale, case_insensitive,
                    strip_version, duplicates)
    S_df = _prepare(signature, "signature", signature_genes, cell_types, None, signature_scale,
                    case_insensitive, strip_version, duplicates)
    if isinstance(weights, pd.Series):
        weights = weights.set_axis(
            harmonize_genes(weights.to_frame(), name="weights", case_insensitive=case_insensitive,
                            strip_version=strip_version, duplicates="raise").index
        )
        w_full = weights.reindex(S_df.index).fillna(0.0)
    elif weights is not None:
        w_arr = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w_arr.shape[0] != S_df.shape[0]:
            raise ValueError(
                f"weights has {w_arr.shape[0]} entries but the signature has {S_df.shape[0]} "
                "genes; pass one weight per signature gene, or a pandas Series indexed by gene"
            )
        w_full = pd.Series(w_arr, index=S_df.index)
    if weights is not None:
        if not np.all(np.isfinite(w_full.to_numpy())) or (w_full.to_numpy() < 0).any():
            raise ValueError("weights must be finite and non-negative")

    B_m, S_m, gene_match = match_genes(B_df, S_df, min_genes=min_genes)
    used = _choose_genes(S_m, genes, n_markers, min_fold_change)
    S_u = S_m.loc[used]
    B_u = B_m.loc[used]
    warn_if_collinear(S_u)

    S = np.ascontiguousarray(S_u.to_numpy(dtype=np.float64))
    B = np.ascontiguousarray(B_u.to_numpy(dtype=np.float64))
    w0 = None
    if weights is not None:
        w0 = np.ascontiguousarray(w_full.loc[used].to_numpy(dtype=np.float64))
        if not np.any(w0 > 0):
            raise ValueError("all weights of the genes used are zero")
    n, m = B.shape
    k = S.shape[1]
    S_fit = S
    if background:
        # constant column at the signature's mean level: coefficient * level = background
        level = float(S.mean()) if S.mean() > 0 else 1.0
        S_fit = np.ascontiguousarray(np.column_stack([S, np.full(n, level)]))

    zero = ~np.any(B > 0, axis=0)
    X = np.full((S_fit.shape[1], m), np.nan)
    converged = np.zeros(m, dtype=bool)
    n_solver = np.zeros(m, dtype=np.int64)
    n_re = np.zeros(m, dtype=np.int64)
    gene_w = np.zeros((n, m))
    live = np.flatnonzero(~zero)
    bar = _Progress(m, _progress_enabled(progress, m))
    try:
        bar.update(int(zero.sum()))
        for start in range(0, live.size, _BLOCK):
            cols = live[start:start + _BLOCK]
            Xb, cb, nb, rb, Wb = _fit_block(
                S_fit, B[:, cols], w0, method, robust, max_reweight, reweight_tol, n_jobs,
                max_iter, tol,
            )
            X[:, cols] = Xb
            converged[cols] = cb
            n_solver[cols] = nb
            n_re[cols] = rb
            gene_w[:, cols] = Wb
            bar.update(cols.size)
    finally:
        bar.close()
    if zero.any():
        names = [str(B_u.columns[j]) for j in np.flatnonzero(zero)]
        warnings.warn(
            f"{len(names)} sample(s) are zero on all {n} genes used (first: {names[:5]}); "
            "their proportions are NaN",
            UserWarning,
            stacklevel=2,
        )
        gene_w[:, zero] = np.nan

    resid_norm, rmse, r2, pearson = _fit_statistics(S_fit, B, np.nan_to_num(X))
    bg = X[k] * level if background else np.zeros(m)
    X = X[:k]
    coef = pd.DataFrame(X.T, index=B_u.columns, columns=S_u.columns)
    total = X.sum(axis=0)
    if method in ("nnls", "wls"):
        with np.errstate(invalid="ignore", divide="ignore"):
            P = X / total
        # no cell type explains the sample: the cell-type part of the fit is
        # at rounding level next to the bulk (e.g. a background-only sample)
        # ||S x||^2 from the Gram form (k x k per sample) and ||b||^2 without temporaries
        Xf = np.nan_to_num(X)
        explained2 = np.einsum("ij,ij->j", Xf, (S.T @ S) @ Xf)
        none = np.sqrt(np.maximum(explained2, 0.0)) <= 1e-9 * np.sqrt(np.einsum("ij,ij->j", B, B))
        empty = none & ~zero
        P[:, none] = np.nan
        props = pd.DataFrame(P.T, index=B_u.columns, columns=S_u.columns)
        if empty.any():
            names = [str(B_u.columns[j]) for j in np.flatnonzero(empty)]
            warnings.warn(
                f"{len(names)} sample(s) are explained by no cell type (all coefficients 0, "
                f"first: {names[:5]}); their proportions are NaN. The bulk may not match the "
                "signature (other genes, other cell types, or background only)",
                UserWarning,
                stacklevel=2,
            )
    else:
        props = coef.copy()
        if method == "simplex_le":
            props[UNEXPLAINED] = np.clip(1.0 - total, 0.0, 1.0)
    fit = pd.DataFrame(
        {
            "residual_norm": resid_norm,
            "rmse": rmse,
            "r2": r2,
            "pearson_r": pearson,
            "converged": converged,
            "total": total,
            "background": bg,
            "n_iter": n_solver,
            "n_reweight": n_re,
        },
        index=B_u.columns,
    )
    fit.loc[zero, ["residual_norm", "rmse", "r2", "pearson_r"]] = np.nan
    return DeconvolutionResult(
        proportions=props,
        coefficients=coef,
        fit=fit,
        genes_used=list(used),
        gene_match=gene_match,
        gene_weights=pd.DataFrame(gene_w, index=used, columns=B_u.columns),
        method=method,
        options=options,
    )


# ---------------------------------------------------------------------------
# RNA fractions -> cell fractions
# ---------------------------------------------------------------------------


def _rna_content_series(rna_content, types):
    """Validated RNA content per type (a float Series over ``types``)."""
    if isinstance(rna_content, pd.DataFrame):
        if rna_content.shape[1] != 1:
            raise ValueError(
                "rna_content must be one value per cell type (a Series, a dict or a one-column "
                f"table), got a table with {rna_content.shape[1]} columns"
            )
        rna_content = rna_content.iloc[:, 0]
    content = pd.Series(rna_content)
    missing = [t for t in types if t not in content.index]
    if missing:
        raise ValueError(
            f"rna_content has no value for the cell type(s) {missing[:6]}; give every column of "
            f"the proportions a content (it has {list(content.index[:6])})"
        )
    try:
        values = content.loc[list(types)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("rna_content must be numeric") from None
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        raise ValueError(
            "rna_content must be finite and positive (it is a ratio of RNA per cell), got "
            f"{dict(zip(np.asarray(types)[bad][:6], values[bad][:6], strict=False))}"
        )
    return pd.Series(values, index=list(types), name="rna_content")


def to_cell_fractions(proportions, rna_content):
    """Convert fractions of RNA into fractions of cells.

    A signature of expression per unit of RNA (CPM, TPM, normalised array
    intensities) fitted to a bulk sample estimates each type's share of the
    sample's RNA.  Cell types differ in RNA per cell (monocytes and cell lines
    of myeloid origin carry more than lymphocytes), so when the quantity of
    interest is the share of *cells*, each RNA fraction has to be divided by
    its type's RNA content and the row renormalised:
    ``f_t = (r_t / c_t) / sum_u (r_u / c_u)``.  Only the ratios of the
    contents matter.  No fit to mixtures can estimate these contents (any set
    of contents explains the bulk equally well); they come from outside: the
    library sizes of a single-cell reference
    (:attr:`fastdeconv.SignatureResult.rna_content`), published measurements,
    or a calibration on mixtures of known composition
    (:func:`fastdeconv.metrics.fit_rna_content`).

    Parameters
    ----------
    proportions : pandas.DataFrame
        Samples x types, e.g. ``deconvolve(...).proportions``.
    rna_content : dict, pandas.Series or one-column DataFrame
        RNA per cell of every type in ``proportions`` (any unit; extra types
        are ignored).  Must be finite and positive.

    Returns
    -------
    pandas.DataFrame
        Samples x types, rows summing to 1 (rows that were all 0 stay 0,
        rows with NaN stay NaN).

    Raises
    ------
    ValueError
        When a type has no content, or a content is not finite and positive.

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv import to_cell_fractions
    >>> rna = pd.DataFrame({"T": [0.5], "Mono": [0.5]}, index=["s1"])
    >>> to_cell_fractions(rna, {"T": 1.0, "Mono": 3.0})
           T  Mono
    s1  0.75  0.25
    """
    p = pd.DataFrame(proportions)
    content = _rna_content_series(rna_content, p.columns)
    f = p / content.to_numpy()[None, :]
    total = f.sum(axis=1, min_count=1)
    return f.div(total.where(total != 0, 1.0), axis=0)


@dataclass
class DeconvolutionResult:
    """Result of :func:`deconvolve`.

    Attributes
    ----------
    proportions : pandas.DataFrame
        Samples x cell types; rows sum to 1 (NaN rows for all-zero samples).
        With ``method="simplex_le"`` an extra column ``"unexplained"`` holds
        ``1 - sum`` of the cell-type fractions.
    coefficients : pandas.DataFrame
        Samples x cell types, the raw solver output (for NNLS not normalised;
        the same as the proportions otherwise).  The background level, when
        fitted, is not among them (see ``fit``).
    fit : pandas.DataFrame
        Per sample: ``residual_norm`` (``||b - S x||_2`` over the genes used,
        unweighted), ``rmse`` (that divided by ``sqrt(n_genes)``), ``r2``
        (``1 - RSS / TSS``), ``pearson_r`` (observed bulk vs the
        reconstruction ``S x``), ``converged`` (the solver's KKT flag, and for
        robust fits that the re-weighting settled), ``total`` (sum of the
        coefficients: the scale of the bulk relative to the signature for
        NNLS), ``background`` (the fitted constant background level, 0 when
        not fitted), ``n_iter`` (solver iterations, last solve) and ``n_reweight``
        (robust re-weighting rounds).
    genes_used : list of str
        Genes entering the fit.
    gene_match : fastdeconv.inputs.GeneMatch
        How many signature genes matched the bulk and which are missing.
    gene_weights : pandas.DataFrame
        Genes used x samples: the final weight of each gene in each fit (user
        weights times robust weights; 1 without either).  Genes with small
        weights fitted badly.
    method : str
        The method used.
    options : dict
        The gene-selection and robustness options used.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import fastdeconv
    >>> rng = np.random.default_rng(1)
    >>> genes = [f"g{i}" for i in range(80)]
    >>> sig = pd.DataFrame(rng.gamma(1.0, 100.0, size=(80, 2)), index=genes, columns=["A", "B"])
    >>> bulk = pd.DataFrame(sig.to_numpy() @ [[0.25], [0.75]], index=genes, columns=["s"])
    >>> res = fastdeconv.deconvolve(bulk, sig, method="simplex")
    >>> print(res.proportions.round(2).to_string())
          A     B
    s  0.25  0.75
    """

    proportions: pd.DataFrame
    coefficients: pd.DataFrame
    fit: pd.DataFrame
    genes_used: list
    gene_match: object
    gene_weights: pd.DataFrame
    method: str
    options: dict = field(default_factory=dict)

    def to_cell_fractions(self, rna_content):
        """The proportions as fractions of cells instead of fractions of RNA.

        See :func:`fastdeconv.to_cell_fractions`; with ``method="simplex_le"``
        the ``"unexplained"`` column needs a content too (or use another
        method).

        Parameters
        ----------
        rna_content : dict, pandas.Series or one-column DataFrame
            RNA per cell of every cell type (any unit).

        Returns
        -------
        pandas.DataFrame
            Samples x cell types, rows summing to 1.

        Examples
        --------
        >>> import pandas as pd, fastdeconv
        >>> sig = pd.DataFrame({"A": [900.0, 100.0, 500.0], "B": [100.0, 900.0, 500.0]},
        ...                    index=["x", "y", "z"])
        >>> bulk = pd.DataFrame({"s": sig @ [0.4, 0.6]})  # 40 % of the RNA is A's
        >>> res = fastdeconv.deconvolve(bulk, sig, method="simplex", min_genes=3)
        >>> res.to_cell_fractions({"A": 2.0, "B": 1.0}).round(2)  # A cells carry twice the RNA
              A     B
        s  0.25  0.75
        """
        return to_cell_fractions(self.proportions, rna_content)

    def summary(self):
        """Return a readable summary of the result.

        Returns
        -------
        str
            Method, genes, fit quality and mean proportions.

        Examples
        --------
        >>> import numpy as np, pandas as pd, fastdeconv
        >>> genes = [f"g{i}" for i in range(60)]
        >>> sig = pd.DataFrame(np.random.default_rng(2).gamma(1.0, 100.0, (60, 2)),
        ...                    index=genes, columns=["A", "B"])
        >>> bulk = pd.DataFrame(sig.to_numpy() @ [[0.5], [0.5]], index=genes, columns=["s"])
        >>> print(fastdeconv.deconvolve(bulk, sig).summary().splitlines()[0])
        Deconvolution of 1 sample(s) into 2 cell types (method 'nnls', robust 'huber')
        """
        m, k = self.coefficients.shape
        fit = self.fit
        ok = fit["pearson_r"].notna()
        lines = [
            f"Deconvolution of {m} sample(s) into {k} cell types "
            f"(method {self.method!r}, robust {self.options.get('robust')!r})",
            f"Genes: {self.gene_match}; {len(self.genes_used)} used in the fit "
            f"(selection {self.options.get('genes')!r})",
        ]
        if ok.any():
            lines.append(
                "Fit (median over samples): Pearson r {:.4f}, R^2 {:.4f}, RMSE {:.4g}; "
                "{} of {} converged".format(
                    fit.loc[ok, "pearson_r"].median(), fit.loc[ok, "r2"].median(),
                    fit.loc[ok, "rmse"].median(), int(fit["converged"].sum()), m,
                )
            )
        if (~ok).any():
            lines.append(f"{int((~ok).sum())} sample(s) all zero on the genes used: proportions NaN")
        mean = self.proportions.mean(axis=0).sort_values(ascending=False)
        lines.append("Mean proportions:")
        width = max(len(str(c)) for c in mean.index)
        lines.extend(f"  {str(c):<{width}}  {v:.4f}" for c, v in mean.items())
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def to_frame(self):
        """Proportions and fit diagnostics side by side, one row per sample.

        Returns
        -------
        pandas.DataFrame
            The proportion columns followed by the :attr:`fit` columns.

        Examples
        --------
        >>> import numpy as np, pandas as pd, fastdeconv
        >>> genes = [f"g{i}" for i in range(60)]
        >>> sig = pd.DataFrame(np.random.default_rng(3).gamma(1.0, 100.0, (60, 2)),
        ...                    index=genes, columns=["A", "B"])
        >>> bulk = pd.DataFrame(sig.to_numpy() @ [[0.3], [0.7]], index=genes, columns=["s"])
        >>> list(fastdeconv.deconvolve(bulk, sig).to_frame().columns[:4])
        ['A', 'B', 'residual_norm', 'rmse']
        """
        return pd.concat([self.proportions, self.fit], axis=1)

    def write(self, path, *, fit_path=None):
        """Write the proportions (and optionally the fit table) atomically.

        Parameters
        ----------
        path : str or os.PathLike
            Proportions table (samples x types), ``.tsv``/``.csv``, optionally ``.gz``.
        fit_path : str or os.PathLike, optional
            Where to write the per-sample fit table.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np, pandas as pd, fastdeconv
        >>> genes = [f"g{i}" for i in range(60)]
        >>> sig = pd.DataFrame(np.random.default_rng(4).gamma(1.0, 100.0, (60, 2)),
        ...                    index=genes, columns=["A", "B"])
        >>> bulk = pd.DataFrame(sig.to_numpy() @ [[0.3], [0.7]], index=genes, columns=["s"])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     fastdeconv.deconvolve(bulk, sig).write(os.path.join(d, "p.tsv"))
        ...     print(fastdeconv.read_table(os.path.join(d, "p.tsv")).round(2).to_string())
                  A    B
        sample
        s       0.3  0.7
        """
        from fastdeconv.io import write_table

        write_table(self.proportions, path, index_label="sample")
        if fit_path is not None:
            write_table(self.fit, fit_path, index_label="sample")

    def plot_proportions(self, path=None, **kwargs):
        """Stacked bars of the proportions (see :func:`fastdeconv.plotting.plot_proportions`).

        Parameters
        ----------
        path : str or os.PathLike, optional
            Save the figure there.
        **kwargs
            Passed to :func:`fastdeconv.plotting.plot_proportions`.

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import numpy as np, pandas as pd, fastdeconv
        >>> genes = [f"g{i}" for i in range(60)]
        >>> sig = pd.DataFrame(np.random.default_rng(5).gamma(1.0, 100.0, (60, 2)),
        ...                    index=genes, columns=["A", "B"])
        >>> bulk = pd.DataFrame(sig.to_numpy() @ [[0.3], [0.7]], index=genes, columns=["s"])
        >>> fig = fastdeconv.deconvolve(bulk, sig).plot_proportions()
        """
        from fastdeconv.plotting import plot_proportions

        return plot_proportions(self.proportions, path=path, **kwargs)

    def plot_fit(self, path=None):
        """Per-sample fit diagnostics (see :func:`fastdeconv.plotting.plot_fit_quality`).

        Parameters
        ----------
        path : str or os.PathLike, optional
            Save the figure there.

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import numpy as np, pandas as pd, fastdeconv
        >>> genes = [f"g{i}" for i in range(60)]
        >>> sig = pd.DataFrame(np.random.default_rng(6).gamma(1.0, 100.0, (60, 2)),
        ...                    index=genes, columns=["A", "B"])
        >>> bulk = pd.DataFrame(sig.to_numpy() @ [[0.3], [0.7]], index=genes, columns=["s"])
        >>> fig = fastdeconv.deconvolve(bulk, sig).plot_fit()
        """
        from fastdeconv.plotting import plot_fit_quality

        return plot_fit_quality(self.fit, path=path)
