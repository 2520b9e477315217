"""Signatures from single-cell data: marker genes, mean profiles, clusters.

:func:`build_signature` turns a single-cell count matrix (genes x cells, dense
or sparse, or an AnnData object) and one label per cell into a signature
matrix (genes x cell types) for :func:`fastdeconv.deconvolve`:

1. library-size normalisation (counts per million by default);
2. per-gene, per-type sums in one Numba pass over the non-zero counts
   (:mod:`fastdeconv.kernels.markers`);
3. a test of each type against all other cells for every gene (Welch's t on
   ``log1p`` CPM, or a Poisson / negative-binomial likelihood-ratio test on
   the counts), Benjamini-Hochberg FDR per type (:mod:`fastdeconv.marker_stats`);
4. a documented marker rule (FDR, fold change, fraction of expressing cells,
   then the ``n_markers`` most specific genes per type);
5. the signature: the mean normalised expression of each type on the union of
   the markers, on the linear scale.

Without labels the cells are clustered first (log-CPM, highly variable genes,
PCA, seeded k-means) and the clusters play the role of the cell types.

The marker tests and the RNA contents need raw counts: normalised values
(CPM/TPM, log1p) are refused unless ``normalized=`` says what they are
(:func:`fastdeconv.inputs.counts.check_raw`).  Problems with a remedy are
:class:`fastdeconv.errors.InputProblem`, and the notes of a result are
:class:`Note` objects, so that the command line can spell each remedy as its flag.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fastdeconv import marker_stats
from fastdeconv._checks import check_choice, check_float, check_int
from fastdeconv._parallel import resolve_n_jobs
from fastdeconv._progress import advancer, progress_bar, show_progress
from fastdeconv.errors import Fix, InputProblem, Placeholder, literal
from fastdeconv.inputs.counts import (
    as_counts,
    as_labels,
    check_barcodes,
    check_raw,
)
from fastdeconv.results import Result

__all__ = ["build_signature", "SignatureResult", "cluster_cells", "Note"]

_METHODS = ("t-test", "poisson", "nb")
_RANKS = ("specificity", "fold_change", "statistic")
_NORMALIZATIONS = ("cpm", "none")
_AVERAGES = ("cells", "pooled")
#: grid of markers per type tried by ``n_markers="auto"`` (CIBERSORT tries 50..200
#: on bulk-derived references; single-cell signatures are noisier, so smaller sizes)
AUTO_MARKER_GRID = tuple(range(5, 105, 5))
#: markers per type when ``n_markers`` is not given
DEFAULT_N_MARKERS = 25
#: stored counts (non-zeros of a sparse matrix) above which a bar is shown by default:
#: about a second of the pass over the counts on two cores
PROGRESS_VALUES = 20_000_000
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


# ----------------------------------------------------------------- notes ----
class Note(str):
    """A note of a result: its text (remedies as keywords), and :meth:`render` for flags.

    A ``str``, so ``result.notes`` reads as text; the command line shows
    ``note.render(FLAGS)``, which spells each remedy as its own flag.

    Parameters
    ----------
    template : str
        The text, with ``{0}``, ``{1}``, ... where the options go (see
        :class:`fastdeconv.errors.InputProblem`).
    *fixes : fastdeconv.errors.Fix
        The options, in the order of the placeholders.
    warning : bool, default False
        Whether the note is also issued as a ``UserWarning`` (something the
        user should act on), rather than information they asked for.

    Examples
    --------
    >>> from fastdeconv.errors import Fix
    >>> from fastdeconv.signature import Note
    >>> note = Note("few markers; relax {0}", Fix("min_frac", 0.05), warning=True)
    >>> note, note.render({"min_frac": "--min-frac"}), note.warning
    ('few markers; relax min_frac=0.05', 'few markers; relax --min-frac 0.05', True)
    """

    def __new__(cls, template, *fixes, warning=False):
        problem = InputProblem(template, *fixes)
        note = super().__new__(cls, str(problem))
        note.problem, note.warning = problem, bool(warning)
        return note

    def render(self, flags):
        """The note with every option spelled as a command-line flag.

        Parameters
        ----------
        flags : dict
            Keyword -> flag (see :meth:`fastdeconv.errors.InputProblem.render`).

        Returns
        -------
        str
        """
        return self.problem.render(flags)

    def __reduce__(self):
        return (_note, (self.problem.template, self.problem.fixes, self.warning))


def _note(template, fixes, warning):
    return Note(template, *fixes, warning=warning)


def _relaxed(fdr, min_log_fc, min_frac):
    """Looser marker thresholds to suggest: {keyword: value}."""
    return {
        "fdr": round(min(1.0, max(4 * fdr, 0.2)), 6),
        "min_log_fc": round(min_log_fc / 2 if min_log_fc > 0 else min_log_fc - 0.5, 6),
        "min_frac": round(min_frac / 2, 6),
    }


def _rule_fixes(fdr, min_log_fc, min_frac):
    return Fix("fdr", fdr), Fix("min_log_fc", min_log_fc), Fix("min_frac", min_frac)


def _helpful_relaxations(st, short, fdr, min_log_fc, min_frac):
    """The relaxations (one threshold at a time) that add markers to the types in ``short``.

    Best first; all three when none helps (the rule is then not what limits them).
    """
    loose = _relaxed(fdr, min_log_fc, min_frac)
    tests = {
        "fdr": (st["fdr"] <= fdr, st["fdr"] <= loose["fdr"]),
        "min_log_fc": (st["log_fc"] >= min_log_fc, st["log_fc"] >= loose["min_log_fc"]),
        "min_frac": (st["frac_expressing"] >= min_frac, st["frac_expressing"] >= loose["min_frac"]),
    }
    gains = {}
    for key, (_, relaxed) in tests.items():
        others = np.ones_like(relaxed)
        for other, (strict, _) in tests.items():
            if other != key:
                others &= strict
        gains[key] = int((relaxed & others)[:, short].sum())
    base = int(np.logical_and.reduce([t[0] for t in tests.values()])[:, short].sum())
    helpful = sorted((k for k in gains if gains[k] > base), key=lambda k: -gains[k])
    return [Fix(k, loose[k]) for k in (helpful or list(tests))]


# ---------------------------------------------------------------- labels ----
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
        stat, p, _ = marker_stats.welch_t(sums["log_sum"], sums["log_sq"], n)
    elif method == "poisson":
        stat, p = marker_stats.poisson_lrt(sums["count_sum"], lib_by_group)
    else:
        stat, p = marker_stats.nb_lrt(sums["count_sum"], n, sums["count_sq"])
    fdr = marker_stats.bh_fdr(p, axis=0)
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
class SignatureResult(Result):
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
        RNA content, which turns RNA fractions into cell fractions
        (``deconvolve(...).to_cell_fractions(result)``).  Unknown when the
        signature was built from normalised values (``normalized=``): then 1
        for every type (see :attr:`rna_content_known`).
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
    notes : list of Note
        What the user should know (types with few markers, warned too; RNA
        contents unknown).  Each is a ``str``; :meth:`Note.render` spells its
        options as command-line flags.
    pseudocount : float
        The pseudocount of the fold changes, reused by :attr:`gene_weights`.
    rna_content_known : bool
        False when built from normalised values: :attr:`rna_content` is then
        1 for every type, and cell fractions computed with it equal the RNA
        fractions.

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
    rna_content_known: bool = True

    def to_frame(self):
        """The signature table.

        Returns
        -------
        pandas.DataFrame
            A copy of :attr:`signature` (genes x cell types).

        Examples
        --------
        >>> from fastdeconv import build_signature
        >>> res = build_signature([[9, 8, 0, 1], [0, 1, 7, 9]], ["T", "T", "B", "B"],
        ...                       gene_names=["CD3E", "MS4A1"], n_markers=1, fdr=1)
        >>> res.to_frame().round(-3)
                      B         T
        gene
        MS4A1  950000.0   56000.0
        CD3E    50000.0  944000.0
        """
        return self.signature.copy()

    def write(self, path, *, markers_path=None):
        """Write the signature (and optionally the marker table) atomically.

        Parameters
        ----------
        path : str or os.PathLike
            Signature file; TSV/CSV by extension, gzip if it ends in ``.gz``.
        markers_path : str or os.PathLike, optional
            Where to write :attr:`markers` too.

        Examples
        --------
        >>> import os, tempfile
        >>> from fastdeconv import build_signature
        >>> res = build_signature([[9, 8, 0, 1], [0, 1, 7, 9]], ["T", "T", "B", "B"],
        ...                       gene_names=["CD3E", "MS4A1"], n_markers=1, fdr=1)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     res.write(os.path.join(tmp, "sig.tsv"), markers_path=os.path.join(tmp, "m.tsv"))
        ...     print(open(os.path.join(tmp, "sig.tsv")).readline().split(),
        ...           open(os.path.join(tmp, "m.tsv")).readline().split()[:3])
        ['gene', 'B', 'T'] ['gene', 'cell_type', 'statistic']
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
        >>> from fastdeconv.signature import SignatureResult
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
        """Convert estimated RNA fractions into cell fractions (deprecated).

        Deprecated: this method takes the proportions, while every result's
        ``to_cell_fractions`` takes the RNA contents.  Use
        ``deconvolve(...).to_cell_fractions(signature_result)`` or
        ``fastdeconv.to_cell_fractions(proportions, signature_result.rna_content)``.

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
        >>> import warnings
        >>> import pandas as pd
        >>> from fastdeconv.signature import SignatureResult
        >>> res = SignatureResult(signature=pd.DataFrame(), markers=pd.DataFrame(),
        ...     statistics=pd.DataFrame(), rna_content=pd.Series({"T": 1000.0, "Mono": 3000.0}),
        ...     n_cells=pd.Series(dtype=float), condition_number=1.0, n_markers=1, method="t-test")
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     res.to_cell_fractions(pd.DataFrame({"T": [0.5], "Mono": [0.5]})).round(3)
              T   Mono
        0  0.75   0.25
        """
        from fastdeconv.fractions import to_cell_fractions

        warnings.warn(
            "SignatureResult.to_cell_fractions(proportions) is deprecated: use "
            "result.to_cell_fractions(signature_result) on the deconvolution result, or "
            "fastdeconv.to_cell_fractions(proportions, signature_result.rna_content)",
            DeprecationWarning,
            stacklevel=2,
        )
        p = pd.DataFrame(proportions)
        unknown = [c for c in p.columns if c not in self.rna_content.index]
        if unknown:
            raise ValueError(
                f"proportions has columns that are not types of this signature: {unknown[:5]}"
            )
        return to_cell_fractions(p, self.rna_content)

    def summary(self, notes=True):
        """A short text description: types, cells, markers, condition number.

        Parameters
        ----------
        notes : bool, default True
            End with the notes (the command line shows them on stderr instead).

        Returns
        -------
        str
            One line for the signature, one per cell type (cells, RNA content,
            markers), then the notes.  Also ``str(result)``.

        Examples
        --------
        >>> from fastdeconv import build_signature
        >>> res = build_signature([[9, 8, 0, 1], [0, 1, 7, 9]], ["T", "T", "B", "B"],
        ...                       gene_names=["CD3E", "MS4A1"], n_markers=1, fdr=1)
        >>> print(res.summary())  # doctest: +NORMALIZE_WHITESPACE
        Signature: 2 genes x 2 cell types (method=t-test, 1 markers per type requested,
        condition number 1.12)
          B: 2 cells, RNA content 8.5, 1 markers (top: MS4A1)
          T: 2 cells, RNA content 9, 1 markers (top: CD3E)
        """
        lines = [
            f"Signature: {self.signature.shape[0]} genes x {self.signature.shape[1]} cell types "
            f"(method={self.method}, {self.n_markers} markers per type requested, "
            f"condition number {self.condition_number:.3g})"
        ]
        per_type = self.markers.groupby("cell_type", sort=False).size()
        for t in self.signature.columns:
            top = self.markers.loc[self.markers["cell_type"] == t, "gene"].head(5).tolist()
            content = f"{self.rna_content[t]:.4g}" if self.rna_content_known else "unknown"
            lines.append(
                f"  {t}: {int(self.n_cells[t])} cells, RNA content {content}, "
                f"{int(per_type.get(t, 0))} markers (top: {', '.join(top) or '-'})"
            )
        if self.clusters is not None:
            lines.append("  cell types are clusters: their names are arbitrary, not cell types")
        if notes:
            lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def plot(self, path=None, **kwargs):
        """Heatmap of the signature: every marker's expression across the cell types.

        See :func:`fastdeconv.plotting.plot_signature`.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Save the figure there.
        **kwargs
            Passed to :func:`fastdeconv.plotting.plot_signature`.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from fastdeconv.plotting._signature import plot_signature

        return plot_signature(self, path=path, **kwargs)


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
    transpose=False,
    progress=None,
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
        Threads for the pass over the counts: None or -1 all cores (default),
        -2 all but one, a positive number that many.
    transpose : bool, default False
        ``counts`` is cells x genes (not AnnData): read it transposed.  Row
        names that look like cell barcodes, with column names that do not, are
        refused as a transposed table.
    progress : bool, optional
        Progress bar on stderr; default: shown when stderr is a terminal and
        the counts hold more than 2e7 stored values (non-zeros of a sparse
        matrix).

    Returns
    -------
    pandas.Series
        Cell id -> cluster name ``cluster_0`` (largest) ... ``cluster_{k-1}``
        (zero-padded from 10 clusters on: ``cluster_00``).  The names are
        arbitrary: match them to cell types by their markers.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.signature import cluster_cells
    >>> rng = np.random.default_rng(0)
    >>> mu = np.repeat(rng.gamma(1.0, 5.0, size=(200, 2)), [30, 20], axis=1)
    >>> labels = cluster_cells(rng.poisson(mu), 2, seed=0)
    >>> labels.value_counts().tolist()
    [30, 20]
    """
    n_jobs = resolve_n_jobs(n_jobs)
    c = as_counts(counts, layer=layer, gene_names=gene_names, transpose=transpose)
    c.check_values()
    check_barcodes(c)
    return _cluster(c, n_clusters, n_top_genes, n_components, n_init, seed, n_jobs,
                    _show(progress, c))


