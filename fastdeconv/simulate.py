"""Synthetic benchmarks and pseudo-bulk mixtures with known proportions.

Two generators, both seeded and vectorised:

* :func:`synthetic` draws a whole benchmark from a generative model: a
  log-normal baseline expression per gene, per-type profiles with marker genes
  up-regulated in one type, Dirichlet proportions and count noise
  (negative-binomial or Poisson) at a realistic sequencing depth.
* :func:`pseudobulk` mixes the cells of a labelled single-cell reference into
  bulk samples with known cell fractions, and reports both the cell fractions
  and the RNA fractions (they differ when cell types carry different amounts of
  RNA).

The results are plain DataFrames with names, ready for :func:`fastdeconv.deconvolve`
and :func:`fastdeconv.metrics.evaluate`.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fastdeconv._checks import check_float, check_int
from fastdeconv._progress import progress_bar, show_progress
from fastdeconv.errors import Fix, InputProblem
from fastdeconv.inputs.counts import as_counts, as_labels, check_raw

__all__ = [
    "SyntheticData",
    "PseudobulkData",
    "BenchmarkReport",
    "synthetic",
    "pseudobulk",
    "dirichlet_fractions",
    "split_cells",
    "split_pseudobulk",
    "SplitPseudobulk",
    "run_benchmark",
]

_CPM = 1e6
#: What pseudo-bulk needs raw counts for, and what it lacks without them (for messages).
_NEEDS_RAW = "pseudo-bulk samples are sums of raw counts, and the RNA fractions need library sizes"
_IF_NORMALIZED = "every cell then counts the same, so the RNA fractions equal the cell fractions"
#: Cells drawn per block of pseudo-bulk samples (the bar advances between blocks).
_DRAWS_PER_BLOCK = 1 << 16
#: Counts added up (cells drawn times their stored values) above which :func:`pseudobulk`
#: shows its bar by default: about a second of work.
PROGRESS_VALUES = 100_000_000


def _alpha_vector(alpha, types):
    """Dirichlet concentration per type from a scalar, a sequence or a mapping."""
    k = len(types)
    if isinstance(alpha, dict):
        unknown = sorted(set(alpha) - set(types), key=str)
        if unknown:
            raise ValueError(
                f"alpha names unknown cell types {unknown}; known types: {list(types)}"
            )
        missing = [t for t in types if t not in alpha]
        if missing:
            raise ValueError(f"alpha gives no value for cell types {missing}")
        alpha = [alpha[t] for t in types]
    elif isinstance(alpha, pd.Series):
        return _alpha_vector(alpha.to_dict(), types)
    if np.ndim(alpha) == 0:
        alpha = np.full(k, check_float(alpha, "alpha"))
    alpha = np.asarray(alpha, dtype=np.float64)
    if alpha.shape != (k,):
        raise ValueError(
            f"alpha must be a scalar or have one value per cell type ({k}), got shape {alpha.shape}"
        )
    if not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
        raise ValueError(f"alpha values must be finite and > 0, got {alpha.tolist()}")
    return alpha


def dirichlet_fractions(n_samples, types, *, alpha=1.0, seed=0):
    """Draw random cell-type fractions from a Dirichlet distribution.

    Parameters
    ----------
    n_samples : int
        Number of samples (rows).
    types : int or sequence of str
        Number of cell types (named ``type_1`` ...) or their names.
    alpha : float, sequence or dict, default 1.0
        Dirichlet concentration: a scalar for all types (1.0 is uniform on the
        simplex; small values give samples dominated by few types), one value
        per type, or a mapping type -> value.
    seed : int or numpy.random.Generator, default 0
        Random seed.

    Returns
    -------
    pandas.DataFrame
        Samples x types, rows summing to 1; samples named ``sample_0001`` ...

    Examples
    --------
    >>> from fastdeconv.simulate import dirichlet_fractions
    >>> f = dirichlet_fractions(4, ["T", "B", "NK"], seed=1)
    >>> f.shape
    (4, 3)
    >>> bool(abs(f.sum(axis=1) - 1).max() < 1e-12)
    True
    """
    n_samples = check_int(n_samples, "n_samples")
    if isinstance(types, numbers.Integral) and not isinstance(types, bool):
        types = _type_names(check_int(types, "types"))
    types = list(types)
    if len(types) == 0:
        raise ValueError("types must name at least one cell type")
    if len(set(types)) != len(types):
        raise ValueError(f"cell type names must be unique, got {types}")
    rng = np.random.default_rng(seed)
    frac = rng.dirichlet(_alpha_vector(alpha, types), size=n_samples)
    return pd.DataFrame(frac, index=_sample_names(n_samples), columns=types)


def _type_names(k):
    return [f"type_{i + 1}" for i in range(k)]


def _sample_names(n):
    width = max(4, len(str(n)))
    return [f"sample_{i + 1:0{width}d}" for i in range(n)]


def _gene_names(n):
    width = max(5, len(str(n)))
    return [f"gene_{i + 1:0{width}d}" for i in range(n)]


def _count_noise(rng, mean, noise, dispersion):
    """Draw counts with mean ``mean``: Poisson, or gamma-Poisson (negative binomial)."""
    if noise == "poisson":
        return rng.poisson(mean)
    if noise == "negative_binomial":
        # gamma-Poisson mixture: variance = mean + dispersion * mean**2
        shape = 1.0 / dispersion
        return rng.poisson(rng.gamma(shape, mean / shape))
    if noise == "none":
        return mean
    raise ValueError(f"noise must be 'negative_binomial', 'poisson' or 'none', got {noise!r}")


# ---------------------------------------------------------------------------
# synthetic benchmark
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticData:
    """A synthetic deconvolution benchmark with known proportions.

    Attributes
    ----------
    bulk : pandas.DataFrame
        Genes x samples, counts per million (the noisy counts divided by each
        sample's total and multiplied by 10**6).
    signature : pandas.DataFrame
        Genes x types, the noise-free type profiles in counts per million.
    proportions : pandas.DataFrame
        Samples x types, the true mixing proportions (rows sum to 1).
    counts : pandas.DataFrame
        Genes x samples, the raw simulated counts before normalisation.
    markers : dict
        Cell type -> list of its marker genes (up-regulated in that type only).
    params : dict
        The generator's parameters, for the record.

    Examples
    --------
    >>> from fastdeconv.simulate import synthetic
    >>> data = synthetic(n_genes=300, n_types=3, n_samples=5, seed=1)
    >>> data.bulk.shape, data.signature.shape, data.proportions.shape
    ((300, 5), (300, 3), (5, 3))
    """

    bulk: pd.DataFrame
    signature: pd.DataFrame
    proportions: pd.DataFrame
    counts: pd.DataFrame
    markers: dict
    params: dict = field(default_factory=dict)

    def __repr__(self):
        g, n = self.bulk.shape
        k = self.signature.shape[1]
        return f"SyntheticData({g} genes x {n} samples, {k} cell types, params={self.params})"


def synthetic(
    n_genes=2000,
    n_types=6,
    n_samples=200,
    *,
    seed=0,
    n_markers=None,
    marker_fold=10.0,
    type_sd=0.5,
    baseline_sd=1.5,
    alpha=1.0,
    depth=2e7,
    noise="negative_binomial",
    dispersion=0.02,
):
    """Generate a realistic synthetic bulk benchmark with known proportions.

    The model, step by step:

    1. baseline expression of gene *g*: ``exp(N(0, baseline_sd))`` (log-normal,
       so a few genes are very highly expressed and many are low);
    2. profile of type *t*: the baseline times ``exp(N(0, type_sd))`` (broad
       differences between types), then ``n_markers`` genes per type (disjoint
       sets) are multiplied by ``marker_fold * exp(N(0, 0.25))`` in that type
       only; each profile is scaled to sum to 10**6 (counts per million);
    3. proportions: one Dirichlet(``alpha``) draw per sample;
    4. expected expression of a sample: ``signature @ proportions``, scaled to a
       library size of ``depth * exp(N(0, 0.2))`` reads;
    5. observed counts: negative-binomial (gamma-Poisson with variance
       ``mu + dispersion * mu**2``, which also stands in for biological
       variation between samples), Poisson, or none;
    6. ``bulk`` is the counts normalised to counts per million.

    Because profiles and bulk are on the same per-million scale, the true
    proportions are the fractions of RNA a method with this signature
    estimates (there is no separate cell-size effect in this model; see
    :func:`pseudobulk` for one).

    Parameters
    ----------
    n_genes : int, default 2000
        Number of genes.
    n_types : int, default 6
        Number of cell types.
    n_samples : int, default 200
        Number of bulk samples.
    seed : int or numpy.random.Generator, default 0
        Random seed; the same seed gives the same data.
    n_markers : int, optional
        Marker genes per type; default ``max(5, n_genes // (10 * n_types))``.
        Must satisfy ``n_markers * n_types <= n_genes``.
    marker_fold : float, default 10.0
        Typical fold change of a marker gene in its own type (> 1).
    type_sd : float, default 0.5
        Standard deviation of the log fold change between types for all genes.
    baseline_sd : float, default 1.5
        Standard deviation of the log baseline expression across genes.
    alpha : float, sequence or dict, default 1.0
        Dirichlet concentration of the proportions (see :func:`dirichlet_fractions`).
    depth : float, default 2e7
        Typical sequencing depth (reads per sample).
    noise : {"negative_binomial", "poisson", "none"}, default "negative_binomial"
        Count noise model.
    dispersion : float, default 0.02
        Negative-binomial dispersion (ignored for other noise models).

    Returns
    -------
    SyntheticData
        ``.bulk`` (genes x samples), ``.signature`` (genes x types),
        ``.proportions`` (samples x types), ``.counts``, ``.markers``, ``.params``.

    Examples
    --------
    >>> from fastdeconv.simulate import synthetic
    >>> data = synthetic(n_genes=300, n_types=4, n_samples=10, seed=1)
    >>> data.bulk.shape, data.signature.shape, data.proportions.shape
    ((300, 10), (300, 4), (10, 4))
    >>> bool(abs(data.proportions.sum(axis=1) - 1).max() < 1e-12)
    True
    >>> round(float(data.bulk.sum().iloc[0]))
    1000000
    """
    n_genes = check_int(n_genes, "n_genes")
    n_types = check_int(n_types, "n_types")
    n_samples = check_int(n_samples, "n_samples")
    if n_markers is None:
        n_markers = max(5, n_genes // (10 * n_types))
        n_markers = min(n_markers, n_genes // n_types)
    n_markers = check_int(n_markers, "n_markers", minimum=0)
    if n_markers * n_types > n_genes:
        raise ValueError(
            f"n_markers * n_types = {n_markers * n_types} marker genes do not fit in n_genes = "
            f"{n_genes}; lower n_markers or raise n_genes"
        )
    marker_fold = check_float(marker_fold, "marker_fold")
    type_sd = check_float(type_sd, "type_sd", allow_minimum=True)
    baseline_sd = check_float(baseline_sd, "baseline_sd", allow_minimum=True)
    depth = check_float(depth, "depth")
    dispersion = check_float(dispersion, "dispersion")
    if noise not in ("negative_binomial", "poisson", "none"):
        raise ValueError(f"noise must be 'negative_binomial', 'poisson' or 'none', got {noise!r}")

    rng = np.random.default_rng(seed)
    genes = _gene_names(n_genes)
    types = _type_names(n_types)
    samples = _sample_names(n_samples)

    baseline = np.exp(rng.normal(0.0, baseline_sd, size=n_genes))
    profiles = baseline[:, None] * np.exp(rng.normal(0.0, type_sd, size=(n_genes, n_types)))
    marker_rows = rng.permutation(n_genes)[: n_markers * n_types].reshape(n_types, n_markers)
    folds = marker_fold * np.exp(rng.normal(0.0, 0.25, size=(n_types, n_markers)))
    for t in range(n_types):
        profiles[marker_rows[t], t] *= folds[t]
    profiles *= _CPM / profiles.sum(axis=0)

    prop = rng.dirichlet(_alpha_vector(alpha, types), size=n_samples)  # samples x types
    expected = profiles @ prop.T  # genes x samples, each column sums to 1e6
    library = depth * np.exp(rng.normal(0.0, 0.2, size=n_samples))
    counts = _count_noise(rng, expected * (library / _CPM), noise, dispersion)
    totals = counts.sum(axis=0)
    if np.any(totals <= 0):
        raise ValueError("a simulated sample has no counts; raise depth")
    bulk = counts * (_CPM / totals)

    markers = {types[t]: [genes[g] for g in marker_rows[t]] for t in range(n_types)}
    params = dict(
        n_genes=n_genes,
        n_types=n_types,
        n_samples=n_samples,
        seed=seed if isinstance(seed, numbers.Integral) else None,
        n_markers=n_markers,
        marker_fold=marker_fold,
        type_sd=type_sd,
        baseline_sd=baseline_sd,
        depth=depth,
        noise=noise,
        dispersion=dispersion,
    )
    return SyntheticData(
        bulk=pd.DataFrame(bulk, index=genes, columns=samples),
        signature=pd.DataFrame(profiles, index=genes, columns=types),
        proportions=pd.DataFrame(prop, index=samples, columns=types),
        counts=pd.DataFrame(counts, index=genes, columns=samples),
        markers=markers,
        params=params,
    )


# ---------------------------------------------------------------------------
# pseudo-bulk from single cells
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PseudobulkData:
    """Pseudo-bulk samples mixed from single cells, with the true fractions.

    Attributes
    ----------
    bulk : pandas.DataFrame
        Genes x samples: the summed raw counts of the sampled cells (or counts
        per million with ``normalize="cpm"``).
    cell_fractions : pandas.DataFrame
        Samples x types: the realised share of *cells* of each type.
    rna_fractions : pandas.DataFrame
        Samples x types: the share of the sample's total *counts* (RNA) that
        comes from each type. A signature of per-type mean expression on a
        per-million scale, fitted to a normalised bulk, estimates these.
    n_cells : pandas.DataFrame
        Samples x types: the number of cells of each type in each sample.
    normalized : bool
        Mixed from normalised values (``normalized=`` of :func:`pseudobulk`):
        without library sizes every cell weighs the same, so
        :attr:`rna_fractions` equal :attr:`cell_fractions`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.simulate import pseudobulk
    >>> counts = np.random.default_rng(0).poisson(2.0, size=(50, 40))
    >>> labels = ["T"] * 20 + ["B"] * 20
    >>> pb = pseudobulk(counts, labels, 4, cells_per_sample=30, seed=0)
    >>> pb.bulk.shape, pb.cell_fractions.shape
    ((50, 4), (4, 2))
    """

    bulk: pd.DataFrame
    cell_fractions: pd.DataFrame
    rna_fractions: pd.DataFrame
    n_cells: pd.DataFrame
    normalized: bool = False

    def __repr__(self):
        g, n = self.bulk.shape
        k = self.cell_fractions.shape[1]
        return f"PseudobulkData({g} genes x {n} samples, {k} cell types)"


def split_cells(labels, fraction=0.5, *, seed=0):
    """Split the cells of every type at random into two disjoint parts.

    Honest tests of a single-cell reference build it from one part and mix
    pseudo-bulk samples (:func:`pseudobulk`) from the other, so no cell is in
    both the reference and the mixtures.  The split is stratified: each type
    contributes ``floor(fraction * n_t)`` cells to the first part.  Types are
    visited in sorted order, so the split depends only on the labels and the
    seed, not on the order in which types first appear.

    Parameters
    ----------
    labels : array_like or pandas.Series
        One cell type per cell.
    fraction : float, default 0.5
        Share of each type's cells in the first part, in (0, 1).
    seed : int, default 0
        Seed of the random split.

    Returns
    -------
    ndarray of bool
        True for the cells of the first part.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.simulate import split_cells
    >>> labels = np.array(["T"] * 6 + ["B"] * 4)
    >>> first = split_cells(labels, seed=1)
    >>> int(first[labels == "T"].sum()), int(first[labels == "B"].sum())
    (3, 2)
    """
    fraction = check_float(fraction, "fraction", minimum=0.0, maximum=1.0)
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError(f"labels must be 1-D (one cell type per cell), got shape {values.shape}")
    rng = np.random.default_rng(seed)
    first = np.zeros(values.size, dtype=bool)
    for t in np.unique(values):
        idx = np.flatnonzero(values == t)
        rng.shuffle(idx)
        first[idx[: int(fraction * idx.size)]] = True
    return first


@dataclass(frozen=True)
class SplitPseudobulk:
    """Single cells split in two: a reference part, and pseudo-bulk mixed from the rest.

    Attributes
    ----------
    reference_counts : pandas.DataFrame
        Genes x cells of the reference part (sparse-backed when the input was
        sparse), for :func:`fastdeconv.build_signature` or a mean profile.
    reference_labels : pandas.Series
        The cell type of each reference cell, indexed by cell id.
    pseudobulk : PseudobulkData
        Samples mixed only from the other cells, with their true fractions.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.simulate import split_pseudobulk
    >>> counts = np.random.default_rng(0).poisson(2.0, size=(30, 40))
    >>> split = split_pseudobulk(counts, ["T"] * 20 + ["B"] * 20, 3, cells_per_sample=10)
    >>> split.reference_counts.shape, split.pseudobulk.bulk.shape
    ((30, 20), (30, 3))
    """

    reference_counts: pd.DataFrame
    reference_labels: pd.Series
    pseudobulk: PseudobulkData


def split_pseudobulk(
    counts,
    labels,
    n_samples,
    *,
    fraction=0.5,
    seed=0,
    layer=None,
    normalized=False,
    transpose=False,
    duplicates="raise",
    **options,
):
    """Hold out cells: a reference from one part of the cells, pseudo-bulk from the other.

    The honest test of a reference built from single cells: no cell is both in
    the reference and in the mixtures it is tested on (:func:`split_cells`
    splits every type; :func:`pseudobulk` mixes the held-out cells).

    Parameters
    ----------
    counts : array_like, scipy.sparse matrix, DataFrame or AnnData
        Raw counts, genes x cells (AnnData: cells x genes).
    labels : sequence, pandas.Series or str
        One cell type per cell (see :func:`fastdeconv.inputs.as_labels`).
    n_samples : int
        Pseudo-bulk samples to mix.
    fraction : float, default 0.5
        Share of each type's cells kept for the reference.
    seed : int, default 0
        Seed of both the split and the mixing.
    layer : str, optional
        AnnData layer holding the counts.
    normalized, transpose, duplicates
        As for :func:`pseudobulk`; both parts get the same (un-logged) values.
    **options
        Passed to :func:`pseudobulk` (``cells_per_sample``, ``alpha``,
        ``normalize``, ``progress``, ...).

    Returns
    -------
    SplitPseudobulk

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.simulate import split_pseudobulk
    >>> counts = np.random.default_rng(1).poisson(3.0, size=(20, 30))
    >>> split = split_pseudobulk(counts, ["A"] * 10 + ["B"] * 20, 2, cells_per_sample=8)
    >>> split.reference_labels.value_counts().sort_index().tolist()
    [5, 10]
    """
    c = as_counts(counts, layer=layer, transpose=transpose, duplicates=duplicates)
    c.check_values()
    cell_labels = as_labels(labels, c)
    c = check_raw(c, normalized, needs=_NEEDS_RAW, if_normalized=_IF_NORMALIZED)
    first = split_cells(cell_labels, fraction, seed=seed)
    held_in, held_out = c.matrix[:, first], c.matrix[:, ~first]
    cells = pd.Index(c.cells)
    if c.sparse:
        reference = pd.DataFrame.sparse.from_spmatrix(held_in, index=c.genes, columns=cells[first])
        mixed = pd.DataFrame.sparse.from_spmatrix(held_out, index=c.genes, columns=cells[~first])
    else:
        reference = pd.DataFrame(held_in, index=c.genes, columns=cells[first])
        mixed = pd.DataFrame(held_out, index=c.genes, columns=cells[~first])
    pb = pseudobulk(
        mixed, cell_labels[~first], n_samples, seed=seed, normalized=c.normalized, **options
    )
    return SplitPseudobulk(reference, pd.Series(cell_labels[first], index=cells[first]), pb)


def _fractions_matrix(fractions, types, n_samples, alpha, rng):
    """Return the samples x types target fractions (ndarray) and the sample names."""
    if fractions is None:
        if n_samples is None:
            raise ValueError("give n_samples (or fractions)")
        n_samples = check_int(n_samples, "n_samples")
        return rng.dirichlet(_alpha_vector(alpha, types), size=n_samples), _sample_names(n_samples)
    if isinstance(fractions, dict):
        fractions = pd.Series(fractions, dtype=np.float64)
    if isinstance(fractions, pd.Series):
        fractions = fractions.to_frame().T
        one_row = True
    else:
        one_row = False
    if isinstance(fractions, pd.DataFrame):
        unknown = [c for c in fractions.columns if c not in set(types)]
        if unknown:
            raise ValueError(
                f"fractions name cell types not in labels: {unknown}; known types: {list(types)}"
            )
        samples = None if one_row else [str(s) for s in fractions.index]
        frac = fractions.reindex(columns=types, fill_value=0.0).to_numpy(dtype=np.float64)
    else:
        frac = np.asarray(fractions, dtype=np.float64)
        if frac.ndim == 1:
            frac = frac[None, :]
            one_row = True
        if frac.ndim != 2 or frac.shape[1] != len(types):
            raise ValueError(
                f"fractions must have one column per cell type ({len(types)}: {list(types)}), "
                f"got shape {frac.shape}; pass a DataFrame with type names to choose the order"
            )
        samples = None
    if one_row:
        if n_samples is None:
            raise ValueError("give n_samples when fractions is a single row shared by all samples")
        n_samples = check_int(n_samples, "n_samples")
        frac = np.repeat(frac, n_samples, axis=0)
    elif n_samples is not None and n_samples != frac.shape[0]:
        raise InputProblem(
            f"{{0}} does not match the {frac.shape[0]} samples of fractions: leave the number "
            "of samples out (fractions give one sample each), or give fractions for as many "
            "samples",
            Fix("n_samples", n_samples),
        )
    if not np.all(np.isfinite(frac)):
        raise ValueError("fractions contain NaN or infinite values")
    if frac.min() < 0:
        raise ValueError("fractions must be >= 0")
    sums = frac.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if bad.size:
        which = f"sample {samples[bad[0]]!r}" if samples is not None else f"row {bad[0]}"
        raise ValueError(
            f"the fractions of every sample must sum to 1; those of {which} sum to "
            f"{sums[bad[0]]:.6g} ({bad.size} sample(s) do not): divide each sample's fractions "
            "by their sum"
        )
    frac = frac / sums[:, None]
    if samples is None:
        samples = _sample_names(frac.shape[0])
    return frac, samples


def pseudobulk(
    counts,
    labels,
    n_samples=None,
    *,
    cells_per_sample=500,
    fractions=None,
    alpha=1.0,
    seed=0,
    layer=None,
    normalize=None,
    normalized=False,
    transpose=False,
    duplicates="raise",
    progress=None,
):
    """Mix the cells of a labelled single-cell reference into pseudo-bulk samples.

    For each sample, the number of cells of each type is drawn from a
    multinomial over ``cells_per_sample`` cells with the sample's target
    fractions; that many cells of each type are drawn with replacement, and
    their raw counts are summed. The work is a sparse matrix product (``W @
    counts.T`` with ``W`` samples x cells holding how often each cell was
    drawn), a block of samples at a time, reading only the cells the block
    drew; so 10**5 cells and thousands of samples take seconds.

    Two truths are returned. ``cell_fractions`` are the realised shares of
    cells. ``rna_fractions`` are the shares of the sample's total counts that
    come from each type; when cell types carry different amounts of RNA
    (library sizes) the two differ. A reference-based method that fits a
    per-million signature (mean expression per type) to a normalised bulk
    estimates the RNA fractions; to estimate cell fractions, divide each type's
    estimate by its mean RNA content per cell and renormalise.

    Parameters
    ----------
    counts : array-like, scipy.sparse matrix, DataFrame or AnnData
        Raw counts, genes x cells (a DataFrame has genes as index and cell ids
        as columns). AnnData objects are cells x genes, as usual; their
        ``.X`` (or ``.layers[layer]``) is used.
    labels : sequence, pandas.Series, one-column DataFrame or str
        One cell type per cell. A Series indexed by cell ids is aligned to the
        columns of ``counts`` (it must cover every cell); with AnnData, a str
        names a column of ``.obs``. Counts and labels are read as
        :func:`fastdeconv.build_signature` reads them
        (:func:`fastdeconv.inputs.counts.as_counts`,
        :func:`~fastdeconv.inputs.counts.as_labels`).
    n_samples : int, optional
        Number of pseudo-bulk samples (required unless ``fractions`` has one
        row per sample).
    cells_per_sample : int, default 500
        Cells summed into each sample.
    fractions : DataFrame, Series, dict or array, optional
        Target cell fractions: samples x types (rows summing to 1), or a single
        row used for every sample. Types missing from a DataFrame/Series get 0;
        unknown types are an error. Default: Dirichlet(``alpha``) draws.
    alpha : float, sequence or dict, default 1.0
        Dirichlet concentration when ``fractions`` is None.
    seed : int or numpy.random.Generator, default 0
        Random seed.
    layer : str, optional
        AnnData layer holding the raw counts (default ``.X``).
    normalize : {None, "cpm"}, default None
        ``"cpm"`` scales each pseudo-bulk sample to sum to 10**6.
    normalized : {False, True, "log1p", "log2p1"}, default False
        What the values of ``counts`` are: raw counts (False; normalised
        values -- CPM/TPM, non-integer or log-transformed -- are refused, as
        a bulk is a sum of raw counts); normalised values on the linear scale
        (True: summed as they are; every cell then weighs the same, so the
        RNA fractions equal the cell fractions); or log values to un-log
        first (see :func:`fastdeconv.inputs.counts.check_raw`).
    transpose : bool, default False
        ``counts`` is cells x genes (not AnnData): read it transposed.
    duplicates : {"raise", "sum"}, default "raise"
        Genes named twice in ``counts``: refuse, or add their counts up.
    progress : bool, optional
        Progress bar on stderr; default: shown when stderr is a terminal and
        the samples add up more than 1e8 counts (cells drawn times their
        stored values).

    Returns
    -------
    PseudobulkData
        ``.bulk`` (genes x samples), ``.cell_fractions``, ``.rna_fractions``,
        ``.n_cells`` (samples x types).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.simulate import pseudobulk
    >>> rng = np.random.default_rng(0)
    >>> counts = rng.poisson(2.0, size=(50, 30))          # 50 genes x 30 cells
    >>> labels = ["T"] * 10 + ["B"] * 10 + ["NK"] * 10
    >>> pb = pseudobulk(counts, labels, n_samples=5, cells_per_sample=100, seed=1)
    >>> pb.bulk.shape, pb.cell_fractions.shape
    ((50, 5), (5, 3))
    >>> pb.n_cells.sum(axis=1).tolist()
    [100, 100, 100, 100, 100]
    """
    import scipy.sparse as sp

    c = as_counts(counts, layer=layer, transpose=transpose, duplicates=duplicates)
    c.check_values()
    values = as_labels(labels, c)
    if values is None:
        raise ValueError("labels are required: give one cell type per cell")
    c = check_raw(c, normalized, needs=_NEEDS_RAW, if_normalized=_IF_NORMALIZED)
    x = c.matrix if c.sparse else np.asarray(c.matrix, dtype=np.float64)
    genes = c.genes if c.has_gene_names else _gene_names(c.n_genes)
    n_cells_total = c.n_cells
    cells_per_sample = check_int(cells_per_sample, "cells_per_sample")
    if normalize not in (None, "cpm"):
        raise ValueError(f"normalize must be None or 'cpm', got {normalize!r}")

    types, codes = np.unique(values, return_inverse=True)
    types = [str(t) for t in types]
    rng = np.random.default_rng(seed)
    frac, samples = _fractions_matrix(fractions, types, n_samples, alpha, rng)
    n = frac.shape[0]

    # cells of each type, in label order
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(types) + 1))

    n_cells = rng.multinomial(cells_per_sample, frac)  # samples x types
    cell_index, sample_index = [], []
    for t in range(len(types)):
        counts_t = n_cells[:, t]
        total = int(counts_t.sum())
        if total == 0:
            continue
        members = order[starts[t] : starts[t + 1]]
        cell_index.append(members[rng.integers(0, members.size, size=total)])
        sample_index.append(np.repeat(np.arange(n), counts_t))
    cell_index = np.concatenate(cell_index)
    sample_index = np.concatenate(sample_index)
    draws = sp.csr_array(
        (np.ones(cell_index.size), (sample_index, cell_index)), shape=(n, n_cells_total)
    )  # duplicates are summed: how often each cell was drawn for each sample

    per_cell = c.values().size / max(n_cells_total, 1)
    show = show_progress(progress, cell_index.size * per_cell > PROGRESS_VALUES)
    bulk = _mix(x, draws, show)

    if c.normalized:  # no library sizes: every cell carries the same RNA
        library = np.ones(n_cells_total)
    else:
        library = c.library_sizes()  # counts per cell
    rna = np.zeros((n, len(types)))
    for t in range(len(types)):
        mask = codes[cell_index] == t
        rna[:, t] = np.bincount(sample_index[mask], weights=library[cell_index[mask]], minlength=n)
    rna_total = rna.sum(axis=1, keepdims=True)
    if np.any(rna_total <= 0):
        raise ValueError("a pseudo-bulk sample has no counts at all; the sampled cells are empty")
    rna = rna / rna_total
    if normalize == "cpm":
        bulk = bulk * (_CPM / bulk.sum(axis=0))

    return PseudobulkData(
        bulk=pd.DataFrame(bulk, index=genes, columns=samples),
        cell_fractions=pd.DataFrame(n_cells / cells_per_sample, index=samples, columns=types),
        rna_fractions=pd.DataFrame(rna, index=samples, columns=types),
        n_cells=pd.DataFrame(n_cells, index=samples, columns=types),
        normalized=c.normalized,
    )


def _mix(x, draws, progress):
    """``x @ draws.T``: genes x samples, the counts of the cells each sample drew, summed.

    A block of samples at a time (the block's draws times ``x.T``, cells x
    genes): every sum adds the same products in the same (cell) order as the
    product in one piece, so the blocks change nothing but the memory and the
    progress bar.  The draws get the index type of ``x.T``, so that no block
    converts the whole matrix's indices again.
    """
    import scipy.sparse as sp

    n = draws.shape[0]
    sparse = sp.issparse(x)
    # cells x genes, a row per cell, in the product's dtype (converted once, not per block)
    rows = sp.csr_array(x.T, dtype=np.float64) if sparse else np.ascontiguousarray(x.T)
    index = rows.indices.dtype if sparse else draws.indices.dtype
    bulk = np.empty((x.shape[0], n))
    block = max(1, int(_DRAWS_PER_BLOCK * n // max(draws.nnz, 1)))
    with progress_bar(n, progress, desc="pseudobulk") as bar:
        for j0 in range(0, n, block):
            j1 = min(n, j0 + block)
            part = draws[j0:j1]
            part = sp.csr_array(
                (part.data, part.indices.astype(index), part.indptr.astype(index)),
                shape=part.shape,
            )
            mixed = part @ rows
            bulk[:, j0:j1] = (mixed.toarray() if sparse else mixed).T
            bar.update(j1 - j0)
    return bulk


# ---------------------------------------------------------------------------
# accuracy and speed on a synthetic benchmark (the `fastdeconv demo` command)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkReport:
    """Accuracy and speed of fastdeconv on a synthetic benchmark (see :func:`run_benchmark`).

    Attributes
    ----------
    data : SyntheticData
        The benchmark.
    result : fastdeconv.DeconvolutionResult
        The deconvolution with the chosen method.
    evaluation : fastdeconv.metrics.Evaluation
        Its accuracy against the true proportions.
    method : str
        The method used (with its robust option, when there is one).
    times : dict
        Median wall times in seconds: ``deconvolve`` (the whole pipeline),
        ``nnls`` (the array solver :func:`fastdeconv.nnls`, all threads),
        ``nnls_1thread`` (the same on one thread), ``scipy_nnls_loop``
        (:func:`scipy.optimize.nnls` called once per sample), ``first_call``
        (a first small call, which loads or compiles the Numba kernels).
    max_abs_diff : float
        Largest absolute difference between the NNLS coefficients of
        fastdeconv and SciPy on the same data.
    repeats : int
        Timed runs asked for per measurement (the median is reported).
    n_jobs : int or None
        Threads given to fastdeconv (None: all cores).
    runs : dict
        Runs actually timed for the slow measurements (fewer than ``repeats``
        when the time budget ran out).

    Examples
    --------
    >>> from fastdeconv.simulate import run_benchmark, synthetic
    >>> report = run_benchmark(synthetic(n_genes=400, n_types=3, n_samples=20, seed=0), repeats=1)
    >>> bool(report.evaluation.overall["pearson_r"] > 0.9)
    True
    """

    data: SyntheticData
    result: object
    evaluation: object
    method: str
    times: dict
    max_abs_diff: float
    repeats: int
    n_jobs: object = None
    runs: dict = field(default_factory=dict)

    @property
    def speedup(self):
        """``scipy_nnls_loop / nnls``: how many times faster fastdeconv's NNLS is."""
        return self.times["scipy_nnls_loop"] / self.times["nnls"]

    def summary(self):
        """Return the printed report (the same as ``str(report)``).

        Returns
        -------
        str
        """
        p = self.data.params
        g, n = self.data.bulk.shape
        k = self.data.signature.shape[1]
        threads = "all cores" if self.n_jobs is None else f"n_jobs={self.n_jobs}"
        t = self.times
        lines = [
            f"Synthetic benchmark: {g} genes x {n} samples, {k} cell types (seed {p.get('seed')})",
            f"  log-normal expression, {p['n_markers']} markers per type "
            f"(~{p['marker_fold']:g}-fold), Dirichlet proportions,",
            f"  {p['noise'].replace('_', '-')} counts at ~{p['depth']:.0e} reads per sample",
            "",
            f"Accuracy of fastdeconv.deconvolve (method {self.method}) "
            "against the true proportions:",
            self.evaluation.summary(),
            "",
            f"Speed on the same data (median of up to {self.repeats} runs; "
            f"fastdeconv on {threads}):",
            f"  fastdeconv.deconvolve, whole pipeline   {t['deconvolve']:9.4f} s"
            + self._runs_note("deconvolve"),
            f"  fastdeconv.nnls                         {t['nnls']:9.4f} s",
            f"  fastdeconv.nnls, 1 thread               {t['nnls_1thread']:9.4f} s",
            f"  scipy.optimize.nnls loop over samples   {t['scipy_nnls_loop']:9.4f} s"
            + self._runs_note("scipy_nnls_loop"),
            f"  fastdeconv.nnls is {self.speedup:.1f}x faster than the scipy loop "
            f"({t['scipy_nnls_loop'] / t['nnls_1thread']:.1f}x on 1 thread);",
            f"  the two agree: largest coefficient difference {self.max_abs_diff:.1e}",
            f"  (first call, loading or compiling the Numba kernels: {t['first_call']:.2f} s)",
        ]
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def _runs_note(self, key):
        n = self.runs.get(key, self.repeats)
        return "" if n == self.repeats else f"  ({n} run{'s' if n > 1 else ''})"


def _median_time(func, repeats, budget):
    """Median time of up to ``repeats`` runs; stop repeating once ``budget`` seconds are spent."""
    times = []
    out = None
    for _ in range(repeats):
        start = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - start)
        if sum(times) > budget:
            break
    return float(np.median(times)), len(times), out


def run_benchmark(data, *, method=None, repeats=3, n_jobs=None, budget=2.0):
    """Deconvolve a synthetic benchmark; measure accuracy and speed against SciPy.

    Runs :func:`fastdeconv.deconvolve` on ``data.bulk`` with ``data.signature``,
    evaluates the proportions against ``data.proportions``, and times
    :func:`fastdeconv.nnls` against a loop of :func:`scipy.optimize.nnls` over
    the samples of the same matrices, in the same process (median of
    ``repeats`` runs each), checking that both give the same coefficients.

    Parameters
    ----------
    data : SyntheticData
        A benchmark from :func:`synthetic`.
    method : str, optional
        Deconvolution method (default: the library's default).
    repeats : int, default 3
        Timed runs per measurement (at least one).
    n_jobs : int, optional
        Threads for fastdeconv (default: all cores).
    budget : float, default 2.0
        Stop repeating a measurement once its runs took this many seconds
        (slow measurements are then the median of fewer runs).

    Returns
    -------
    BenchmarkReport

    Examples
    --------
    >>> from fastdeconv.simulate import synthetic, run_benchmark
    >>> report = run_benchmark(synthetic(n_genes=500, n_types=4, n_samples=50, seed=0), repeats=1)
    >>> report.evaluation.overall["pearson_r"] > 0.9
    True
    >>> report.max_abs_diff < 1e-6
    True
    """
    from scipy.optimize import nnls as scipy_nnls

    import fastdeconv

    if not isinstance(data, SyntheticData):
        raise TypeError(f"data must be a SyntheticData from synthetic(), got {type(data).__name__}")
    repeats = check_int(repeats, "repeats")
    budget = check_float(budget, "budget", allow_minimum=True)
    kwargs = {"n_jobs": n_jobs, "progress": False}
    if method is not None:
        kwargs["method"] = method
    S = np.ascontiguousarray(data.signature.to_numpy())
    B = np.ascontiguousarray(data.bulk.to_numpy())

    start = time.perf_counter()
    fastdeconv.deconvolve(data.bulk.iloc[:, :2], data.signature, **kwargs)
    fastdeconv.nnls(S, B[:, :2], n_jobs=n_jobs)
    first_call = time.perf_counter() - start

    t_deconv, n_deconv, result = _median_time(
        lambda: fastdeconv.deconvolve(data.bulk, data.signature, **kwargs), repeats, budget
    )
    t_nnls, _, X = _median_time(lambda: fastdeconv.nnls(S, B, n_jobs=n_jobs), repeats, budget)
    t_nnls1, _, _ = _median_time(lambda: fastdeconv.nnls(S, B, n_jobs=1), repeats, budget)
    t_scipy, n_scipy, X_ref = _median_time(
        lambda: np.column_stack([scipy_nnls(S, B[:, j])[0] for j in range(B.shape[1])]),
        repeats,
        budget,
    )
    evaluation = fastdeconv.evaluate(result.proportions, data.proportions)
    used = getattr(result, "method", method)
    robust = getattr(result, "options", {}).get("robust")
    label = f"{used!r}" + (f", robust {robust!r}" if robust else "")
    return BenchmarkReport(
        data=data,
        result=result,
        evaluation=evaluation,
        method=label,
        times={
            "deconvolve": t_deconv,
            "nnls": t_nnls,
            "nnls_1thread": t_nnls1,
            "scipy_nnls_loop": t_scipy,
            "first_call": first_call,
        },
        max_abs_diff=float(np.max(np.abs(X - X_ref))),
        repeats=repeats,
        n_jobs=n_jobs,
        runs={"deconvolve": n_deconv, "scipy_nnls_loop": n_scipy},
    )
