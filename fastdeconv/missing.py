"""Cell types missing from the reference: the unexplained fraction and the residual report.

A signature describes the cell types it has; a bulk sample may hold others
(tumour cells, a lineage the reference left out).  Their RNA is then either
spread over the reference types, inflating them, or left unexplained.  This
module estimates how much of each sample the reference cannot explain and
which genes, and which cell type, point to what is missing.

The unexplained fraction
------------------------
Every bulk sample and every signature column is first divided by its total
over all genes common to both, so that a sample is ``b = S p + f m`` with
``sum(p) + f = 1``: ``p`` are the RNA shares of the reference types, ``m`` the
(normalised) profile of the missing cells and ``f`` their RNA share.  A
sample-by-sample fit with ``sum(p) <= 1`` (EPIC's "other cells", ``method=
"simplex_le"``) cannot tell ``f`` from the part of ``m`` that the reference
types imitate, and on single-cell pseudo-bulks it returns almost nothing
unexplained (``benchmarks/accuracy_missing.py``).  Across samples, however,
the missing cells leave the same profile ``m`` in every sample, scaled by
``f``: a rank-one term.  :func:`fit_unexplained` fits it jointly,

``min sum_g rho(||B_g - S_g P - m_g f'|| / s)`` over ``P >= 0``, ``f >= 0``,
``sum(P_j) + f_j <= 1``, ``m >= 0``, ``sum(m) = 1``,

by alternating an exact simplex-constrained fit of every sample on the
signature plus the current ``m`` (:func:`fastdeconv.solvers._core.solve`) and
the closed-form non-negative update of ``m`` given ``P`` and ``f``.  With
``robust="huber"`` ``rho`` is Huber's function of each gene's residual norm
across samples (scale ``s``: the median gene's), so genes that no single
profile explains -- clonal immunoglobulin genes, platform effects -- lose
weight in every sample at once (an iteratively re-weighted fit with one weight
per gene).  The unexplained fraction is ``1 - sum(P_j)``, calibrated by the
normalisation: an RNA share of the sample.

It needs several samples whose missing share varies (at least
``MIN_SAMPLES``); with fewer, ``model="auto"`` falls back to the per-sample fit
(and says so in the notes).  A missing type that is a sibling of a reference
type (CD8 T cells missing beside CD4 T cells) is largely absorbed by its
sibling: its share goes to the sibling, not to the unexplained fraction.

The residual report
-------------------
:func:`residual_report` ranks every common gene by how consistently the
fitted proportions under-explain it across samples (the median over samples of
``log2((observed + c) / (explained + c))``, ``c`` the median expressed value),
and tests the top genes for enrichment in marker lists -- the packaged
canonical markers of common human cell types (:func:`canonical_markers`) and
any the user gives -- with a hypergeometric test, naming the overlapping genes.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from fastdeconv.missing import unexplained_fraction
>>> rng = np.random.default_rng(0)
>>> genes = [f"g{i}" for i in range(300)]
>>> S = rng.gamma(0.5, 100.0, size=(300, 4))
>>> sig = pd.DataFrame(S[:, :3], index=genes, columns=["A", "B", "C"])
>>> f = np.linspace(0.0, 0.4, 12)                      # share of the missing type "D"
>>> P = rng.dirichlet(np.ones(3), size=12).T * (1 - f)
>>> Sn = S / S.sum(axis=0)
>>> bulk = pd.DataFrame(1e6 * (Sn[:, :3] @ P + np.outer(Sn[:, 3], f)), index=genes)
>>> res = unexplained_fraction(sig, bulk, robust=None, tol=1e-7)
>>> bool(np.allclose(res.fraction, f, atol=1e-3))
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fastdeconv._checks import check_choice, check_float, check_int
from fastdeconv.results import Result

__all__ = [
    "unexplained_fraction",
    "residual_report",
    "UnexplainedFraction",
    "ResidualReport",
    "canonical_markers",
    "fit_unexplained",
    "UnexplainedFit",
    "residual_statistics",
    "marker_enrichment",
    "MIN_SAMPLES",
    "MODELS",
]

#: Fewest samples for the joint (rank-one) model; ``model="auto"`` fits sample by sample below.
MIN_SAMPLES = 3
#: ``model=`` choices of :func:`unexplained_fraction`.
MODELS = ("auto", "joint", "per-sample")
#: ``robust=`` choices.
ROBUST = ("huber", None)
#: Smallest robust scale, as a share of the median gene's norm in the bulk (exact data: no
#: down-weighting).
SCALE_FLOOR = 0.01
#: A gene "under-explained" in a sample: observed more than twice what the fit explains.
UNDER_LOG2 = 1.0
#: ... in at least this share of samples, for a gene to be tested for marker enrichment.
MIN_UNDER = 0.5
#: Where the canonical marker table lives (package data).
MARKER_TABLE = "cell_markers.tsv"

# ---------------------------------------------------------------------------
# arrays: the pipeline's entry points
# ---------------------------------------------------------------------------


def _normalise(S, B):
    """Columns divided by their totals over the genes given; zero-total samples stay zero."""
    s_tot = S.sum(axis=0)
    b_tot = B.sum(axis=0)
    Sn = np.ascontiguousarray(S / s_tot)
    Bn = np.zeros_like(B, dtype=np.float64)
    ok = b_tot > 0
    Bn[:, ok] = B[:, ok] / b_tot[ok]
    return Sn, Bn, ok


@dataclass(frozen=True)
class UnexplainedFit:
    """Arrays of a fit of the unexplained fraction (see :func:`fit_unexplained`).

    Attributes
    ----------
    fraction : ndarray, shape (m,)
        ``1 - sum(P_j)``: the RNA share of sample ``j`` that the reference types
        do not explain (NaN for samples all zero on the genes).
    coefficients : ndarray, shape (k, m)
        ``P``: the reference types' RNA shares (columns sum to ``1 - fraction``).
    profile : ndarray, shape (n,)
        ``m``: the missing cells' profile, summing to 1 (zeros when nothing is
        missing or with the per-sample model).
    profile_share : ndarray, shape (m,)
        ``f``: the share fitted to the profile (``<= fraction``).
    gene_weights : ndarray, shape (n,)
        The robust weight of every gene (1 without ``robust``).
    n_iter : int
        Alternations of the joint model (0 for the per-sample model).
    converged : bool
        The fraction moved less than ``tol`` in the last alternation.
    model : str
        ``"joint"`` or ``"per-sample"``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.missing import fit_unexplained
    >>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0], [1.0, 1.0]])
    >>> fit = fit_unexplained(S, S @ [[0.3], [0.7]], model="per-sample")
    >>> fit.fraction.round(8).tolist(), fit.model
    ([0.0], 'per-sample')
    """

    fraction: np.ndarray
    coefficients: np.ndarray
    profile: np.ndarray
    profile_share: np.ndarray
    gene_weights: np.ndarray
    n_iter: int
    converged: bool
    model: str


def _gene_huber_weights(E, c, floor):
    """Huber weights of genes from their residual norms across samples.

    The scale is the median gene's residual norm, but at least ``floor`` (a
    small share of the median gene's norm in the bulk): a fit that explains
    the data exactly gives every gene weight 1, as least squares would.
    """
    norm = np.sqrt(np.einsum("ij,ij->i", E, E))
    scale = max(float(np.median(norm)), floor)
    if not scale > 0:
        return np.ones(E.shape[0])
    u = norm / (c * scale)
    return np.where(u > 1.0, 1.0 / np.maximum(u, 1.0), 1.0)


def fit_unexplained(S, B, *, fit_rows=None, robust="huber", model="auto", max_iter=300,
                    tol=1e-4, n_jobs=None):
    """Estimate the unexplained fraction from arrays on the common genes (trusted inputs).

    The pipeline's entry point: :func:`unexplained_fraction` checks and
    matches the tables, then calls this.

    Parameters
    ----------
    S : ndarray, shape (n, k)
        Signature on all genes common to bulk and signature, linear scale,
        finite, non-negative, every column with a positive total.
    B : ndarray, shape (n, m)
        Bulk on the same genes.
    fit_rows : array of int or bool, optional
        The genes (rows) fitted; default all.  The normalisation always uses
        every row.
    robust : {"huber", None}, default "huber"
        Gene-wise Huber weights (joint model) or per-sample Huber IRLS
        (per-sample model).
    model : {"auto", "joint", "per-sample"}, default "auto"
        ``"joint"``: the rank-one model of the missing cells across samples;
        ``"per-sample"``: EPIC's ``1 - sum(p)`` of a fit with ``sum(p) <= 1``;
        ``"auto"``: joint with at least :data:`MIN_SAMPLES` samples.
    max_iter : int, default 300
        Most alternations of the joint model.
    tol : float, default 1e-4
        Stop when no sample's fraction moves by more than this.
    n_jobs : int, optional
        Solver threads.

    Returns
    -------
    UnexplainedFit

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.missing import fit_unexplained
    >>> rng = np.random.default_rng(1)
    >>> full = rng.gamma(0.5, 1.0, size=(200, 3))
    >>> full /= full.sum(axis=0)
    >>> f = np.linspace(0, 0.5, 8)
    >>> a = rng.uniform(0.2, 0.8, 8)                  # the two reference types' split
    >>> B = full[:, :2] @ np.vstack([a * (1 - f), (1 - a) * (1 - f)]) + np.outer(full[:, 2], f)
    >>> fit = fit_unexplained(full[:, :2], B, robust=None, tol=1e-7)
    >>> bool(np.abs(fit.fraction - f).max() < 1e-3), fit.model
    (True, 'joint')
    """
    from fastdeconv.kernels.robust import DEFAULT_HUBER
    from fastdeconv.solvers._core import solve

    n, k = S.shape
    m = B.shape[1]
    Sn, Bn, ok = _normalise(np.asarray(S, dtype=np.float64), np.asarray(B, dtype=np.float64))
    if fit_rows is None:
        rows = np.arange(n)
    else:
        rows = np.asarray(fit_rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows
    Sf = np.ascontiguousarray(Sn[rows])
    Bf = np.ascontiguousarray(Bn[rows])
    if model == "auto":
        model = "joint" if int(ok.sum()) >= MIN_SAMPLES else "per-sample"
    huber = DEFAULT_HUBER if robust == "huber" and model == "per-sample" else None
    X, _ = solve(Sf, Bf, kind="simplex", slack=True, huber=huber, n_jobs=n_jobs)
    none = np.zeros(n)
    if model == "per-sample":
        frac = np.where(ok, np.clip(1.0 - X.sum(axis=0), 0.0, 1.0), np.nan)
        return UnexplainedFit(frac, X, none, np.zeros(m), np.ones(len(rows)), 0, True, model)

    # joint rank-one model: start from the positive residuals of the per-sample fit
    R = Bn - Sn @ X
    plain = np.maximum(R[:, ok], 0.0).mean(axis=1) if ok.any() else none.copy()
    if plain.sum() > 0:
        plain = plain / plain.sum()
    prof, previous, extrapolated = plain, plain, False
    w = np.ones(len(rows))
    P, share = X, np.zeros(m)
    last = np.clip(1.0 - X.sum(axis=0), 0.0, 1.0)
    reference = np.inf  # loss the plain update guarantees
    floor = SCALE_FLOOR * float(np.median(np.sqrt(np.einsum("ij,ij->i", Bf, Bf))))
    beta = 0.5  # extrapolation of the profile's updates, halved when a step fails
    converged, it = False, 0
    while it < max_iter:
        it += 1
        if not prof.sum() > 0:  # nothing left for a missing profile
            prof = none.copy()
            converged = True
            break
        A = np.ascontiguousarray(np.column_stack([Sf, prof[rows]]))
        Xa, _ = solve(A, Bf, kind="simplex", slack=True,
                      weights=w if robust == "huber" else None, n_jobs=n_jobs)
        E = Bf - A @ Xa
        loss = float(np.einsum("ij,ij,i->", E, E, w))
        if extrapolated and loss > reference:
            beta *= 0.5  # the extrapolated profile fitted worse: take the plain update
            prof, extrapolated = plain, False
            continue
        if extrapolated:
            beta = min(1.0, 1.1 * beta)
        P, share = Xa[:k], Xa[k]
        frac = np.clip(1.0 - P.sum(axis=0), 0.0, 1.0)
        moved = float(np.max(np.abs(frac - last)))
        last = frac
        ss = float(share @ share)
        if ss <= 1e-24:
            if extrapolated:
                beta *= 0.5
                prof, extrapolated = plain, False
                continue
            prof = none.copy()
            converged = True
            break
        R = Bn - Sn @ P
        update = np.maximum(R @ share, 0.0) / ss  # least squares per gene, m_g >= 0
        E = R[rows] - np.outer(update[rows], share)
        if robust == "huber":
            w = _gene_huber_weights(E, DEFAULT_HUBER[0], floor)
        reference = float(np.einsum("ij,ij,i->", E, E, w)) * (1.0 + 1e-9)
        total = update.sum()
        previous, plain = prof, (update / total if total > 0 else none.copy())
        if moved < tol and it > 1:
            converged = True
            prof = plain
            break
        prof = np.maximum(plain + beta * (plain - previous), 0.0)
        extrapolated = True
    total = prof.sum()
    prof = prof / total if total > 0 else none.copy()
    frac = np.where(ok, np.clip(1.0 - P.sum(axis=0), 0.0, 1.0), np.nan)
    return UnexplainedFit(frac, P, prof, share, w, it, converged or it == 0, "joint")


def residual_statistics(S, B, X, *, fit_rows=None):
    """Per gene: how consistently the fit under-explains it across samples (arrays).

    The pipeline's entry point for :func:`residual_report`.  The reconstruction
    ``S X`` of every sample is first scaled to the sample by least squares on
    ``fit_rows`` (coefficients on the bulk's scale keep a factor near 1;
    proportions summing to one get the sample's scale), then compared with
    the observation on every gene, both per million of the sample's total.

    Parameters
    ----------
    S : ndarray, shape (n, k)
        Signature on the common genes.
    B : ndarray, shape (n, m)
        Bulk on the same genes.
    X : ndarray, shape (k, m)
        Fitted coefficients or proportions, cell types x samples.
    fit_rows : array of int, optional
        Genes the fit used (for the scale); default all.

    Returns
    -------
    dict of str -> ndarray, shape (n,)
        ``median_log2_ratio`` (median over samples of ``log2((b + c)/(e + c))``,
        ``c`` the median positive value per million), ``frac_under`` (share of
        samples where that exceeds :data:`UNDER_LOG2`), ``median_z`` (median
        standardised residual: ``(b - e) / sqrt(e + c)`` over its median
        absolute value across all genes and samples), ``frac_positive`` (share
        of samples with ``z > 0``), ``observed`` and ``explained`` (means per
        million), ``signature_max`` (largest signature value, per million of
        the column) and ``closest_type`` (index of that column).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.missing import residual_statistics
    >>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0], [0.0, 0.0]])
    >>> B = S @ [[0.5, 0.2], [0.5, 0.8]]
    >>> B[3] = 40.0                                # a gene no reference type has
    >>> st = residual_statistics(S, B, np.array([[0.5, 0.2], [0.5, 0.8]]))
    >>> int(np.argmax(st["median_log2_ratio"])), float(st["frac_under"][3])
    (3, 1.0)
    """
    S = np.asarray(S, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    rows = slice(None) if fit_rows is None else np.asarray(fit_rows)
    E = S @ np.asarray(X, dtype=np.float64)
    num = np.einsum("ij,ij->j", B[rows], E[rows])
    den = np.einsum("ij,ij->j", E[rows], E[rows])
    alpha = np.divide(num, den, out=np.ones_like(num), where=den > 0)
    E = E * alpha
    tot = B.sum(axis=0)
    live = tot > 0
    Bm = B[:, live] / tot[live] * 1e6
    Em = E[:, live] / tot[live] * 1e6
    positive = Bm[Bm > 0]
    c = float(np.median(positive)) if positive.size else 1.0
    lr = np.log2((Bm + c) / (np.maximum(Em, 0.0) + c))
    z = (Bm - Em) / np.sqrt(np.maximum(Em, 0.0) + c)
    scale = float(np.median(np.abs(z))) * 1.4826
    if scale > 0:
        z = z / scale
    s_tot = S.sum(axis=0)
    Sm = np.divide(S, s_tot, out=np.zeros_like(S), where=s_tot > 0) * 1e6
    nan = np.full(S.shape[0], np.nan)
    has = Bm.shape[1] > 0
    return {
        "median_log2_ratio": np.median(lr, axis=1) if has else nan,
        "frac_under": (lr > UNDER_LOG2).mean(axis=1) if has else nan,
        "median_z": np.median(z, axis=1) if has else nan,
        "frac_positive": (z > 0).mean(axis=1) if has else nan,
        "observed": Bm.mean(axis=1) if has else nan,
        "explained": Em.mean(axis=1) if has else nan,
        "signature_max": Sm.max(axis=1),
        "closest_type": np.argmax(Sm, axis=1),
    }


def marker_enrichment(top_genes, universe, markers):
    """Hypergeometric enrichment of marker lists among the top genes.

    Parameters
    ----------
    top_genes : sequence of str
        The genes the reference under-explains most.
    universe : sequence of str
        Every gene that could have been among them (the common genes).
    markers : dict of str -> (sequence of str, str)
        Cell type -> (marker genes, source label).

    Returns
    -------
    pandas.DataFrame
        One row per cell type with at least one marker in the universe,
        sorted by p-value: ``source``, ``n_markers`` (in the universe),
        ``overlap``, ``expected`` (overlap by chance), ``p_value``
        (``P(X >= overlap)``) and ``genes`` (the overlapping ones,
        comma-separated).

    Examples
    --------
    >>> from fastdeconv.missing import marker_enrichment
    >>> universe = [f"g{i}" for i in range(1000)]
    >>> table = marker_enrichment(["g1", "g2", "g3", "g500"], universe,
    ...                           {"X": (["g1", "g2", "g9"], "user"), "Y": (["g700"], "user")})
    >>> int(table.loc["X", "overlap"]), table.loc["X", "genes"]
    (2, 'g1,g2')
    """
    from scipy.stats import hypergeom

    universe = pd.Index(universe)
    index = {g.upper(): g for g in universe}
    top = {str(g).upper() for g in top_genes}
    n_top = len(top)
    rows = {}
    for cell_type, (genes, source) in markers.items():
        present = sorted({index[g.upper()] for g in map(str, genes) if g.upper() in index})
        if not present:
            continue
        hit = [g for g in present if g.upper() in top]
        p = float(hypergeom.sf(len(hit) - 1, len(universe), len(present), n_top))
        rows[cell_type] = dict(
            source=source, n_markers=len(present), overlap=len(hit),
            expected=len(present) * n_top / max(len(universe), 1), p_value=min(p, 1.0),
            genes=",".join(hit),
        )
    cols = ["source", "n_markers", "overlap", "expected", "p_value", "genes"]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    table.index.name = "cell_type"
    if len(table):
        table = table.sort_values(["p_value", "overlap"], ascending=[True, False], kind="stable")
    return table


# ---------------------------------------------------------------------------
# the canonical marker table
# ---------------------------------------------------------------------------


def canonical_markers():
    """The packaged canonical marker genes of common human cell types.

    Read from ``fastdeconv/data/cell_markers.tsv`` (its header names the
    sources): about 25 types -- blood and immune cells, platelets,
    erythrocytes, epithelial, endothelial, fibroblasts, muscle, hepatocytes,
    neural and glial cells -- with 3-8 well-established markers each (HGNC
    symbols).

    Returns
    -------
    dict of str -> list of str

    Examples
    --------
    >>> from fastdeconv.missing import canonical_markers
    >>> markers = canonical_markers()
    >>> markers["Monocytes"][:3], len(markers) >= 20
    (['CD14', 'LYZ', 'S100A8'], True)
    """
    from importlib.resources import files

    text = files("fastdeconv").joinpath("data", MARKER_TABLE).read_text(encoding="utf-8")
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("cell_type\t"):
            continue
        cell_type, genes = line.split("\t")
        out[cell_type.strip()] = [g.strip() for g in genes.split(",") if g.strip()]
    return out


def _check_markers(markers):
    """User marker lists -> {type: list of str}, refusing anything else by keyword."""
    if markers is None:
        return {}
    if not isinstance(markers, dict):
        raise TypeError(
            "markers must be a dict of cell type -> list of gene names, e.g. "
            f"markers={{'Tumour': ['EPCAM', 'KRT8']}}; got {type(markers).__name__}"
        )
    out = {}
    for cell_type, genes in markers.items():
        if isinstance(genes, str) or not hasattr(genes, "__iter__"):
            raise TypeError(
                f"markers[{cell_type!r}] must be a list of gene names, got "
                f"{type(genes).__name__} {genes!r}"
            )
        out[str(cell_type)] = [str(g) for g in genes]
    return out


# ---------------------------------------------------------------------------
# tables: the user's entry points
# ---------------------------------------------------------------------------


def _read_pair(signature, bulk, scale, signature_scale):
    """Read both tables as the pipeline does; return them on their common genes."""
    from fastdeconv.inputs import check_orientation, match_genes, read_expression

    B_df = read_expression(bulk, name="bulk", scale=scale)
    S_df = read_expression(signature, name="signature", scale=signature_scale,
                           scale_option="signature_scale")
    check_orientation(B_df, S_df)
    if S_df.shape[1] < 1:
        raise ValueError("signature has no cell-type column")
    B_m, S_m, _ = match_genes(B_df, S_df)
    zero = S_m.columns[S_m.sum(axis=0).to_numpy() <= 0]
    if len(zero):
        raise ValueError(
            f"signature column(s) {list(map(str, zero))} are zero on every gene shared with the "
            "bulk: drop them from the signature"
        )
    return S_m, B_m


def _fit_rows(genes, index, keyword="genes"):
    """``genes=`` (None: all) -> row positions among the common genes."""
    if genes is None:
        return None
    if isinstance(genes, str):
        raise TypeError(f"{keyword} must be a list of gene names (or None for all common genes), "
                        f"got the string {genes!r}")
    wanted = pd.Index([str(g) for g in genes])
    pos = index.get_indexer(wanted)
    pos = np.unique(pos[pos >= 0])
    if pos.size < 2:
        raise ValueError(
            f"only {pos.size} of the {len(wanted)} genes given in {keyword}= are among the genes "
            "common to bulk and signature; give more, or leave it out to use all common genes"
        )
    return pos


@dataclass
class UnexplainedFraction(Result):
    """Result of :func:`unexplained_fraction`.

    Attributes
    ----------
    fraction : pandas.Series
        Per sample: the RNA share the reference does not explain.
    proportions : pandas.DataFrame
        Samples x reference types: their RNA shares (rows sum to ``1 -
        fraction``).
    missing_profile : pandas.Series
        Genes: the fitted profile of the missing cells, per million (zeros
        when nothing is missing, or with the per-sample model).
    gene_weights : pandas.Series
        The robust weight of each gene fitted (1: fitted well).
    model : str
        ``"joint"`` or ``"per-sample"``.
    n_iter : int
        Alternations of the joint model.
    converged : bool
        Whether the joint model settled within ``max_iter``.
    notes : list of str
        What the reader should know (fallbacks, non-convergence).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.missing import unexplained_fraction
    >>> genes = [f"g{i}" for i in range(50)]
    >>> S = np.random.default_rng(3).gamma(0.5, 1000.0, size=(50, 2))
    >>> sig = pd.DataFrame(S, index=genes, columns=["A", "B"])
    >>> bulk = pd.DataFrame(S @ [[0.5, 0.2, 0.9], [0.5, 0.8, 0.1]], index=genes)
    >>> print(unexplained_fraction(sig, bulk).summary().splitlines()[0])
    Unexplained fraction of 3 sample(s), reference of 2 cell types (joint model, robust 'huber')
    """

    fraction: pd.Series
    proportions: pd.DataFrame
    missing_profile: pd.Series
    gene_weights: pd.Series
    model: str
    n_iter: int
    converged: bool
    robust: object = "huber"
    notes: list = field(default_factory=list)

    def summary(self, top=10):
        """A readable report: the fraction's distribution and the missing profile's top genes.

        Parameters
        ----------
        top : int, default 10
            Genes of the missing profile to list.

        Returns
        -------
        str

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from fastdeconv.missing import unexplained_fraction
        >>> genes = [f"g{i}" for i in range(50)]
        >>> S = np.random.default_rng(4).gamma(0.5, 1000.0, size=(50, 3))
        >>> sig = pd.DataFrame(S[:, :2], index=genes, columns=["A", "B"])
        >>> bulk = pd.DataFrame(S @ [[0.4, 0.3, 0.5, 0.2], [0.4, 0.5, 0.2, 0.4],
        ...                          [0.2, 0.2, 0.3, 0.4]], index=genes)
        >>> "Missing profile" in unexplained_fraction(sig, bulk).summary()
        True
        """
        frac = self.fraction.dropna()
        m, k = self.proportions.shape
        lines = [
            f"Unexplained fraction of {m} sample(s), reference of {k} cell types "
            f"({self.model} model, robust {self.robust!r})",
        ]
        if len(frac):
            q = frac.quantile([0.0, 0.5, 1.0]).to_numpy()
            lines.append(
                f"Unexplained RNA share: median {q[1]:.3f} (min {q[0]:.3f}, max {q[2]:.3f}); "
                f"{int((frac > 0.05).sum())} of {len(frac)} sample(s) above 0.05"
            )
        if self.model == "joint":
            state = "converged" if self.converged else "did not converge"
            lines.append(f"Joint fit: {self.n_iter} alternation(s), {state}")
            prof = self.missing_profile
            if prof.sum() > 0:
                best = prof.sort_values(ascending=False).head(top)
                lines.append("Missing profile, top genes (per million): " + ", ".join(
                    f"{g} {v:.0f}" for g, v in best.items()))
        lines.extend(f"Note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_frame(self):
        """Proportions of the reference types and the ``"unexplained"`` column, one row per sample.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from fastdeconv.missing import unexplained_fraction
        >>> genes = [f"g{i}" for i in range(60)]
        >>> S = np.random.default_rng(5).gamma(0.5, 1000.0, size=(60, 2))
        >>> sig = pd.DataFrame(S, index=genes, columns=["A", "B"])
        >>> bulk = pd.DataFrame(S @ [[0.5, 0.1, 0.7], [0.5, 0.9, 0.3]], index=genes)
        >>> unexplained_fraction(sig, bulk).to_frame().columns.tolist()
        ['A', 'B', 'unexplained']
        """
        out = self.proportions.copy()
        out["unexplained"] = self.fraction
        return out

    def write(self, path, *, profile_path=None):
        """Write :meth:`to_frame` (and optionally the missing profile) atomically.

        Parameters
        ----------
        path : str or os.PathLike
            ``.tsv``/``.csv``, optionally ``.gz``.
        profile_path : str or os.PathLike, optional
            Where to write the missing profile (genes, per million).

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np, pandas as pd
        >>> from fastdeconv.missing import unexplained_fraction
        >>> genes = [f"g{i}" for i in range(60)]
        >>> S = np.random.default_rng(6).gamma(0.5, 1000.0, size=(60, 2))
        >>> res = unexplained_fraction(pd.DataFrame(S, index=genes, columns=["A", "B"]),
        ...                            pd.DataFrame(S @ [[0.5], [0.5]], index=genes))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     res.write(os.path.join(d, "u.tsv"))
        ...     sorted(os.listdir(d))
        ['u.tsv']
        """
        from fastdeconv.io import write_table

        write_table(self.to_frame(), path, index_label="sample")
        if profile_path is not None:
            write_table(self.missing_profile.rename("per_million").to_frame(), profile_path,
                        index_label="gene")


def unexplained_fraction(signature, bulk, *, genes=None, robust="huber", model="auto",
                         max_iter=300, tol=1e-4, n_jobs=None, scale="auto",
                         signature_scale="auto"):
    """The RNA share of every bulk sample that the reference's cell types do not explain.

    Bulk samples and signature columns are divided by their totals over all
    genes common to both (so the share is calibrated across platforms and
    normalisations); then the missing cells' profile and every sample's share
    of it are fitted jointly across samples (see the module's description and
    :func:`fit_unexplained`).

    Parameters
    ----------
    signature : DataFrame, ndarray, AnnData or path
        Reference profiles, genes x cell types, linear scale; give it on all
        its genes (a whole-transcriptome reference), not only marker genes:
        the normalisation and the missing profile need the genes the
        reference does not use to tell its types apart.
    bulk : DataFrame, ndarray, AnnData or path
        Bulk expression, genes x samples, linear scale.
    genes : list of str, optional
        Genes fitted (default: every common gene); the normalisation always
        uses every common gene.
    robust : {"huber", None}, default "huber"
        Down-weight genes that no profile explains (Huber's loss on each gene's
        residual norm across samples).
    model : {"auto", "joint", "per-sample"}, default "auto"
        ``"joint"``: the rank-one model across samples; ``"per-sample"``:
        EPIC's ``1 - sum(p)`` of a fit with ``sum(p) <= 1``, sample by sample
        (``method="simplex_le"``); ``"auto"``: joint with at least
        :data:`MIN_SAMPLES` samples.
    max_iter : int, default 300
        Most alternations of the joint model.
    tol : float, default 1e-4
        Convergence: largest change of any sample's fraction.
    n_jobs : int, optional
        Solver threads.
    scale, signature_scale : {"auto", "linear", "log2", "log2p1", "log1p"}, default "auto"
        Scale of the bulk and of the signature, as in :func:`fastdeconv.deconvolve`
        (``"auto"`` refuses log-looking data; the others un-log first).

    Returns
    -------
    UnexplainedFraction
        ``.fraction`` (Series by sample), ``.proportions``,
        ``.missing_profile``, diagnostics and ``summary()``.

    Raises
    ------
    ValueError
        On invalid options (the message names the keyword), or tables the
        pipeline refuses (see :func:`fastdeconv.deconvolve`).

    References
    ----------
    .. [1] Racle J. et al. (2017) Simultaneous enumeration of cancer and immune
       cell types from bulk tumor gene expression data. eLife 6:e26476.
       doi:10.7554/eLife.26476 (EPIC; the "other cells" fraction)
    .. [2] Huber P. J. (1964) Robust estimation of a location parameter. Ann
       Math Statist 35(1):73-101. doi:10.1214/aoms/1177703732

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.missing import unexplained_fraction
    >>> rng = np.random.default_rng(2)
    >>> genes = [f"g{i}" for i in range(200)]
    >>> S = rng.gamma(0.5, 50.0, size=(200, 3))
    >>> sig = pd.DataFrame(S[:, :2], index=genes, columns=["A", "B"])
    >>> f = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    >>> Sn = S / S.sum(axis=0)
    >>> mix = Sn[:, :2] @ np.vstack([0.6 * (1 - f), 0.4 * (1 - f)]) + np.outer(Sn[:, 2], f)
    >>> res = unexplained_fraction(sig, pd.DataFrame(7.0 * mix, index=genes))
    >>> res.fraction.round(3).tolist()
    [0.0, 0.1, 0.2, 0.3, 0.4]
    """
    robust = check_choice(robust, "robust", ROBUST)
    model = check_choice(model, "model", MODELS)
    max_iter = check_int(max_iter, "max_iter")
    tol = check_float(tol, "tol")
    S_m, B_m = _read_pair(signature, bulk, scale, signature_scale)
    rows = _fit_rows(genes, S_m.index)
    notes = []
    n_live = int((B_m.sum(axis=0) > 0).sum())
    if model == "joint" and n_live < 2:
        raise ValueError(
            f"model='joint' needs samples whose missing share varies (at least {MIN_SAMPLES}); "
            f"the bulk has {n_live} non-zero sample(s): use model='per-sample'"
        )
    if model == "auto" and n_live < MIN_SAMPLES:
        notes.append(
            f"{n_live} sample(s) with data: fewer than {MIN_SAMPLES}, so the per-sample fit "
            "(EPIC's 1 - sum(p)) was used; it does not see a missing type that the reference "
            "types imitate"
        )
    fit = fit_unexplained(
        S_m.to_numpy(dtype=np.float64), B_m.to_numpy(dtype=np.float64), fit_rows=rows,
        robust=robust, model=model, max_iter=max_iter, tol=tol, n_jobs=n_jobs,
    )
    if fit.model == "joint" and not fit.converged:
        notes.append(f"the joint fit did not settle within max_iter={max_iter} alternations "
                     "(raise max_iter or tol)")
    zero = B_m.columns[~np.isfinite(fit.fraction)]
    if len(zero):
        notes.append(f"{len(zero)} sample(s) all zero on the common genes: fraction NaN")
    used = S_m.index if rows is None else S_m.index[rows]
    return UnexplainedFraction(
        fraction=pd.Series(fit.fraction, index=B_m.columns, name="unexplained"),
        proportions=pd.DataFrame(fit.coefficients.T, index=B_m.columns, columns=S_m.columns),
        missing_profile=pd.Series(fit.profile * 1e6, index=S_m.index, name="missing_profile"),
        gene_weights=pd.Series(fit.gene_weights, index=used, name="weight"),
        model=fit.model, n_iter=fit.n_iter, converged=fit.converged, robust=robust, notes=notes,
    )


@dataclass
class ResidualReport(Result):
    """Result of :func:`residual_report`: under-explained genes and candidate missing types.

    Attributes
    ----------
    genes : pandas.DataFrame
        Every common gene, ranked (best first) by ``median_log2_ratio``; columns
        as returned by :func:`residual_statistics` with ``closest_type`` named.
    candidates : pandas.DataFrame
        Cell types whose markers are enriched among the ``top`` genes (see
        :func:`marker_enrichment`), most significant first.
    top : int
        How many top genes were tested (at most ``top=``: only genes observed
        above twice what the fit explains in at least half the samples).
    n_samples : int
        Samples compared.
    alpha : float
        Significance level of a suggestion (Bonferroni over the marker lists).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.missing import residual_report
    >>> genes = ["CD3E", "MS4A1", "ACTB", "PPBP", "PF4", "TUBB1"] + [f"g{i}" for i in range(54)]
    >>> S = np.random.default_rng(0).gamma(1.0, 1000.0, size=(60, 2))
    >>> S[3:6] = 0.0                                   # platelet genes: in no reference type
    >>> sig = pd.DataFrame(S, index=genes, columns=["T", "B"])
    >>> B = S @ [[0.5, 0.3, 0.6], [0.5, 0.7, 0.4]]
    >>> B[3:6] = 2000.0
    >>> rep = residual_report(sig, pd.DataFrame(B, index=genes), [[0.5, 0.3, 0.6], [0.5, 0.7, 0.4]],
    ...                       top=3)
    >>> rep.genes.index[:3].tolist(), rep.suggestion
    (['PPBP', 'PF4', 'TUBB1'], 'Platelets')
    """

    genes: pd.DataFrame
    candidates: pd.DataFrame
    top: int
    n_samples: int
    alpha: float = 0.05

    @property
    def suggestion(self):
        """The most enriched cell type if significant (Bonferroni), else None."""
        if not len(self.candidates):
            return None
        best = self.candidates.iloc[0]
        limit = self.alpha / max(len(self.candidates), 1)
        significant = best["p_value"] < limit and best["overlap"] > 0
        return str(self.candidates.index[0]) if significant else None

    def summary(self, n_genes=15, n_types=5):
        """A readable report: the top genes and the candidate missing types.

        Parameters
        ----------
        n_genes : int, default 15
            Genes to list.
        n_types : int, default 5
            Candidate cell types to list.

        Returns
        -------
        str

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from fastdeconv.missing import residual_report
        >>> genes = [f"g{i}" for i in range(60)]
        >>> S = np.random.default_rng(1).gamma(1.0, 1000.0, size=(60, 2))
        >>> sig = pd.DataFrame(S, index=genes, columns=["A", "B"])
        >>> bulk = pd.DataFrame(S @ [[0.5], [0.5]], index=genes)
        >>> print(residual_report(sig, bulk, [[0.5], [0.5]]).summary().splitlines()[0])
        Residual report: 60 genes x 1 sample(s); top 0 genes tested against 27 marker lists
        """
        g = self.genes.head(n_genes)
        lines = [
            f"Residual report: {len(self.genes)} genes x {self.n_samples} sample(s); top "
            f"{self.top} genes tested against {self._n_lists} marker lists",
            "Genes the reference under-explains most consistently "
            "(median log2 observed/explained; share of samples > 2x; closest reference type):",
        ]
        width = max([len(str(x)) for x in g.index] + [4])
        lines.extend(
            f"  {str(name):<{width}}  {row.median_log2_ratio:6.2f}  {row.frac_under:5.2f}  "
            f"{row.closest_type}"
            for name, row in g.iterrows()
        )
        cand = self.candidates.head(n_types)
        if len(cand):
            lines.append("Candidate missing cell types (marker overlap with the top genes):")
            tw = max(len(str(x)) for x in cand.index)
            lines.extend(
                f"  {str(t):<{tw}}  {int(r.overlap)}/{int(r.n_markers)} markers  "
                f"p={r.p_value:.2g}  [{r.source}]  {r.genes}"
                for t, r in cand.iterrows()
            )
        s = self.suggestion
        lines.append(f"Suggested missing cell type: {s}" if s else
                     "No marker list is significantly enriched (Bonferroni at "
                     f"{self.alpha:g}): no suggestion")
        return "\n".join(lines)

    @property
    def _n_lists(self):
        return int(self.candidates.attrs.get("n_lists", len(self.candidates)))

    def to_frame(self):
        """The ranked gene table.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from fastdeconv.missing import residual_report
        >>> genes = [f"g{i}" for i in range(60)]
        >>> S = np.random.default_rng(2).gamma(1.0, 1000.0, size=(60, 2))
        >>> rep = residual_report(pd.DataFrame(S, index=genes, columns=["A", "B"]),
        ...                       pd.DataFrame(S @ [[0.5], [0.5]], index=genes), [[0.5], [0.5]])
        >>> rep.to_frame().columns[:2].tolist()
        ['median_log2_ratio', 'frac_under']
        """
        return self.genes

    def write(self, path, *, candidates_path=None):
        """Write the ranked gene table (and optionally the candidates) atomically.

        Parameters
        ----------
        path : str or os.PathLike
            ``.tsv``/``.csv``, optionally ``.gz``.
        candidates_path : str or os.PathLike, optional
            Where to write the candidate cell types.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np, pandas as pd
        >>> from fastdeconv.missing import residual_report
        >>> genes = [f"g{i}" for i in range(60)]
        >>> S = np.random.default_rng(3).gamma(1.0, 1000.0, size=(60, 2))
        >>> rep = residual_report(pd.DataFrame(S, index=genes, columns=["A", "B"]),
        ...                       pd.DataFrame(S @ [[0.5], [0.5]], index=genes), [[0.5], [0.5]])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     rep.write(os.path.join(d, "r.tsv"), candidates_path=os.path.join(d, "c.tsv"))
        ...     sorted(os.listdir(d))
        ['c.tsv', 'r.tsv']
        """
        from fastdeconv.io import write_table

        write_table(self.genes, path, index_label="gene")
        if candidates_path is not None:
            write_table(self.candidates, candidates_path, index_label="cell_type")


def _coefficient_matrix(values, types, samples):
    """``proportions_or_coefficients`` -> (k, m) array aligned to the signature and bulk."""
    key = "proportions_or_coefficients"
    if isinstance(values, pd.DataFrame):
        frame = values
        if set(map(str, types)) <= set(map(str, frame.index)) and not (
            set(map(str, types)) <= set(map(str, frame.columns))
        ):
            frame = frame.T  # given cell types x samples
        missing = [t for t in types if t not in frame.columns]
        if missing:
            raise ValueError(
                f"{key} has no column for the signature's cell type(s) {missing}; give a samples x "
                "cell types table (extra columns such as 'unexplained' are ignored)"
            )
        if set(samples) <= set(frame.index):
            frame = frame.loc[samples]
        elif len(frame) != len(samples):
            raise ValueError(
                f"{key} has {len(frame)} row(s) but the bulk has {len(samples)} sample(s), "
                "and its row names are not the bulk's sample names"
            )
        X = frame[list(types)].to_numpy(dtype=np.float64).T
    else:
        X = np.asarray(values, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.shape == (len(samples), len(types)) and X.shape != (len(types), len(samples)):
            X = X.T
        if X.shape != (len(types), len(samples)):
            raise ValueError(
                f"{key} must be cell types x samples ({len(types)} x {len(samples)}) or samples x "
                f"cell types, got shape {X.shape}"
            )
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{key} contains NaN or infinite values (samples whose fit failed?): "
                         "drop those samples from the bulk and the coefficients")
    return X


def residual_report(signature, bulk, proportions_or_coefficients, *, genes=None, top=50,
                    markers=None, canonical=True, alpha=0.05, scale="auto",
                    signature_scale="auto"):
    """Rank the genes the reference under-explains and suggest the missing cell type.

    Parameters
    ----------
    signature : DataFrame, ndarray, AnnData or path
        Reference profiles, genes x cell types, linear scale (all its genes:
        the genes of a missing type are rarely among a signature's markers).
    bulk : DataFrame, ndarray, AnnData or path
        Bulk expression, genes x samples.
    proportions_or_coefficients : DataFrame or array
        The fit to explain: samples x cell types (a result's
        ``.proportions`` or ``.coefficients``; extra columns such as
        ``"unexplained"`` are ignored) or a cell types x samples array.
        The reconstruction is scaled to every sample by least squares on
        ``genes``, so proportions summing to one and raw coefficients both work.
    genes : list of str, optional
        The genes the fit used (for that scale); default every common gene.
    top : int, default 50
        Top-ranked genes tested for marker enrichment (only genes observed at
        more than twice what the fit explains in at least half the samples).
    markers : dict of str -> list of str, optional
        Your own marker lists (cell type -> genes), tested beside the
        canonical ones.
    canonical : bool, default True
        Also test the packaged canonical markers (:func:`canonical_markers`).
    alpha : float, default 0.05
        Significance of a suggestion (Bonferroni over the lists tested).
    scale, signature_scale : {"auto", "linear", "log2", "log2p1", "log1p"}, default "auto"
        Scale of the bulk and of the signature, as in :func:`fastdeconv.deconvolve`
        (``"auto"`` refuses log-looking data; the others un-log first).

    Returns
    -------
    ResidualReport
        ``.genes`` (ranked table), ``.candidates``, ``.suggestion`` and
        ``summary()``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.missing import residual_report
    >>> rng = np.random.default_rng(5)
    >>> genes = ["CD14", "LYZ", "S100A8", "S100A9", "FCN1"] + [f"g{i}" for i in range(95)]
    >>> S = rng.gamma(1.0, 1000.0, size=(100, 2))
    >>> mono = np.zeros(100); mono[:5] = 20000.0        # a missing type: monocyte genes only
    >>> S[:5] = 10.0
    >>> P = np.array([[0.5, 0.4, 0.3], [0.3, 0.4, 0.5]])
    >>> bulk = pd.DataFrame(S @ P + np.outer(mono, [0.2, 0.2, 0.2]), index=genes)
    >>> rep = residual_report(pd.DataFrame(S, index=genes, columns=["T", "B"]), bulk, P, top=5)
    >>> sorted(rep.genes.index[:5]) == sorted(genes[:5]), rep.suggestion
    (True, 'Monocytes')
    """
    top = check_int(top, "top")
    alpha = check_float(alpha, "alpha", maximum=1.0)
    if not isinstance(canonical, bool):
        raise TypeError(f"canonical must be True or False, got {canonical!r}")
    user = _check_markers(markers)
    S_m, B_m = _read_pair(signature, bulk, scale, signature_scale)
    rows = _fit_rows(genes, S_m.index)
    X = _coefficient_matrix(proportions_or_coefficients, list(S_m.columns), list(B_m.columns))
    return report_from_arrays(S_m, B_m, X, rows, top=top, lists=user, canonical=canonical,
                              alpha=alpha)


def report_from_arrays(S_m, B_m, X, rows, *, top=50, lists=None, canonical=True, alpha=0.05):
    """The residual report from checked tables on the common genes (the pipeline's entry).

    Parameters
    ----------
    S_m, B_m : DataFrame
        Signature and bulk on every common gene (same index).
    X : ndarray, shape (k, m)
        The fit's coefficients or proportions.
    rows : ndarray of int, optional
        Positions of the genes the fit used (None: all).
    top, canonical, alpha
        As in :func:`residual_report`.
    lists : dict, optional
        The user's marker lists, checked.

    Returns
    -------
    ResidualReport

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.missing import report_from_arrays
    >>> S = pd.DataFrame(np.eye(3) * 100 + 1, index=["a", "b", "c"], columns=["T", "B", "M"])
    >>> rep = report_from_arrays(S, S @ np.ones((3, 2)), np.ones((3, 2)), None)
    >>> rep.suggestion is None
    True
    """
    user = lists or {}
    st = residual_statistics(S_m.to_numpy(dtype=np.float64), B_m.to_numpy(dtype=np.float64), X,
                             fit_rows=rows)
    table = pd.DataFrame(st, index=S_m.index)
    table["closest_type"] = S_m.columns[st["closest_type"]]
    table["absent_in_signature"] = table["signature_max"] < 1.0  # under 1 per million
    table.index.name = "gene"
    table = table.sort_values(["median_log2_ratio", "median_z"], ascending=False, kind="stable")
    lists = {}
    if canonical:
        lists.update({t: (g, "canonical") for t, g in canonical_markers().items()})
    lists.update({t: (g, "user") for t, g in user.items()})
    # only consistently under-explained genes are tested (not the head of a table of ties)
    eligible = table.index[(table["frac_under"] >= MIN_UNDER).to_numpy()][:top]
    cand = marker_enrichment(eligible, table.index, lists)
    cand.attrs["n_lists"] = len(lists)
    return ResidualReport(genes=table, candidates=cand, top=len(eligible),
                          n_samples=B_m.shape[1], alpha=alpha)
