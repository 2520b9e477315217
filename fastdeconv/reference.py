"""Signatures from single-cell data: marker genes, mean profiles, clusters.

:func:`build_signature` turns a single-cell count matrix (genes x cells, dense
or sparse, or an AnnData object) and one label per cell into a signature
matrix (genes x cell types) for :func:`fastdeconv.deconvolve`:

1. library-size normalisation (counts per million by default);
2. per-gene, per-type sums in one Numba pass over the non-zero counts
   (:mod:`fastdeconv.kernels.markers`);
3. a test of each type against all other cells for every gene (Welch's t on
   ``log1p`` CPM, or a Poisson / negative-binomial likelihood-ratio test on
   the counts), Benjamini-Hochberg FDR per type;
4. a documented marker rule (FDR, fold change, fraction of expressing cells,
   then the ``n_markers`` most specific genes per type);
5. the signature: the mean normalised expression of each type on the union of
   the markers, on the linear scale.

Without labels the cells are clustered first (log-CPM, highly variable genes,
PCA, seeded k-means) and the clusters play the role of the cell types.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fastdeconv.kernels import markers as _mk

__all__ = ["build_signature", "SignatureResult", "cluster_cells"]

_METHODS = ("t-test", "poisson", "nb")
_RANKS = ("specificity", "fold_change", "statistic")
_NORMALIZATIONS = ("cpm", "none")
_AVERAGES = ("cells", "pooled")
#: grid of markers per type tried by ``n_markers="auto"`` (CIBERSORT tries 50..200
#: on bulk-derived references; single-cell signatures are noisier, so smaller sizes)
AUTO_MARKER_GRID = tuple(range(5, 105, 5))
#: markers per type when ``n_markers`` is not given
DEFAULT_N_MARKERS = 25
_MARKER_COLUMNS = [
    "gene",
    "cell_type",
    "statistic",
    "pvalue",
    "fdr",
    "log_fc",
    "log_fc_next",
    "frac_expressing",
    "mean_expression",
]


# ---------------------------------------------------------------- inputs ----
def _is_anndata(obj):
    return all(hasattr(obj, a) for a in ("obs", "var_names", "obs_names", "X", "layers"))


def _sparse_module():
    import scipy.sparse as sp

    return sp


class _Counts:
    """A genes x cells matrix in the layout the kernels read, with its names."""

    def __init__(self, matrix, genes, cells):
        sp = _sparse_module()
        self.sparse = sp.issparse(matrix)
        self.matrix = matrix
        self.n_genes, self.n_cells = matrix.shape
        self.genes = pd.Index(genes)
        self.cells = pd.Index(cells)

    def values(self):
        """The stored numbers (the non-zeros of a sparse matrix)."""
        return self.matrix.data if self.sparse else self.matrix

    def library_sizes(self):
        return np.asarray(self.matrix.sum(axis=0), dtype=np.float64).ravel()

    def group_sums(self, groups, n_groups, scale, n_jobs=1):
        """Run the one-pass kernel in the matrix's own layout (no copy of the data).

        The rows (genes or cells, whichever is stored contiguously) are split
        into ``n_jobs`` chunks of similar work, one ``nogil`` kernel call per
        thread; the partial sums are added at the end.
        """
        sp = _sparse_module()
        x = self.matrix
        if self.sparse:
            if x.format not in ("csr", "csc"):
                x = sp.csr_array(x)
            rows_are_genes = x.format == "csr"  # genes x cells CSR: compressed rows are genes
            data = x.data
            if data.dtype not in (np.float64, np.float32, np.int64, np.int32):
                data = data.astype(np.float64)
            n_rows = x.indptr.size - 1
            work = np.asarray(x.indptr, dtype=np.float64)

            def run(r0, r1):
                return _mk.group_sums_sparse(
                    x.indptr, x.indices, data, self.n_genes, rows_are_genes,
                    groups, n_groups, scale, r0, r1,
                )
        else:
            if x.flags.c_contiguous:
                mat, rows_are_genes = x, True
            elif x.flags.f_contiguous:
                mat, rows_are_genes = x.T, False
            else:
                mat, rows_are_genes = np.ascontiguousarray(x), True
            n_rows = mat.shape[0]
            work = np.arange(n_rows + 1, dtype=np.float64)

            def run(r0, r1):
                return _mk.group_sums_dense(mat, rows_are_genes, groups, n_groups, scale, r0, r1)

        n_chunks = max(1, min(n_jobs, n_rows))
        # chunk boundaries with equal work (non-zeros for sparse, rows for dense)
        bounds = np.searchsorted(work, np.linspace(0.0, work[-1], n_chunks + 1)).tolist()
        bounds[0], bounds[-1] = 0, n_rows
        spans = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a] or [(0, n_rows)]
        if len(spans) == 1:
            parts = [run(*spans[0])]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(spans)) as pool:
                parts = list(pool.map(lambda ab: run(*ab), spans))
        acc = parts[0][0]
        for part in parts[1:]:
            acc += part[0]
        return {name: np.ascontiguousarray(acc[:, :, j]) for j, name in enumerate(_mk.SUM_NAMES)}


def _as_counts(counts, layer, gene_names):
    """Coerce the supported inputs to a genes x cells :class:`_Counts`."""
    sp = _sparse_module()
    if _is_anndata(counts):
        x = counts.X if layer is None else _anndata_layer(counts, layer)
        if x is None:
            raise ValueError("the AnnData object has no .X; pass layer= naming the counts layer")
        x = x.T  # AnnData is cells x genes; a CSR .X becomes a genes x cells CSC view
        genes, cells = counts.var_names, counts.obs_names
    elif layer is not None:
        raise ValueError("layer= is only meaningful for AnnData input")
    elif isinstance(counts, pd.DataFrame):
        if any(isinstance(d, pd.SparseDtype) for d in counts.dtypes):
            x = sp.csr_array(counts.sparse.to_coo())
        else:
            x = counts.to_numpy()
        genes, cells = counts.index, counts.columns
    elif sp.issparse(counts):
        x = counts
        genes, cells = None, None
    elif isinstance(counts, np.ndarray) or hasattr(counts, "__array__"):
        x = np.asarray(counts)
        genes, cells = None, None
    else:
        raise TypeError(
            "counts must be a genes x cells numpy array, scipy.sparse matrix or pandas "
            f"DataFrame, or an AnnData object (cells x genes); got {type(counts).__name__}"
        )
    if not sp.issparse(x):
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"counts must be 2-D (genes x cells); got an array of shape {x.shape}")
        if x.dtype == bool or not np.issubdtype(x.dtype, np.number):
            raise TypeError(f"counts must be numeric; got dtype {x.dtype}")
        if x.dtype not in (np.float64, np.float32, np.int64, np.int32):
            x = x.astype(np.float64)
    n_genes, n_cells = x.shape
    if n_genes == 0 or n_cells == 0:
        raise ValueError(f"counts is empty ({n_genes} genes x {n_cells} cells)")
    if gene_names is not None:
        if genes is not None and not _is_plain_range(genes):
            raise ValueError("gene_names= is only for arrays without names; this input has its own")
        if len(gene_names) != n_genes:
            raise ValueError(
                f"gene_names has {len(gene_names)} names but counts has {n_genes} genes (rows)"
            )
        genes = gene_names
    if genes is None:
        genes = [f"gene{i}" for i in range(n_genes)]
    if cells is None:
        cells = [f"cell{i}" for i in range(n_cells)]
    genes = pd.Index(genes).astype(str)
    if genes.has_duplicates:
        dup = genes[genes.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"gene names must be unique; duplicated: {dup} (sum or drop duplicates first)"
        )
    return _Counts(x, genes, cells)


def _is_plain_range(index):
    return isinstance(index, pd.RangeIndex)


def _anndata_layer(adata, layer):
    if layer not in adata.layers:
        raise ValueError(
            f"layer {layer!r} not found in the AnnData object; layers: {list(adata.layers.keys())}"
        )
    return adata.layers[layer]


def _check_values(counts, method):
    """NaN/inf, negative, and (for the likelihood-ratio tests) non-integer counts."""
    v = counts.values()
    if v.size == 0:
        return
    if np.issubdtype(v.dtype, np.floating):
        bad = ~np.isfinite(v)
        if bad.any():
            raise ValueError(
                f"counts contain {int(bad.sum())} NaN or infinite values; remove or impute them"
            )
        if method != "t-test" and np.any(v != np.round(v)):
            raise ValueError(
                f"method={method!r} is a likelihood-ratio test on raw counts, but counts contain "
                "non-integer values; pass the raw UMI counts (e.g. layer='counts'), or use "
                "method='t-test' for already normalised data"
            )
    if np.any(v < 0):
        raise ValueError(
            "counts contain negative values; pass raw (or library-size normalised) counts, "
            "not centred, scaled or log-ratio data"
        )


def _as_labels(labels, label_key, counts_obj, counts):
    """One label per cell, as a numpy array of str."""
    if _is_anndata(counts_obj):
        if labels is None and label_key is None:
            raise ValueError(
                "AnnData input needs label_key= naming the cell-type column of .obs "
                f"(columns: {list(counts_obj.obs.columns)}), or labels=, or n_clusters= "
                "to cluster the cells"
            )
        if label_key is not None:
            if labels is not None:
                raise ValueError("pass labels= or label_key=, not both")
            if label_key not in counts_obj.obs.columns:
                raise ValueError(
                    f"label_key {label_key!r} is not a column of .obs; "
                    f"columns: {list(counts_obj.obs.columns)}"
                )
            labels = counts_obj.obs[label_key]
    elif label_key is not None:
        raise ValueError("label_key= is only meaningful for AnnData input; pass labels=")
    if labels is None:
        return None
    if isinstance(labels, pd.Series) and not _is_plain_range(labels.index):
        if not counts.cells.isin(labels.index).all():
            missing = counts.cells[~counts.cells.isin(labels.index)][:5].tolist()
            raise ValueError(
                f"labels (a Series indexed by cell) lack {int((~counts.cells.isin(labels.index)).sum())} "
                f"cells of counts, e.g. {missing}"
            )
        if labels.index.has_duplicates:
            raise ValueError("labels has duplicated cell ids in its index")
        labels = labels.loc[counts.cells]
    values = np.asarray(labels, dtype=object).ravel()
    if values.shape[0] != counts.n_cells:
        raise ValueError(
            f"labels has {values.shape[0]} entries but counts has {counts.n_cells} cells "
            "(columns of a genes x cells matrix, rows of an AnnData); give one label per cell"
        )
    missing = pd.isna(values)
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} cells have a missing label; drop them or give them a label"
        )
    return values.astype(str)


def _encode(labels, min_cells=2):
    types, codes = np.unique(labels, return_inverse=True)
    n = np.bincount(codes, minlength=len(types))
    if len(types) < 2:
        raise ValueError(
            f"need at least 2 cell types to find markers; got only {types.tolist()}"
        )
    small = [f"{str(t)!r} ({c} cell{'s' if c != 1 else ''})" for t, c in zip(types, n) if c < min_cells]
    if small:
        raise ValueError(
            f"every cell type needs at least {min_cells} cells for the tests; too few: "
            f"{', '.join(small)}. Drop these cells or merge the type into a related one"
        )
    return types.astype(str), codes.astype(np.int64), n


# ------------------------------------------------------------ statistics ----
def _statistics(sums, n, lib_by_group, method, pseudocount):
    """All per-gene, per-type statistics as (genes x types) arrays."""
    mean = sums["norm_sum"] / n[None, :]
    n_rest = n.sum() - n
    mean_rest = (sums["norm_sum"].sum(axis=1)[:, None] - sums["norm_sum"]) / n_rest[None, :]
    log_fc = np.log2((mean + pseudocount) / (mean_rest + pseudocount))
    k = mean.shape[1]
    if k > 1:
        # largest mean among the other types: top-2 per gene, no loop over genes
        top2 = np.partition(mean, k - 2, axis=1)[:, k - 2 :]
        first, second = top2.max(axis=1), top2.min(axis=1)
        next_best = np.where(mean >= first[:, None], second[:, None], first[:, None])
    else:
        next_best = np.zeros_like(mean)
    log_fc_next = np.log2((mean + pseudocount) / (next_best + pseudocount))
    if method == "t-test":
        stat, p, _ = _mk.welch_t(sums["log_sum"], sums["log_sq"], n)
    elif method == "poisson":
        stat, p = _mk.poisson_lrt(sums["count_sum"], lib_by_group)
    else:
        stat, p = _mk.nb_lrt(sums["count_sum"], n, sums["count_sq"])
    fdr = _mk.bh_fdr(p, axis=0)
    frac = sums["nnz"] / n[None, :]
    return {
        "statistic": stat,
        "pvalue": p,
        "fdr": fdr,
        "log_fc": log_fc,
        "log_fc_next": log_fc_next,
        "frac_expressing": frac,
        "mean_expression": mean,
    }


def _ranked_candidates(st, rank_by, fdr, min_log_fc, min_frac):
    """Per type: gene indices passing the marker rule, best first."""
    ok = (st["fdr"] <= fdr) & (st["log_fc"] >= min_log_fc) & (st["frac_expressing"] >= min_frac)
    key = {"specificity": "log_fc_next", "fold_change": "log_fc", "statistic": "statistic"}[rank_by]
    score = st[key]
    out = []
    for t in range(score.shape[1]):  # a loop over cell types, not genes
        idx = np.flatnonzero(ok[:, t])
        # ties broken by the test statistic, then by gene order (stable)
        order = np.lexsort((-st["statistic"][idx, t], -score[idx, t]))
        out.append(idx[order])
    return out


def _union_top(candidates, n):
    chosen = np.concatenate([c[:n] for c in candidates]) if candidates else np.empty(0, int)
    # union in first-seen order (type by type, best first)
    _, first = np.unique(chosen, return_index=True)
    return chosen[np.sort(first)]


def _condition_number(mat):
    if mat.shape[0] < mat.shape[1]:
        return np.inf
    s = np.linalg.svd(mat, compute_uv=False)
    return float(s[0] / s[-1]) if s[-1] > 0 else np.inf


# ----------------------------------------------------------------- result ---
@dataclass
class SignatureResult:
    """A signature built from single cells, with its markers and diagnostics.

    Attributes
    ----------
    signature : pandas.DataFrame
        Genes (the union of the markers) x cell types: mean normalised
        expression (CPM by default; the pooled CPM with ``average="pooled"``),
        linear scale.  Pass it to
        :func:`fastdeconv.deconvolve`.
    markers : pandas.DataFrame
        The selected markers, one row per (gene, cell type) selection, best
        first within each type: ``gene, cell_type, statistic, pvalue, fdr,
        log_fc, log_fc_next, frac_expressing, mean_expression, rank``.
    statistics : pandas.DataFrame
        The same columns (without ``rank``) for every tested gene and type.
    rna_content : pandas.Series
        Mean library size (total counts per cell) of each type: its relative
        RNA content, used by :meth:`to_cell_fractions`.
    n_cells : pandas.Series
        Cells per type.
    condition_number : float
        2-norm condition number of :attr:`signature`.
    n_markers : int
        Markers per type used (the chosen one when ``n_markers="auto"``).
    condition_numbers : pandas.Series or None
        With ``n_markers="auto"``: the condition number for each size tried.
    clusters : pandas.Series or None
        Cell -> cluster name, only when the cells were clustered (no labels).
        Cluster names are arbitrary: ``cluster_0`` is the largest cluster, not
        a cell type.
    method : str
        The marker test used.
    notes : list of str
        Warnings raised while building (e.g. types with few markers).
    pseudocount : float
        The pseudocount of the fold changes, reused by :attr:`gene_weights`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv import build_signature
    >>> rng = np.random.default_rng(1)
    >>> mu = rng.gamma(1.0, 2.0, size=(200, 2))
    >>> mu[:10, 0] *= 20; mu[10:20, 1] *= 20
    >>> res = build_signature(rng.poisson(mu[:, [0] * 30 + [1] * 30]), ["A"] * 30 + ["B"] * 30,
    ...                       n_markers=10)
    >>> res.signature.shape, res.n_cells.tolist()
    ((20, 2), [30, 30])
    >>> res.markers.groupby("cell_type").size().tolist()
    [10, 10]
    """

    signature: pd.DataFrame
    markers: pd.DataFrame
    statistics: pd.DataFrame
    rna_content: pd.Series
    n_cells: pd.Series
    condition_number: float
    n_markers: int
    method: str
    condition_numbers: pd.Series | None = None
    clusters: pd.Series | None = None
    notes: list = field(default_factory=list)
    pseudocount: float = 1.0

    def to_frame(self):
        """Return the signature (genes x cell types) as a DataFrame copy."""
        return self.signature.copy()

    def write(self, path, *, markers_path=None):
        """Write the signature (and optionally the marker table) atomically.

        Parameters
        ----------
        path : str or os.PathLike
            Signature file; TSV/CSV by extension, gzip if it ends in ``.gz``.
        markers_path : str or os.PathLike, optional
            Where to write :attr:`markers` too.
        """
        from fastdeconv.io import write_table

        write_table(self.signature, path, index_label="gene")
        if markers_path is not None:
            write_table(self.markers.set_index("gene"), markers_path, index_label="gene")

    @property
    def gene_weights(self):
        """Inverse-mean (Poisson) weights of the signature genes, for weighted least squares.

        Count-like expression has a variance that grows with its mean, so an
        unweighted fit is dominated by the few most highly expressed markers
        (immunoglobulins, S100A8/9, platelet genes) and by their noise.
        Weighting each gene by ``1 / (mean over types + pseudocount)`` is the
        quasi-Poisson choice: each marker counts in proportion to its
        information.  Scaled to mean 1; pass as
        ``deconvolve(bulk, res.signature, weights=res.gene_weights)``.

        Returns
        -------
        pandas.Series
            One weight per gene of :attr:`signature`, same order.

        Examples
        --------
        >>> import pandas as pd
        >>> from fastdeconv.reference import SignatureResult
        >>> sig = pd.DataFrame({"T": [99.0, 0.0], "B": [99.0, 1.0]}, index=["g1", "g2"])
        >>> res = SignatureResult(signature=sig, markers=pd.DataFrame(),
        ...     statistics=pd.DataFrame(), rna_content=pd.Series(dtype=float),
        ...     n_cells=pd.Series(dtype=float), condition_number=1.0, n_markers=1,
        ...     method="t-test")
        >>> res.gene_weights.round(4).tolist()
        [0.0296, 1.9704]
        """
        w = 1.0 / (self.signature.mean(axis=1) + self.pseudocount)
        return (w / w.mean()).rename("weight")

    def to_cell_fractions(self, proportions):
        """Convert estimated RNA fractions into cell fractions.

        A signature of mean normalised expression (CPM) fitted to a bulk
        estimates the share of the bulk's RNA that comes from each type.
        Cell types differ in RNA per cell (monocytes carry more than
        lymphocytes, platelets far less), so the share of *cells* is
        ``f_t = (r_t / c_t) / sum_u (r_u / c_u)`` with ``c_t`` the RNA
        content (:attr:`rna_content`, the mean library size of the type).

        Parameters
        ----------
        proportions : pandas.DataFrame
            Samples x types (e.g. ``deconvolve(...).proportions``); its columns
            must be types of this signature.

        Returns
        -------
        pandas.DataFrame
            Samples x types, rows summing to 1 (rows that were all 0 stay 0).

        Examples
        --------
        >>> import pandas as pd
        >>> from fastdeconv.reference import SignatureResult
        >>> res = SignatureResult(signature=pd.DataFrame(), markers=pd.DataFrame(),
        ...     statistics=pd.DataFrame(), rna_content=pd.Series({"T": 1000.0, "Mono": 3000.0}),
        ...     n_cells=pd.Series(dtype=float), condition_number=1.0, n_markers=1, method="t-test")
        >>> res.to_cell_fractions(pd.DataFrame({"T": [0.5], "Mono": [0.5]})).round(3)
              T   Mono
        0  0.75   0.25
        """
        from fastdeconv.deconvolve import to_cell_fractions

        p = pd.DataFrame(proportions)
        unknown = [c for c in p.columns if c not in self.rna_content.index]
        if unknown:
            raise ValueError(
                f"proportions has columns that are not types of this signature: {unknown[:5]}"
            )
        return to_cell_fractions(p, self.rna_content)

    def summary(self):
        """A short text description: types, cells, markers, condition number."""
        lines = [
            f"Signature: {self.signature.shape[0]} genes x {self.signature.shape[1]} cell types "
            f"(method={self.method}, {self.n_markers} markers per type requested, "
            f"condition number {self.condition_number:.3g})"
        ]
        per_type = self.markers.groupby("cell_type", sort=False).size()
        for t in self.signature.columns:
            top = self.markers.loc[self.markers["cell_type"] == t, "gene"].head(5).tolist()
            lines.append(
                f"  {t}: {int(self.n_cells[t])} cells, RNA content {self.rna_content[t]:.4g}, "
                f"{int(per_type.get(t, 0))} markers (top: {', '.join(top) or '-'})"
            )
        if self.clusters is not None:
            lines.append("  cell types are clusters: their names are arbitrary, not cell types")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self):
        return self.summary()


# ------------------------------------------------------------ clustering ----
def cluster_cells(
    counts,
    n_clusters,
    *,
    layer=None,
    gene_names=None,
    n_top_genes=2000,
    n_components=20,
    n_init=10,
    seed=0,
    n_jobs=None,
):
    """Cluster cells without labels: log-CPM, variable genes, PCA, k-means.

    Steps: counts per million, ``log1p``; the ``n_top_genes`` genes with the
    largest variance of ``log1p`` CPM; the first ``n_components`` principal
    components of those genes (centred, truncated SVD without densifying a
    sparse matrix); k-means with ``n_init`` k-means++ restarts from a seeded
    generator, keeping the partition with the smallest within-cluster sum of
    squares.

    Parameters
    ----------
    counts : array, scipy.sparse matrix, DataFrame or AnnData
        Genes x cells counts (AnnData: cells x genes), as for :func:`build_signature`.
    n_clusters : int
        Number of clusters, ``2 <= n_clusters <= n_cells / 2``.
    layer, gene_names
        As for :func:`build_signature`.
    n_top_genes : int, default 2000
        Highly variable genes used.
    n_components : int, default 20
        Principal components (capped by the data size).
    n_init : int, default 10
        k-means restarts.
    seed : int, default 0
        Seed of all random choices (SVD start vector, k-means++).
    n_jobs : int, optional
        Threads for the pass over the counts (default: all cores).

    Returns
    -------
    pandas.Series
        Cell id -> cluster name ``cluster_0`` (largest) ... ``cluster_{k-1}``
        (zero-padded from 10 clusters on: ``cluster_00``).  The names are
        arbitrary: match them to cell types by their markers.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.reference import cluster_cells
    >>> rng = np.random.default_rng(0)
    >>> mu = np.repeat(rng.gamma(1.0, 5.0, size=(200, 2)), [30, 20], axis=1)
    >>> labels = cluster_cells(rng.poisson(mu), 2, seed=0)
    >>> labels.value_counts().tolist()
    [30, 20]
    """
    c = _as_counts(counts, layer, gene_names)
    _check_values(c, "t-test")
    return _cluster(c, n_clusters, n_top_genes, n_components, n_init, seed, _n_jobs(n_jobs))


def _positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _n_jobs(n_jobs):
    if n_jobs is None:
        return os.cpu_count() or 1
    return _positive_int(n_jobs, "n_jobs")


def _cluster(c, n_clusters, n_top_genes, n_components, n_init, seed, n_jobs=1):
    from scipy.cluster.vq import ClusterError, kmeans2
    from scipy.sparse.linalg import LinearOperator, svds

    sp = _sparse_module()
    n_clusters = _positive_int(n_clusters, "n_clusters", 2)
    if n_clusters > c.n_cells // 2:
        raise ValueError(
            f"n_clusters={n_clusters} is too large for {c.n_cells} cells: each cluster needs at "
            f"least 2 cells, so n_clusters <= {c.n_cells // 2}"
        )
    n_top_genes = _positive_int(n_top_genes, "n_top_genes", 2)
    n_components = _positive_int(n_components, "n_components", 1)
    n_init = _positive_int(n_init, "n_init", 1)
    lib = c.library_sizes()
    _check_library(lib, c)
    scale = 1e6 / lib
    sums = c.group_sums(np.zeros(c.n_cells, np.int64), 1, scale, n_jobs)
    mean = sums["log_sum"][:, 0] / c.n_cells
    var = sums["log_sq"][:, 0] / c.n_cells - mean * mean
    n_hvg = min(n_top_genes, c.n_genes)
    hvg = np.sort(np.argsort(-var, kind="stable")[:n_hvg])
    # cells x hvg matrix of log1p CPM
    if c.sparse:
        x = sp.csr_array(c.matrix)[hvg] if c.matrix.format != "csr" else c.matrix[hvg]
        x = sp.csr_array(x.T.multiply(scale[:, None]))
        x.data = np.log1p(x.data)
    else:
        x = np.log1p(np.asarray(c.matrix[hvg], dtype=np.float64).T * scale[:, None])
    mu = mean[hvg]
    k = max(1, min(n_components, n_hvg - 1, c.n_cells - 1))
    rng = np.random.default_rng(seed)
    # PCA of the centred matrix without forming it (sparse stays sparse)
    op = LinearOperator(
        (c.n_cells, n_hvg),
        matvec=lambda v: x @ np.ravel(v) - mu @ np.ravel(v),
        rmatvec=lambda u: x.T @ np.ravel(u) - mu * np.sum(u),
        dtype=np.float64,
    )
    u, s, _ = svds(op, k=k, rng=rng)
    pcs = u * s
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        try:
            centres, assign = kmeans2(pcs, n_clusters, minit="++", rng=rng, missing="raise")
        except ClusterError:  # a cluster emptied during the iterations: next restart
            continue
        inertia = float(((pcs - centres[assign]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = assign, inertia
    if best is None:
        raise ValueError(
            f"k-means found no partition into {n_clusters} non-empty clusters in {n_init} "
            "restarts; ask for fewer clusters"
        )
    sizes = np.bincount(best, minlength=n_clusters)
    if sizes.min() < 2:
        raise ValueError(
            f"a cluster has fewer than 2 cells (sizes {sorted(sizes.tolist(), reverse=True)}); "
            "ask for fewer clusters"
        )
    rename = np.empty(n_clusters, np.int64)
    rename[np.argsort(-sizes, kind="stable")] = np.arange(n_clusters)
    width = len(str(n_clusters - 1))  # cluster_01 ... cluster_11 sort in size order
    names = np.array([f"cluster_{i:0{width}d}" for i in range(n_clusters)])[rename[best]]
    return pd.Series(names, index=c.cells, name="cluster")


def _check_library(lib, c):
    empty = lib <= 0
    if empty.any():
        ex = c.cells[empty][:5].tolist()
        raise ValueError(
            f"{int(empty.sum())} cells have no counts at all (e.g. {ex}); remove empty cells "
            "before building a signature"
        )


# ------------------------------------------------------------- the pipeline ---
def build_signature(
    counts,
    labels=None,
    *,
    label_key=None,
    layer=None,
    method="t-test",
    n_markers=None,
    fdr=0.05,
    min_log_fc=1.0,
    min_frac=0.1,
    rank_by="specificity",
    normalization="cpm",
    average="cells",
    pseudocount=1.0,
    candidate_genes=None,
    gene_names=None,
    n_clusters=None,
    seed=0,
    n_jobs=None,
):
    """Build a signature matrix and a marker table from labelled single cells.

    Parameters
    ----------
    counts : array, scipy.sparse matrix, DataFrame or AnnData
        Raw counts.  Arrays, sparse matrices and DataFrames are genes x cells
        (a DataFrame has genes as index and cell ids as columns); CSR and CSC
        are both read in place.  An AnnData object is cells x genes, as usual;
        its ``.X`` or ``.layers[layer]`` is used.
    labels : sequence or pandas.Series, optional
        Cell type of each cell.  A Series indexed by cell ids is aligned to
        the cells of ``counts``.  Leave out (with ``n_clusters``) to cluster.
    label_key : str, optional
        AnnData only: the ``.obs`` column holding the cell types.
    layer : str, optional
        AnnData only: the layer with raw counts (default ``.X``).
    method : {"t-test", "poisson", "nb"}, default "t-test"
        The test of each type against all other cells: Welch's t-test on
        ``log1p`` of the normalised values; a Poisson likelihood-ratio test
        on the counts with library-size offsets; or a negative-binomial
        likelihood-ratio test with a per-gene dispersion (method of moments).
        The two likelihood-ratio tests need integer counts.
    n_markers : int or "auto", optional
        Markers kept per type (the top of the ranking below).  Default
        :data:`DEFAULT_N_MARKERS` (25, about the size per type of LM22),
        capped at the number of genes.  ``"auto"``
        tries 5, 10, ..., 100 and keeps the size whose signature has the
        smallest condition number, as CIBERSORT does.
    fdr : float, default 0.05
        Largest Benjamini-Hochberg adjusted p-value of a marker (per type,
        over all tested genes).
    min_log_fc : float, default 1.0
        Smallest log2 fold change of a marker's mean against the mean of all
        other cells (1.0 = two-fold).
    min_frac : float, default 0.1
        Smallest fraction of the type's cells expressing the marker (count > 0).
    rank_by : {"specificity", "fold_change", "statistic"}, default "specificity"
        How the genes passing the three filters are ranked: by the log2 fold
        change against the *next highest* type (markers that separate a type
        from its closest neighbour, which is what the solver needs); by the
        fold change against all other cells (CIBERSORT's rule); or by the test
        statistic.
    normalization : {"cpm", "none"}, default "cpm"
        ``"cpm"`` scales each cell to 10**6 counts before averaging and
        testing; ``"none"`` uses the values as given (already normalised data).
    average : {"cells", "pooled"}, default "cells"
        How the signature averages a type's cells.  ``"cells"``: the mean of
        the cells' normalised values (each cell normalised, then averaged).
        ``"pooled"``: the normalised sum of the type's counts
        (``sum_c x_gc / sum_c L_c * 10**6``), i.e. the library-size-weighted
        mean -- exactly what a bulk made of these cells adds up to, and less
        noisy when few cells with very different library sizes make a type.
        The same with ``normalization="none"``.  The marker statistics use the
        per-cell values either way.
    pseudocount : float, default 1.0
        Added to both means in the fold changes (in normalised units).
    candidate_genes : sequence of str, optional
        Genes allowed as markers, e.g. ``bulk.index`` so that every marker is
        measured by the bulk platform.  Library sizes still use all genes.
    gene_names : sequence of str, optional
        Gene names of an array / sparse matrix (rows).  Default ``gene0 ...``.
    n_clusters : int, optional
        Without labels: cluster the cells into this many groups first
        (:func:`cluster_cells`) and build the signature of the clusters.
    seed : int, default 0
        Seed of the clustering.
    n_jobs : int, optional
        Threads for the one pass over the counts (default: all cores).  The
        kernel releases the GIL; each thread sums a chunk of the stored rows.

    Returns
    -------
    SignatureResult
        ``.signature`` (genes x types), ``.markers``, ``.statistics``,
        ``.rna_content``, ``.clusters`` (when clustered) and diagnostics.

    Raises
    ------
    ValueError
        Empty input, NaN/inf or negative counts, non-integer counts for a
        likelihood-ratio test, labels of the wrong length, a type with fewer
        than 2 cells, ``n_markers`` larger than the number of genes, AnnData
        without ``label_key``, and other invalid options.

    Notes
    -----
    All statistics come from per-type sums (sum, sum of squares, non-zero
    count) gathered in one pass over the non-zero counts; nothing loops over
    genes in Python.  The signature is the mean normalised expression per
    type (linear scale), so a bulk deconvolved with it yields RNA fractions;
    :meth:`SignatureResult.to_cell_fractions` converts them to cell fractions
    with the types' mean library sizes.

    References
    ----------
    Newman, A. M. et al. (2015). Robust enumeration of cell subsets from tissue
    expression profiles. Nat. Methods 12, 453-457 (marker ranking by fold
    change, signature size chosen by the condition number).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv import build_signature
    >>> rng = np.random.default_rng(0)
    >>> mu = rng.gamma(1.0, 2.0, size=(300, 3))
    >>> mu[:10, 0] *= 20; mu[10:20, 1] *= 20; mu[20:30, 2] *= 20  # planted markers
    >>> labels = np.repeat(["T", "B", "NK"], 40)
    >>> counts = rng.poisson(mu[:, [0] * 40 + [1] * 40 + [2] * 40])
    >>> res = build_signature(counts, labels, n_markers=10)
    >>> res.signature.shape
    (30, 3)
    >>> sorted(res.signature.columns)
    ['B', 'NK', 'T']
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}")
    if rank_by not in _RANKS:
        raise ValueError(f"rank_by must be one of {_RANKS}; got {rank_by!r}")
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}; got {average!r}")
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {_NORMALIZATIONS}; got {normalization!r}")
    for name, value, lo, hi in (("fdr", fdr, 0.0, 1.0), ("min_frac", min_frac, 0.0, 1.0)):
        if not (isinstance(value, (int, float)) and lo <= value <= hi):
            raise ValueError(f"{name} must be a number in [{lo}, {hi}]; got {value!r}")
    if not (isinstance(pseudocount, (int, float)) and pseudocount > 0):
        raise ValueError(f"pseudocount must be a positive number; got {pseudocount!r}")
    if not isinstance(min_log_fc, (int, float)) or not np.isfinite(min_log_fc):
        raise ValueError(f"min_log_fc must be a finite number; got {min_log_fc!r}")

    c = _as_counts(counts, layer, gene_names)
    if n_markers is None:
        n_markers = min(DEFAULT_N_MARKERS, c.n_genes)
    if isinstance(n_markers, str):
        if n_markers != "auto":
            raise ValueError(f"n_markers must be a positive integer or 'auto'; got {n_markers!r}")
    else:
        n_markers = _positive_int(n_markers, "n_markers")
        if n_markers > c.n_genes:
            raise ValueError(
                f"n_markers={n_markers} is larger than the number of genes ({c.n_genes}); "
                "choose fewer markers per type"
            )
    _check_values(c, method)
    values = _as_labels(labels, label_key, counts, c)
    clusters = None
    if values is None:
        if n_clusters is None:
            raise ValueError(
                "no labels: pass labels= (one cell type per cell), label_key= for AnnData, "
                "or n_clusters= to cluster the cells first"
            )
        clusters = _cluster(c, n_clusters, 2000, 20, 10, seed, _n_jobs(n_jobs))
        values = clusters.to_numpy().astype(str)
    elif n_clusters is not None:
        raise ValueError("pass either labels (or label_key) or n_clusters, not both")
    types, groups, n = _encode(values)

    lib = c.library_sizes()
    _check_library(lib, c)
    scale = 1e6 / lib if normalization == "cpm" else np.ones(c.n_cells)
    sums = c.group_sums(groups, len(types), scale, _n_jobs(n_jobs))
    lib_by_group = np.bincount(groups, weights=lib, minlength=len(types))

    genes = c.genes
    if candidate_genes is not None:
        keep = genes.isin(pd.Index(candidate_genes).astype(str))
        if not keep.any():
            raise ValueError(
                "none of candidate_genes is a gene of counts; check the gene identifiers "
                f"(counts has e.g. {genes[:3].tolist()})"
            )
        rows = np.flatnonzero(keep)
        sums = {k: v[rows] for k, v in sums.items()}
        genes = genes[rows]
    st = _statistics(sums, n.astype(np.float64), lib_by_group, method, float(pseudocount))
    candidates = _ranked_candidates(st, rank_by, fdr, min_log_fc, min_frac)
    if average == "pooled" and normalization == "cpm":
        profile = sums["count_sum"] / lib_by_group[None, :] * 1e6
    else:
        profile = st["mean_expression"]

    kappas = None
    if n_markers == "auto":
        grid = [g for g in AUTO_MARKER_GRID if g <= len(genes)] or [len(genes)]
        kappas = pd.Series(
            [_condition_number(profile[_union_top(candidates, g)]) for g in grid],
            index=pd.Index(grid, name="n_markers"),
            name="condition_number",
        )
        n_markers = int(kappas.idxmin())
    chosen = _union_top(candidates, n_markers)

    notes = []
    short = [
        f"{t} ({len(cand)})" for t, cand in zip(types, candidates) if len(cand) < n_markers
    ]
    if short:
        msg = (
            f"fewer than {n_markers} genes pass the marker rule (fdr <= {fdr}, log2 fold change "
            f">= {min_log_fc}, expressed in >= {min_frac:.0%} of cells) for: {', '.join(short)}; "
            "their columns rest on fewer markers (relax the thresholds to get more)"
        )
        notes.append(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
    if chosen.size == 0:
        raise ValueError(
            "no gene passes the marker rule for any cell type; relax fdr, min_log_fc or "
            "min_frac, or check that the labels match the counts"
        )

    signature = pd.DataFrame(profile[chosen], index=genes[chosen], columns=types)
    signature.index.name = "gene"
    kappa = _condition_number(signature.to_numpy())
    statistics = _long_table(st, genes, types)
    rows = []
    for t, cand in enumerate(candidates):
        sel = cand[:n_markers]
        part = statistics.iloc[sel * len(types) + t].copy()
        part["rank"] = np.arange(1, sel.size + 1)
        rows.append(part)
    marker_table = pd.concat(rows, ignore_index=True) if rows else statistics.iloc[:0]
    return SignatureResult(
        signature=signature,
        markers=marker_table,
        statistics=statistics,
        rna_content=pd.Series(lib_by_group / n, index=types, name="rna_content"),
        n_cells=pd.Series(n, index=types, name="n_cells"),
        condition_number=kappa,
        n_markers=int(n_markers),
        method=method,
        condition_numbers=kappas,
        clusters=clusters,
        notes=notes,
        pseudocount=float(pseudocount),
    )


def _long_table(st, genes, types):
    """Genes x types arrays -> one row per (gene, type), gene-major."""
    n_genes, k = st["statistic"].shape
    table = {
        "gene": np.repeat(np.asarray(genes, dtype=object), k),
        "cell_type": np.tile(np.asarray(types, dtype=object), n_genes),
    }
    for col in _MARKER_COLUMNS[2:]:
        table[col] = st[col].ravel()
    return pd.DataFrame(table, columns=_MARKER_COLUMNS)