def _show(progress, c):
    """Whether the bars of a run on the counts ``c`` are shown (by the values the pass over
    the counts reads: the non-zeros of a sparse matrix)."""
    return show_progress(progress, c.values().size > PROGRESS_VALUES)


def _cluster(c, n_clusters, n_top_genes, n_components, n_init, seed, n_jobs=1, progress=False):
    n_clusters = check_int(n_clusters, "n_clusters", 2)
    if n_clusters > c.n_cells // 2:
        if c.n_cells < 4:
            raise ValueError(
                f"{c.n_cells} cells are too few to cluster: each of at least 2 clusters needs "
                "at least 2 cells"
            )
        raise InputProblem(
            f"{{0}} is too many clusters for {c.n_cells} cells: each cluster needs at least 2 "
            "cells; pass {1} or fewer",
            Fix("n_clusters", n_clusters),
            Fix("n_clusters", c.n_cells // 2),
        )
    n_top_genes = check_int(n_top_genes, "n_top_genes", 2)
    n_components = check_int(n_components, "n_components", 1)
    n_init = check_int(n_init, "n_init", 1)
    lib = c.library_sizes()
    _check_library(lib, c)
    rng = np.random.default_rng(seed)  # one stream: the PCA's start, then k-means++
    # the steps: the pass over the counts, the PCA, then each k-means restart
    with progress_bar(n_init + 2, progress, desc="clustering", unit="step",
                      compiling=True) as bar:
        pcs = _principal_components(c, 1e6 / lib, n_top_genes, n_components, n_jobs, rng, bar)
        best = _kmeans(pcs, n_clusters, n_init, rng, bar)
    fewer = Fix("n_clusters", n_clusters - 1) if n_clusters > 2 else None
    if best is None:
        raise _fewer_clusters(
            f"k-means found no partition into {n_clusters} non-empty clusters in {n_init} "
            "restarts", fewer,
        )
    sizes = np.bincount(best, minlength=n_clusters)
    if sizes.min() < 2:
        raise _fewer_clusters(
            f"a cluster has fewer than 2 cells (sizes {sorted(sizes.tolist(), reverse=True)})",
            fewer,
        )
    rename = np.empty(n_clusters, np.int64)
    rename[np.argsort(-sizes, kind="stable")] = np.arange(n_clusters)
    width = len(str(n_clusters - 1))  # cluster_01 ... cluster_11 sort in size order
    names = np.array([f"cluster_{i:0{width}d}" for i in range(n_clusters)])[rename[best]]
    return pd.Series(names, index=c.cells, name="cluster")


def _principal_components(c, scale, n_top_genes, n_components, n_jobs, rng, bar):
    """The cells' principal components of log1p CPM on the most variable genes."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import LinearOperator, svds

    sums = c.group_sums(np.zeros(c.n_cells, np.int64), 1, scale, n_jobs)
    bar.update(1)
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
    # PCA of the centred matrix without forming it (sparse stays sparse)
    op = LinearOperator(
        (c.n_cells, n_hvg),
        matvec=lambda v: x @ np.ravel(v) - mu @ np.ravel(v),
        rmatvec=lambda u: x.T @ np.ravel(u) - mu * np.sum(u),
        dtype=np.float64,
    )
    u, s, _ = svds(op, k=k, rng=rng)
    bar.update(1)
    return u * s


def _kmeans(pcs, n_clusters, n_init, rng, bar):
    """The k-means partition with the smallest within-cluster sum of squares (None: none)."""
    from scipy.cluster.vq import ClusterError, kmeans2

    best, best_inertia = None, np.inf
    for _ in range(n_init):
        try:
            centres, assign = kmeans2(pcs, n_clusters, minit="++", rng=rng, missing="raise")
            inertia = float(((pcs - centres[assign]) ** 2).sum())
        except ClusterError:  # a cluster emptied during the iterations: next restart
            inertia = np.inf
        if inertia < best_inertia:
            best, best_inertia = assign, inertia
        bar.update(1)
    return best


def _fewer_clusters(text, fewer):
    if fewer is None:
        return ValueError(f"{text}; the cells do not form 2 clusters: give labels instead")
    return InputProblem(f"{text}; ask for fewer clusters ({{0}} or fewer)", fewer)


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
    normalized=False,
    transpose=False,
    duplicates="raise",
    progress=None,
):
    """Build a signature matrix and a marker table from labelled single cells.

    Parameters
    ----------
    counts : array, scipy.sparse matrix, DataFrame or AnnData
        Raw counts.  Arrays, sparse matrices and DataFrames are genes x cells
        (a DataFrame has genes as index and cell ids as columns); CSR and CSC
        are both read in place.  An AnnData object is cells x genes, as usual;
        its ``.X`` or ``.layers[layer]`` is used.  Read by
        :func:`fastdeconv.inputs.counts.as_counts`.
    labels : sequence, pandas.Series, one-column DataFrame or str, optional
        Cell type of each cell.  A Series indexed by cell ids is aligned to
        the cells of ``counts``; with AnnData, a str names a column of
        ``.obs`` (see :func:`fastdeconv.inputs.counts.as_labels`).  Leave out
        (with ``n_clusters``) to cluster.
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
        testing; ``"none"`` uses the values as given.  Either way the values
        must be raw counts unless ``normalized`` says otherwise.
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
        Threads for the one pass over the counts: None or -1 all cores
        (default), -2 all but one, a positive number that many.  The kernel
        releases the GIL; each thread sums a chunk of the stored rows.
    normalized : {False, True, "log1p", "log2p1"}, default False
        What the values are.  ``False``: raw counts (whole numbers, cells with
        different totals); normalised values -- CPM/TPM (every cell with the
        same total), non-integer or log-transformed values -- are refused,
        because the RNA contents need each cell's library size.  ``True``:
        normalised values on the linear scale, used as they are; the RNA
        contents are then unknown (:attr:`SignatureResult.rna_content` is 1
        for every type, and a note says so).  ``"log1p"`` / ``"log2p1"``:
        ``ln(x + 1)`` (scanpy's and Seurat's log-normalisation) or
        ``log2(x + 1)`` values, un-logged first; when that gives whole numbers
        they are the raw counts again (RNA contents known).  See
        :func:`fastdeconv.inputs.counts.check_raw`.
    transpose : bool, default False
        ``counts`` (array, sparse matrix or DataFrame) is cells x genes: read
        it transposed (a view, no copy).
    duplicates : {"raise", "sum"}, default "raise"
        Genes named twice in ``counts``: refuse, or add their counts up.
    progress : bool, optional
        Progress bar on stderr; default: shown when stderr is a terminal and
        the counts hold more than 2e7 stored values (non-zeros of a sparse
        matrix).  It counts the cells of the pass over the counts (and, when
        clustering, the clustering's steps).

    Returns
    -------
    SignatureResult
        ``.signature`` (genes x types), ``.markers``, ``.statistics``,
        ``.rna_content``, ``.clusters`` (when clustered) and diagnostics.

    Raises
    ------
    TypeError
        Counts that are not a numeric matrix, options of the wrong type
        (e.g. ``n_markers=2.5``, ``n_jobs="4"``).
    ValueError
        Empty input, NaN/inf or negative counts, normalised values without
        ``normalized`` (and non-integer values for a likelihood-ratio test),
        counts that look transposed (the labels name their rows), labels of
        the wrong length, a type with fewer than 2 cells, ``n_markers``
        larger than the number of genes, AnnData without ``label_key``, and
        other invalid options.  Those with a remedy that is an option are
        :class:`fastdeconv.errors.InputProblem`.

    Notes
    -----
    All statistics come from per-type sums (sum, sum of squares, non-zero
    count) gathered in one pass over the non-zero counts; nothing loops over
    genes in Python.  The signature is the mean normalised expression per
    type (linear scale), so a bulk deconvolved with it yields RNA fractions;
    ``deconvolve(...).to_cell_fractions(result)`` converts them to cell
    fractions with the types' mean library sizes (:attr:`SignatureResult.rna_content`).

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
    check_choice(method, "method", _METHODS)
    check_choice(rank_by, "rank_by", _RANKS)
    check_choice(average, "average", _AVERAGES)
    check_choice(normalization, "normalization", _NORMALIZATIONS)
    fdr = check_float(fdr, "fdr", minimum=0.0, allow_minimum=True, maximum=1.0, allow_maximum=True)
    min_frac = check_float(
        min_frac, "min_frac", minimum=0.0, allow_minimum=True, maximum=1.0, allow_maximum=True
    )
    pseudocount = check_float(pseudocount, "pseudocount")
    min_log_fc = check_float(min_log_fc, "min_log_fc", minimum=-np.inf)
    n_jobs = resolve_n_jobs(n_jobs)

    c = as_counts(
        counts, layer=layer, gene_names=gene_names, transpose=transpose, duplicates=duplicates
    )
    if n_markers is None:
        n_markers = min(DEFAULT_N_MARKERS, c.n_genes)
    if isinstance(n_markers, str):
        if n_markers != "auto":
            raise ValueError(f"n_markers must be a positive integer or 'auto'; got {n_markers!r}")
    else:
        n_markers = check_int(n_markers, "n_markers")
        if n_markers > c.n_genes:
            raise InputProblem(
                f"{{0}} asks for more markers per type than counts has genes ({c.n_genes}); "
                "pass {1} or fewer",
                Fix("n_markers", n_markers),
                Fix("n_markers", c.n_genes),
            )
    c.check_values()
    values = as_labels(labels, c, label_key=label_key)  # before the scale: transposed first
    if values is None:
        if n_clusters is None:
            raise _no_labels(c)
        check_barcodes(c)
    given = normalized
    c = check_raw(
        c,
        normalized,
        needs="the RNA contents of the signature need each cell's library size, and the "
        "marker tests raw counts",
        if_normalized="the RNA contents are then unknown",
    )
    if method != "t-test" and not c.is_integer():
        raise InputProblem(
            "{0} is a likelihood-ratio test on raw counts, but the values are normalised (not "
            "whole numbers); use {1}, or pass the raw counts",
            Fix("method", method),
            Fix("method", "t-test"),
        )
    clusters = None
    show = _show(progress, c)
    if values is None:
        clusters = _cluster(c, n_clusters, 2000, 20, 10, seed, n_jobs, show)
        values = clusters.to_numpy().astype(str)
    elif n_clusters is not None:
        raise ValueError("pass either labels (or label_key) or n_clusters, not both")
    notes = []
    if c.normalized:
        notes.append(Note(
            "built from normalised values ({0}): without library sizes the RNA contents are "
            "unknown, so rna_content is 1 for every type and cell fractions computed with it "
            "equal the RNA fractions",
            Fix("normalized", given),
        ))
    elif given is not False:
        notes.append(Note(
            "the un-logged values ({0}) are whole numbers: read as the raw counts",
            Fix("normalized", given),
        ))
    types, groups, n = _encode(values)

    lib = c.library_sizes()
    _check_library(lib, c)
    scale = 1e6 / lib if normalization == "cpm" else np.ones(c.n_cells)
    with progress_bar(c.n_cells, show, desc="signature", unit="cell",
                      compiling=True) as bar:
        sums = c.group_sums(groups, len(types), scale, n_jobs, advance=advancer(bar))
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
    st = _statistics(sums, n.astype(np.float64), lib_by_group, method, pseudocount)
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

    short = [t for t, cand in enumerate(candidates) if len(cand) < n_markers]
    if chosen.size == 0:
        loose = _relaxed(fdr, min_log_fc, min_frac)
        raise InputProblem(
            "no gene passes the marker rule ({0}, {1}, {2}: FDR, log2 fold change, fraction of "
            "the type's cells expressing the gene) for any cell type; relax it (e.g. {3}, {4}, "
            "{5}), or check that the labels match the counts",
            *_rule_fixes(fdr, min_log_fc, min_frac),
            *(Fix(k, v) for k, v in loose.items()),
        )
    if short:
        listed = ", ".join(f"{types[t]} ({len(candidates[t])})" for t in short)
        relax = _helpful_relaxations(st, short, fdr, min_log_fc, min_frac)
        note = Note(
            f"fewer than {n_markers} genes pass the marker rule ({{0}}, {{1}}, {{2}}: FDR, log2 "
            "fold change, fraction of the type's cells expressing the gene) for: "
            f"{literal(listed)}; their columns rest on fewer markers (to get more, relax "
            + " or ".join(f"{{{3 + i}}}" for i in range(len(relax)))
            + ")",
            *_rule_fixes(fdr, min_log_fc, min_frac),
            *relax,
            warning=True,
        )
        notes.append(note)
        warnings.warn(str(note), UserWarning, stacklevel=2)

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
        rna_content=pd.Series(
            lib_by_group / n if not c.normalized else np.ones(len(types)),
            index=types,
            name="rna_content",
        ),
        n_cells=pd.Series(n, index=types, name="n_cells"),
        condition_number=kappa,
        n_markers=int(n_markers),
        method=method,
        condition_numbers=kappas,
        clusters=clusters,
        notes=notes,
        pseudocount=float(pseudocount),
        rna_content_known=not c.normalized,
    )


def _no_labels(c):
    """The error for neither labels nor ``n_clusters``."""
    if c.obs is not None:
        columns = list(c.obs.columns)
        likely = [k for k in columns if any(w in str(k).lower() for w in ("type", "label", "cell"))]
        key = likely[0] if likely else (columns[0] if columns else Placeholder("COLUMN"))
        return InputProblem(
            "AnnData input needs {0} naming the cell-type column of .obs (its columns: "
            f"{literal(columns)}), or {{1}} to cluster the cells",
            Fix("label_key", key),
            Fix("n_clusters", Placeholder("N")),
        )
    return InputProblem(
        "no labels: give one cell type per cell ({0}), or {1} to cluster the cells first",
        Fix("labels", Placeholder("LABELS")),
        Fix("n_clusters", Placeholder("N")),
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
