"""The cases of the method-selection study (``benchmarks/study_reference.py``).

A *case* is one deconvolution problem with known answers: a bulk (genes x
samples, linear scale), a reference (a signature, genes x cell types; for
methods that need single cells also the reference cells, their labels and
their subjects), the truth (samples x types) and the scoring rule.  Cases are
grouped into *datasets* (the unit the study leaves out in its
cross-validation): every given set on its own, the single-cell pseudo-bulks,
and each family of simulations.

Three sources:

1. **The given sets** of ``../shared/data`` (:func:`given_cases`):
   ``shenorr_GSE19830``, ``abbas_GSE11058`` (their ``reference.tsv.gz``),
   ``newman_GSE65133`` with LM22 (the 9 truth rows against the like-named
   LM22 columns, renormalised over those 9), ``sim_cibersort_tutorial_LM22``.
2. **Split-half pseudo-bulks** of ``hao_pbmc_sc_subset`` (:func:`hao_cases`):
   the cells of every type split in two halves
   (:func:`fastdeconv.simulate.split_pseudobulk`), the reference is the mean
   CPM of one half, the mixtures are pseudo-bulks of the other; three splits
   with all 11 types, two with sibling types merged (7 coarser types), two
   with 25 cells per sample (sampling and count noise).  The reference cells
   stay available (raw counts, labels, the 13 sequencing lanes of the cell
   ids as subjects) for methods that need single cells; the cell fractions are
   the truth of a method that reports cell fractions.
3. **Simulations with one known perturbation** (:func:`simulated_cases`), built
   on real profiles (:func:`base_profiles`): the hao mean CPM per type (the
   reference from one half of the cells, the bulk mixed from the other
   half's), LM22 (the bulk mixed from LM22 with a log-normal difference, sd
   0.2, per gene and type), and the shenorr and abbas pure samples (the bulk
   mixed from one pure replicate per type, the reference the mean of the
   others).  Every simulated bulk is ``profiles @ fractions`` (Dirichlet(1)
   fractions, 30 samples) times a log-normal factor per gene and sample
   (sd 0.1: biological variation), and then one perturbation:

   ===============  ==========================================================
   family           perturbation
   ===============  ==========================================================
   platform         every gene of the bulk times exp(N(0, sd)), sd 0.5 and 1.0
                    (one factor per gene, the same in every sample)
   missing_type     one type in the bulk (fraction U(0, 0.3)) but not in the
                    reference; scored on the other types, renormalised
   outlier_genes    3% of the genes times 10**U(1, 2) in 30% of the samples
   count_noise      negative-binomial counts (dispersion 0.05) at 10**5 and
                    10**6 reads per sample, scaled back to the bulk's totals
                    (hao and shenorr profiles)
   collinear        the most similar pair of types made to correlate >= 0.95
                    (linear and log scale): the second replaced by a mixture
                    with the first, in reference and bulk alike
   background       a constant per sample, U(0.25, 1) times the sample's
                    median, added to every gene (a microarray floor)
   scale            the bulk on another platform's scale than the reference:
                    hao (RNA-seq) reference with a microarray-like bulk
                    (``x**0.75``, a floor, noise sd 0.15); microarray
                    references (LM22, shenorr, abbas) with an RNA-seq-like
                    bulk (``x**(1/0.75)`` as negative-binomial counts at
                    2 10**7 reads, CPM)
   ===============  ==========================================================

   Each setting with two seeds (one with ``quick=True``).

4. **Three families that resemble held-back data** where the first study's
   default lost to plain NNLS (issue 11: rat brain cultures mixed at designed
   ratios, PBMC RNA-seq with TIL10- and ABIS-style curated signatures):

   ================  =========================================================
   family            cases
   ================  =========================================================
   curated           (:func:`curated_cases`) RNA-seq-like bulk: pseudo-bulks
                     of hao cells (the other half of
                     :func:`fastdeconv.simulate.split_pseudobulk`), fitted
                     with a *curated* signature built from the reference half
                     by :func:`fastdeconv.build_signature` (its default
                     markers, ~25 per type: small enough that
                     ``genes="auto"`` keeps all of it); as is, with a per-gene
                     platform shift of the bulk (log-normal, sd 0.5), and
                     with sibling types merged (7 types); 3 seeds
   rnaseq_hetero     (:func:`hetero_cases`) bulk = ``S p`` on the genes of a
                     curated signature (LM22's 547 genes, 22 types; the hao
                     curated signature, 11 types), ``S`` the bulk-generating
                     profiles of :func:`base_profiles` (another half of the
                     cells; LM22 perturbed), drawn as gamma-Poisson counts
                     (dispersion 0.09, i.e. log-normal sd ~0.3, plus Poisson
                     noise: the relative noise grows for low expression) at
                     10**7 and 10**6 reads; the RNA-seq regime where the
                     absolute residuals are largest on the most expressed,
                     most informative genes
   designed          (:func:`designed_cases`) few distinct types mixed at
                     designed ratios, 3 replicates per design, whole-
                     transcriptome reference (so ``genes="auto"`` selects
                     markers): shenorr's 3 rat tissues at GSE19830's 11
                     designs and abbas' 4 cell lines at GSE11058's 4 designs
                     and their reverses (reference = mean of two pure
                     replicates, mixtures from the third, times log-normal
                     noise sd 0.15 per gene and sample; each seed holds out
                     another replicate), and hao's B / T CD4 / Monocytes / NK
                     (pseudo-bulks of held-out cells at abbas' 8 designs);
                     abbas' pure samples have only its 584 probes, so there
                     ``genes="auto"`` keeps them all
   ================  =========================================================

:data:`GROUPS` names the groups of cases (the given sets, the hao
pseudo-bulks, each simulation family, the three families above) that
:func:`all_cases` builds; the study's ``--families`` option picks some.

Everything is seeded: the same call gives the same cases.  The data folder
is ``../shared/data`` next to the repository, or ``$FASTDECONV_DATA``.

Examples
--------
The simulated families need no files beyond the profiles they start from::

    >>> import study_cases                                   # doctest: +SKIP
    >>> cases = study_cases.all_cases(quick=True)            # doctest: +SKIP
    >>> sorted({c.dataset for c in cases})[:3]               # doctest: +SKIP
    ['abbas_GSE11058', 'hao_pseudobulk', 'newman_GSE65133']
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fastdeconv.io import read_dataset
from fastdeconv.signature import build_signature
from fastdeconv.simulate import _count_noise, _sample_names, split_cells, split_pseudobulk

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASTDECONV_DATA", ROOT.parent / "shared" / "data"))

GIVEN = ("shenorr_GSE19830", "abbas_GSE11058", "newman_GSE65133", "sim_cibersort_tutorial_LM22")
#: The simulation families, in the order they are reported.
FAMILIES = ("platform", "missing_type", "outlier_genes", "count_noise", "collinear",
            "background", "scale")
#: The real profiles the simulations start from.
BASES = ("hao", "lm22", "shenorr", "abbas")
#: Sibling types of hao_pbmc_sc_subset merged for the coarser pseudo-bulks.
HAO_COARSE = {
    "T cells CD4 conv": "T cells CD4", "Tregs": "T cells CD4",
    "mDC": "DC", "pDC": "DC",
    "B cells": "B lineage", "Plasma cells": "B lineage",
    "NK cells": "NK/ILC", "ILC": "NK/ILC",
}
#: Samples per simulated case, and (quick) fewer.
N_SAMPLES = 30
#: Log-normal biological variation per gene and sample in every simulated bulk.
SAMPLE_SD = 0.1
#: Microarray-like compression of the dynamic range (``x ** ARRAY_POWER``).
ARRAY_POWER = 0.75


@dataclass(frozen=True)
class Cells:
    """A single-cell reference for methods that need cells (``needs=("cells",)``).

    Attributes
    ----------
    counts : pandas.DataFrame
        Raw counts, genes x reference cells.
    labels : pandas.Series
        Cell type per reference cell (indexed by cell id).
    subjects : pandas.Series
        Subject (here: sequencing lane, the prefix of the cell id) per cell.
    cell_truth : pandas.DataFrame
        Samples x types: the true cell fractions (what a method reporting
        cell fractions is scored against).
    """

    counts: pd.DataFrame
    labels: pd.Series
    subjects: pd.Series
    cell_truth: pd.DataFrame


@dataclass(frozen=True)
class Case:
    """One deconvolution problem with known answers.

    Attributes
    ----------
    name : str
        Unique name (``dataset`` plus the setting and seed).
    dataset : str
        The group the cross-validation leaves out as a whole.
    bulk : pandas.DataFrame
        Genes x samples, linear scale.
    signature : pandas.DataFrame
        Genes x cell types, linear scale.
    truth : pandas.DataFrame
        Samples x types: what a signature fit estimates (RNA fractions, or the
        designed / measured fractions of the given sets).
    renormalize : bool
        Score only the truth's types, the estimates renormalised to sum 1
        over them (LM22 against 9 flow subsets; a type missing from the
        reference).
    cells : Cells, optional
        The single-cell reference behind ``signature``, when there is one.
    note : str
        What the case is, for the report.
    """

    name: str
    dataset: str
    bulk: pd.DataFrame
    signature: pd.DataFrame
    truth: pd.DataFrame
    renormalize: bool = False
    cells: Cells | None = None
    note: str = ""
    params: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------
# the given sets
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _dataset(name):
    return read_dataset(DATA / name)


def given_cases():
    """The four given sets with known proportions, each its own dataset.

    Returns
    -------
    list of Case
    """
    cases = []
    for name in GIVEN:
        d = _dataset(name)
        truth = d["truth"].T
        renormalize = name == "newman_GSE65133"
        note = {
            "shenorr_GSE19830": "rat tissues mixed at designed ratios, microarray, 3 types",
            "abbas_GSE11058": "4 immune cell lines mixed at designed ratios, microarray",
            "newman_GSE65133": "20 PBMC microarrays, flow truth of 9 subsets, LM22 (22 types)",
            "sim_cibersort_tutorial_LM22": "in-silico LM22 mixtures (smoke test)",
        }[name]
        cases.append(Case(name, name, d["mixture"], d["reference"], truth, renormalize,
                          note=note))
    return cases


# ---------------------------------------------------------------------------
# single-cell pseudo-bulks
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def hao_cells():
    """Raw counts (genes x cells) and labels of hao_pbmc_sc_subset, in column order."""
    d = _dataset("hao_pbmc_sc_subset")
    counts = d["counts"]
    return counts, d["cell_labels"].loc[counts.columns].astype(str)


def lanes(cell_ids):
    """The sequencing lane of each cell (the prefix of its id, ``"E2L4_ACGT..."`` -> ``"E2L4"``)."""
    return pd.Series([str(c).split("_", 1)[0] for c in cell_ids], index=cell_ids, name="subject")


def mean_cpm(counts, labels):
    """Mean CPM profile per type (genes x types, types sorted): each cell normalised first."""
    cpm = counts / counts.sum() * 1e6
    return cpm.T.groupby(labels.to_numpy()).mean().T


def hao_split(seed, n_samples, *, merge=None, keep=None, cells_per_sample=500, **options):
    """Split the hao cells: reference counts and labels, pseudo-bulk of the rest (CPM).

    Parameters
    ----------
    seed : int
        Seed of the split and the mixing.
    n_samples : int or None
        Pseudo-bulk samples (None with ``fractions=``).
    merge : dict, optional
        Label -> coarser label (types not named keep their label).
    keep : sequence of str, optional
        Only the cells of these types.
    cells_per_sample : int, default 500
        Cells summed into each pseudo-bulk sample.
    **options
        Passed to :func:`fastdeconv.simulate.split_pseudobulk` (``fractions=``).

    Returns
    -------
    (pandas.DataFrame, pandas.Series, pandas.DataFrame, PseudobulkData)
        Reference counts, reference labels (str), the bulk in CPM, the pseudo-bulk.
    """
    counts, labels = hao_cells()
    if keep is not None:
        mask = labels.isin(keep).to_numpy()
        counts, labels = counts.loc[:, mask], labels[mask]
    if merge:
        labels = labels.map(lambda t: merge.get(t, t))
    split = split_pseudobulk(counts, labels, n_samples, seed=seed,
                             cells_per_sample=cells_per_sample, **options)
    pb = split.pseudobulk
    return (split.reference_counts, split.reference_labels.astype(str),
            pb.bulk / pb.bulk.sum() * 1e6, pb)


def hao_pseudobulk(seed, *, merge=None, cells_per_sample=500, n_samples=50, name=None):
    """A split-half pseudo-bulk case of hao_pbmc_sc_subset.

    Parameters
    ----------
    seed : int
        Seed of the split and of the mixing.
    merge : dict, optional
        Label -> coarser label (types not named keep their label).
    cells_per_sample : int, default 500
        Cells summed into each pseudo-bulk sample.
    n_samples : int, default 50
        Pseudo-bulk samples.
    name : str, optional
        Case name (default ``hao_split_s<seed>``).

    Returns
    -------
    Case
    """
    ref_counts, ref_labels, bulk, pb = hao_split(seed, n_samples, merge=merge,
                                                 cells_per_sample=cells_per_sample)
    signature = mean_cpm(ref_counts, ref_labels)
    types = list(signature.columns)
    cells = Cells(ref_counts, ref_labels, lanes(ref_counts.columns), pb.cell_fractions[types])
    kind = "coarse (siblings merged)" if merge else "all 11 types"
    note = (f"hao split-half pseudo-bulk, {kind}, {cells_per_sample} cells/sample, "
            f"{len(types)} types")
    return Case(name or f"hao_split_s{seed}", "hao_pseudobulk", bulk, signature,
                pb.rna_fractions[types], cells=cells, note=note,
                params=dict(seed=seed, cells_per_sample=cells_per_sample))


def hao_cases(quick=False):
    """The split-half pseudo-bulk cases (one dataset, ``hao_pseudobulk``).

    Parameters
    ----------
    quick : bool, default False
        One case of each kind instead of 3 + 2 + 2.

    Returns
    -------
    list of Case
    """
    seeds = (0,) if quick else (0, 1, 2)
    cases = [hao_pseudobulk(s) for s in seeds]
    cases += [hao_pseudobulk(s, merge=HAO_COARSE, name=f"hao_coarse_s{s}") for s in seeds[:2]]
    cases += [hao_pseudobulk(s, cells_per_sample=25, name=f"hao_25cells_s{s}")
              for s in seeds[:2]]
    return cases


# ---------------------------------------------------------------------------
# simulations on real profiles
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """Real profiles to simulate from.

    Attributes
    ----------
    name : str
        ``"hao"``, ``"lm22"``, ``"shenorr"`` or ``"abbas"``.
    reference : pandas.DataFrame
        Genes x types: what the methods are given.
    profiles : pandas.DataFrame
        Genes x types (same labels): what the bulk is mixed from; close to
        the reference but not equal (other cells, another replicate).
    kind : str
        ``"rnaseq"`` or ``"microarray"``.
    """

    name: str
    reference: pd.DataFrame
    profiles: pd.DataFrame
    kind: str


def _replicate_split(pure, labels, types, rng=None, held_index=None):
    """One pure replicate per type for the bulk, the mean of the others as reference.

    The held replicate is drawn with ``rng``, or is number ``held_index`` (modulo the
    replicates of the type).
    """
    ref, prof = {}, {}
    for t in types:
        cols = list(labels.index[labels == t])
        held = cols[int(rng.integers(len(cols))) if rng is not None else held_index % len(cols)]
        prof[t] = pure[held]
        ref[t] = pure[[c for c in cols if c != held]].mean(axis=1)
    return pd.DataFrame(ref)[types], pd.DataFrame(prof)[types]


def base_profiles(name, seed):
    """Real reference and bulk-generating profiles (see :class:`Base`).

    Parameters
    ----------
    name : {"hao", "lm22", "shenorr", "abbas"}
        Where the profiles come from.
    seed : int
        Seed of the split of cells or replicates (LM22: of its perturbation).

    Returns
    -------
    Base
    """
    rng = np.random.default_rng([seed, BASES.index(name)])
    if name == "hao":
        counts, labels = hao_cells()
        first = split_cells(labels.to_numpy(), 0.5, seed=seed + 1000)
        ref = mean_cpm(counts.loc[:, first], labels[first])
        prof = mean_cpm(counts.loc[:, ~first], labels[~first])[ref.columns]
        return Base(name, ref, prof, "rnaseq")
    if name == "lm22":
        lm22 = _dataset("sim_cibersort_tutorial_LM22")["reference"]
        prof = lm22 * np.exp(rng.normal(0.0, 0.2, size=lm22.shape))
        return Base(name, lm22, prof, "microarray")
    d = _dataset({"shenorr": "shenorr_GSE19830", "abbas": "abbas_GSE11058"}[name])
    types = list(d["reference"].columns)
    ref, prof = _replicate_split(d["pure"], d["pure_labels"], types, rng)
    return Base(name, ref, prof, "microarray")


def _fractions(rng, n, k):
    return rng.dirichlet(np.ones(k), size=n)


def _mix(profiles, frac, rng):
    """Bulk = profiles @ fractions, times log-normal biological variation (SAMPLE_SD)."""
    bulk = profiles.to_numpy() @ frac.T
    return bulk * np.exp(rng.normal(0.0, SAMPLE_SD, size=bulk.shape))


def _counts(rng, bulk, depth, dispersion=0.05, total=1e6):
    """Negative-binomial counts at ``depth`` reads per sample, scaled to ``total`` per sample
    (None: to the bulk's own totals, so that only the noise changes)."""
    sums = bulk.sum(axis=0)
    counts = _count_noise(rng, bulk / sums * depth, "negative_binomial", dispersion)
    counts = counts.astype(np.float64)
    return counts / counts.sum(axis=0) * (sums if total is None else total)


def _correlations(a, b):
    return (float(np.corrcoef(a, b)[0, 1]),
            float(np.corrcoef(np.log2(1.0 + a), np.log2(1.0 + b))[0, 1]))


def _make_collinear(reference, profiles, target=0.95):
    """Replace the second of the most similar pair by a mixture with the first (both tables)."""
    ref = reference.to_numpy()
    logc = np.corrcoef(np.log2(1.0 + ref).T)
    np.fill_diagonal(logc, -np.inf)
    i, j = np.unravel_index(np.argmax(logc), logc.shape)
    a, b = sorted((int(i), int(j)))
    lam = 0.0
    for lam in np.arange(0.0, 1.0, 0.01):
        mixed = lam * ref[:, a] + (1 - lam) * ref[:, b]
        if min(_correlations(ref[:, a], mixed)) >= target:
            break
    ref2, prof2 = reference.copy(), profiles.copy()
    ref2.iloc[:, b] = lam * reference.iloc[:, a] + (1 - lam) * reference.iloc[:, b]
    prof2.iloc[:, b] = lam * profiles.iloc[:, a] + (1 - lam) * profiles.iloc[:, b]
    lin, log = _correlations(ref2.iloc[:, a].to_numpy(), ref2.iloc[:, b].to_numpy())
    note = (f"{reference.columns[b]!s} = {lam:.2f} {reference.columns[a]!s} + "
            f"{1 - lam:.2f} itself (r {lin:.3f} linear, {log:.3f} log)")
    return ref2, prof2, note


def simulate(base, family, level, seed, n_samples=N_SAMPLES):
    """One simulated case: real profiles, one known perturbation.

    Parameters
    ----------
    base : Base
        The profiles (:func:`base_profiles`).
    family : str
        One of :data:`FAMILIES`.
    level : float or None
        The family's setting (platform sd, count depth); None where it has none.
    seed : int
        Seed of the fractions, noise and perturbation.
    n_samples : int, default 30
        Bulk samples.

    Returns
    -------
    Case
    """
    rng = np.random.default_rng([seed, FAMILIES.index(family), BASES.index(base.name)])
    ref, prof = base.reference, base.profiles
    types = list(ref.columns)
    k = len(types)
    samples = _sample_names(n_samples)
    renormalize = False
    note = ""
    if family == "collinear":
        ref, prof, note = _make_collinear(ref, prof)
    if family == "missing_type":
        missing = int(rng.integers(k))
        f_missing = rng.uniform(0.0, 0.3, size=n_samples)
        rest = _fractions(rng, n_samples, k - 1) * (1.0 - f_missing)[:, None]
        frac = np.insert(rest, missing, f_missing, axis=1)
    else:
        frac = _fractions(rng, n_samples, k)
    bulk = _mix(prof, frac, rng)
    n_genes = bulk.shape[0]

    if family == "platform":
        bulk *= np.exp(rng.normal(0.0, level, size=(n_genes, 1)))
        note = f"per-gene log-normal factor, sd {level}"
    elif family == "missing_type":
        note = f"{types[missing]!s} in the bulk (fraction U(0, 0.3)), not in the reference"
        keep = [t for i, t in enumerate(types) if i != missing]
        ref = ref[keep]
        truth = pd.DataFrame(np.delete(frac, missing, axis=1), index=samples, columns=keep)
        truth = truth.div(truth.sum(axis=1), axis=0)
        renormalize = True
    elif family == "outlier_genes":
        n_out = max(3, int(round(0.03 * n_genes)))
        rows = rng.choice(n_genes, size=n_out, replace=False)
        hit = rng.random((n_out, n_samples)) < 0.3
        bulk[rows] *= np.where(hit, 10.0 ** rng.uniform(1.0, 2.0, size=(n_out, n_samples)), 1.0)
        note = f"{n_out} genes (3%) times 10-100 in 30% of the samples"
    elif family == "count_noise":
        bulk = _counts(rng, bulk, level, total=None)
        note = f"negative-binomial counts at {level:.0e} reads per sample (scale kept)"
    elif family == "background":
        bulk += rng.uniform(0.25, 1.0, size=n_samples) * np.median(bulk, axis=0)
        note = "constant per sample, U(0.25, 1) x its median"
    elif family == "scale":
        if base.kind == "rnaseq":
            bulk = bulk ** ARRAY_POWER
            bulk += rng.uniform(0.1, 0.3, size=n_samples) * np.median(bulk, axis=0)
            bulk *= np.exp(rng.normal(0.0, 0.15, size=bulk.shape))
            note = f"microarray-like bulk (x**{ARRAY_POWER}, floor, noise) vs RNA-seq reference"
        else:
            bulk = _counts(rng, bulk ** (1.0 / ARRAY_POWER), 2e7)
            note = f"RNA-seq-like bulk (x**(1/{ARRAY_POWER}) as counts) vs microarray reference"
    elif family != "collinear":
        raise ValueError(f"unknown family {family!r}")

    if family != "missing_type":
        truth = pd.DataFrame(frac, index=samples, columns=types)
    setting = "" if level is None else f"_{level:g}"
    return Case(
        f"sim_{family}_{base.name}{setting}_s{seed}", f"sim_{family}",
        pd.DataFrame(bulk, index=prof.index, columns=samples),
        ref, truth, renormalize, note=f"{base.name}: {note}",
        params=dict(family=family, base=base.name, level=level, seed=seed),
    )


#: family -> (bases, levels)
SETTINGS = {
    "platform": (BASES, (0.5, 1.0)),
    "missing_type": (BASES, (None,)),
    "outlier_genes": (BASES, (None,)),
    "count_noise": (("hao", "shenorr"), (1e5, 1e6)),
    "collinear": (BASES, (None,)),
    "background": (BASES, (None,)),
    "scale": (BASES, (None,)),
}


def _seeds_samples(quick):
    """Seeds and samples per simulated case: two seeds and 30 samples, or (quick) one and 20."""
    return ((0,), 20) if quick else ((0, 1), N_SAMPLES)


def simulated_cases(quick=False, families=FAMILIES):
    """Every simulated case (one dataset per family).

    Parameters
    ----------
    quick : bool, default False
        One seed and 20 samples instead of two seeds and 30.
    families : sequence of str, default :data:`FAMILIES`
        Only these families.

    Returns
    -------
    list of Case
    """
    seeds, n = _seeds_samples(quick)
    cases = []
    for family in families:
        bases, levels = SETTINGS[family]
        for seed in seeds:
            for name in bases:
                base = base_profiles(name, seed)
                cases += [simulate(base, family, level, seed, n) for level in levels]
    return cases


# ---------------------------------------------------------------------------
# families like the held-back data: curated signatures, RNA-seq noise, designs
# ---------------------------------------------------------------------------

#: Seeds of the curated-signature cases (not those of the hao pseudo-bulks: other splits).
CURATED_SEEDS = (10, 11, 12)
#: Per-gene log-normal platform shift of the bulk in the shifted curated cases.
CURATED_SHIFT_SD = 0.5
#: Reads per sample of the heteroscedastic RNA-seq cases, and the gamma-Poisson dispersion
#: (0.09: a log-normal sd of about 0.3 on top of the Poisson noise).
HETERO_DEPTHS = (1e7, 1e6)
HETERO_DISPERSION = 0.09
#: CPM that the genes of a curated signature without a CPM scale (LM22) take in a library.
HETERO_SIGNATURE_CPM = 1e5
#: Replicates per design, and the log-normal noise per gene and sample of a designed mixture
#: (with the held-out replicate's own difference from the reference, about the residual sd, 0.2
#: on the log scale, of GSE19830's real mixtures against its reference and designs).
DESIGN_REPLICATES = 3
DESIGN_SD = 0.15
#: The hao types mixed at designed ratios (four distinct lineages, as abbas' four lines).
HAO_DESIGNED_TYPES = ("B cells", "Monocytes", "NK cells", "T cells CD4 conv")


def curated_signature(counts, labels):
    """A curated signature: :func:`fastdeconv.build_signature` with its default markers.

    Parameters
    ----------
    counts : pandas.DataFrame
        Raw counts, genes x cells.
    labels : pandas.Series
        Cell type per cell.

    Returns
    -------
    pandas.DataFrame
        Markers x types, mean CPM (about 25 markers per type).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer than 25 genes pass the marker rule for ..."
        return build_signature(counts, labels).signature


def curated_case(seed, *, merge=None, shift=None, n_samples=50):
    """Hao pseudo-bulk (held-out cells) with a curated signature from the reference half.

    Parameters
    ----------
    seed : int
        Seed of the split, the mixing and the shift.
    merge : dict, optional
        Label -> coarser label (:data:`HAO_COARSE`).
    shift : float, optional
        Sd of a per-gene log-normal factor on the bulk (a platform shift).
    n_samples : int, default 50
        Pseudo-bulk samples (500 cells each).

    Returns
    -------
    Case
    """
    ref_counts, ref_labels, bulk, pb = hao_split(seed, n_samples, merge=merge)
    signature = curated_signature(ref_counts, ref_labels)
    kind = "coarse" if merge else ("shift" if shift else "")
    note = (f"hao pseudo-bulk, curated signature ({signature.shape[0]} genes, "
            f"{signature.shape[1]} types, build_signature's markers)")
    if merge:
        note += ", siblings merged"
    if shift:
        rng = np.random.default_rng([seed, 7])
        bulk = bulk * np.exp(rng.normal(0.0, shift, size=(bulk.shape[0], 1)))
        note += f", bulk times a per-gene log-normal factor (sd {shift})"
    name = "_".join(["curated_hao"] + ([kind] if kind else []) + [f"s{seed}"])
    types = list(signature.columns)
    return Case(name, "curated_signature", bulk, signature, pb.rna_fractions[types], note=note,
                params=dict(seed=seed, merge=bool(merge), shift=shift))


def curated_cases(quick=False):
    """The curated-signature cases: as is, with a platform shift, with siblings merged.

    Parameters
    ----------
    quick : bool, default False
        One seed instead of three.

    Returns
    -------
    list of Case
    """
    seeds = CURATED_SEEDS[:1] if quick else CURATED_SEEDS
    cases = []
    for seed in seeds:
        cases += [curated_case(seed), curated_case(seed, shift=CURATED_SHIFT_SD),
                  curated_case(seed, merge=HAO_COARSE)]
    return cases


def hetero_base(name, seed):
    """A curated signature and the profiles the heteroscedastic bulk is drawn from.

    Parameters
    ----------
    name : {"lm22", "hao"}
        LM22 (547 genes; the profiles LM22 perturbed per gene and type,
        :func:`base_profiles`), or the curated signature built from one half
        of the hao cells (the profiles: the other half's mean CPM).
    seed : int
        Seed of the split (of the perturbation for LM22).

    Returns
    -------
    Base
        Reference and profiles on the signature's genes, in CPM (LM22 scaled
        so that a type's signature genes take :data:`HETERO_SIGNATURE_CPM`).
    """
    if name == "lm22":
        base = base_profiles("lm22", seed)
        factor = HETERO_SIGNATURE_CPM / float(np.median(base.reference.sum()))
        return Base("lm22", base.reference * factor, base.profiles * factor, "rnaseq")
    counts, labels = hao_cells()
    first = split_cells(labels.to_numpy(), 0.5, seed=seed + 1000)
    signature = curated_signature(counts.loc[:, first], labels[first])
    prof = mean_cpm(counts.loc[:, ~first], labels[~first])
    return Base("hao_curated", signature, prof.loc[signature.index, signature.columns], "rnaseq")


def hetero_case(base, depth, seed, n_samples=N_SAMPLES):
    """Bulk = profiles @ fractions as gamma-Poisson counts at ``depth`` reads, in CPM.

    Parameters
    ----------
    base : Base
        From :func:`hetero_base`.
    depth : float
        Reads per sample (the signature genes' share of them as in CPM).
    seed : int
        Seed of the fractions and counts.
    n_samples : int, default 30
        Bulk samples.

    Returns
    -------
    Case
    """
    rng = np.random.default_rng([seed, 11, int(base.name == "lm22")])
    types = list(base.reference.columns)
    frac = _fractions(rng, n_samples, len(types))
    mean = base.profiles.to_numpy() @ frac.T
    counts = _count_noise(rng, mean * depth / 1e6, "negative_binomial", HETERO_DISPERSION)
    bulk = counts.astype(np.float64) * (1e6 / depth)
    samples = _sample_names(n_samples)
    ref = base.reference
    note = (f"{base.name}: curated signature ({ref.shape[0]} genes, {ref.shape[1]} types), "
            f"gamma-Poisson counts (dispersion {HETERO_DISPERSION}) at {depth:.0e} reads")
    return Case(f"sim_rnaseq_hetero_{base.name}_{depth:g}_s{seed}", "sim_rnaseq_hetero",
                pd.DataFrame(bulk, index=ref.index, columns=samples), ref,
                pd.DataFrame(frac, index=samples, columns=types), note=note,
                params=dict(base=base.name, level=depth, seed=seed))


def hetero_cases(quick=False):
    """The heteroscedastic RNA-seq cases (LM22 and the hao curated signature, two depths).

    Parameters
    ----------
    quick : bool, default False
        One seed and 20 samples instead of two seeds and 30.

    Returns
    -------
    list of Case
    """
    seeds, n = _seeds_samples(quick)
    cases = []
    for seed in seeds:
        for name in ("lm22", "hao"):
            base = hetero_base(name, seed)
            cases += [hetero_case(base, depth, seed, n) for depth in HETERO_DEPTHS]
    return cases


def designs(name):
    """Designed fractions (designs x types) of a given set's mixtures.

    Parameters
    ----------
    name : {"shenorr_GSE19830", "abbas_GSE11058"}
        GSE19830's 11 designs of 3 tissues; GSE11058's 4 designs of 4 lines
        and the same 4 with the types in reverse order (8).

    Returns
    -------
    numpy.ndarray
        Rows sum to 1, columns in the order of the set's reference.
    """
    d = _dataset(name)
    truth = d["truth"].T[list(d["reference"].columns)]
    rows = truth.drop_duplicates().to_numpy(dtype=np.float64)
    if name == "abbas_GSE11058":
        rows = np.vstack([rows, rows[:, ::-1]])
    return rows / rows.sum(axis=1, keepdims=True)


def _designed_fractions(rows, types):
    frac = np.repeat(rows, DESIGN_REPLICATES, axis=0)
    names = [f"design{i + 1:02d}_rep{r + 1}" for i in range(len(rows))
             for r in range(DESIGN_REPLICATES)]
    return pd.DataFrame(frac, index=names, columns=types)


def designed_array_case(name, seed):
    """Designed mixtures of a given set's pure samples: one replicate held out for the bulk.

    Parameters
    ----------
    name : {"shenorr_GSE19830", "abbas_GSE11058"}
        Whose pure samples and designs.
    seed : int
        Which replicate of each type is held out (``seed`` modulo the
        replicates), and the noise.

    Returns
    -------
    Case
    """
    d = _dataset(name)
    types = list(d["reference"].columns)
    ref, prof = _replicate_split(d["pure"], d["pure_labels"], types, held_index=seed)
    truth = _designed_fractions(designs(name), types)
    rng = np.random.default_rng([seed, 13, GIVEN.index(name)])
    bulk = prof.to_numpy() @ truth.to_numpy().T
    bulk = bulk * np.exp(rng.normal(0.0, DESIGN_SD, size=bulk.shape))
    short = name.split("_")[0]
    note = (f"{short}: {len(types)} types at {len(truth) // DESIGN_REPLICATES} designs x "
            f"{DESIGN_REPLICATES}, reference the mean of the other pure replicates "
            f"({ref.shape[0]} genes), log-normal noise sd {DESIGN_SD}")
    return Case(f"designed_{short}_s{seed}", "designed_mixtures",
                pd.DataFrame(bulk, index=prof.index, columns=truth.index), ref, truth,
                note=note, params=dict(base=short, seed=seed))


def designed_hao_case(seed):
    """Pseudo-bulks of held-out hao cells of four lineages at abbas' designs.

    Parameters
    ----------
    seed : int
        Seed of the split and the mixing.

    Returns
    -------
    Case
    """
    types = list(HAO_DESIGNED_TYPES)
    wanted = _designed_fractions(designs("abbas_GSE11058"), types)
    ref_counts, ref_labels, bulk, pb = hao_split(seed, None, keep=types, fractions=wanted)
    signature = mean_cpm(ref_counts, ref_labels)[types]
    note = (f"hao: {', '.join(types)} at abbas' 8 designs x {DESIGN_REPLICATES} (held-out "
            f"cells, 500 per sample), whole-transcriptome reference ({signature.shape[0]} genes)")
    return Case(f"designed_hao_s{seed}", "designed_mixtures", bulk, signature,
                pb.rna_fractions[types], note=note, params=dict(base="hao", seed=seed))


def designed_cases(quick=False):
    """The designed-mixture cases: shenorr and abbas (3 seeds each), hao (2 seeds).

    Parameters
    ----------
    quick : bool, default False
        One seed of each.

    Returns
    -------
    list of Case
    """
    seeds = (0,) if quick else (0, 1, 2)
    cases = [designed_array_case("shenorr_GSE19830", s) for s in seeds]
    cases += [designed_array_case("abbas_GSE11058", s) for s in seeds]
    cases += [designed_hao_case(20 + s) for s in seeds[:2]]
    return cases


#: Seeds of the spatial spots (issue 12).
SPATIAL_SEEDS = (30, 31, 32)
#: Spots per spatial case.
SPATIAL_SPOTS = 200


def spatial_case(seed, cells_per_spot, *, curated=False, shift=None, n_spots=SPATIAL_SPOTS):
    """Spatial spots: the raw counts of a few held-out hao cells each, as a sparse AnnData.

    Sparse, low-depth counts (a Visium spot holds 1-10 cells, a Visium HD / Stereo-seq
    bin one or part of one): the regime where robust fits whose residual scale is a
    median absolute deviation can break down (most entries are 0).

    Parameters
    ----------
    seed : int
        Seed of the split, the mixing and the shift.
    cells_per_spot : int
        Cells summed into each spot.
    curated : bool, default False
        Signature: :func:`curated_signature` (markers); else every gene's mean CPM per type
        (whole transcriptome: ``genes="auto"`` picks the markers).
    shift : float, optional
        Sd of a per-gene log-normal platform factor; the counts are then drawn again
        (Poisson) at the shifted means.
    n_spots : int, optional

    Returns
    -------
    Case
        ``bulk`` is an AnnData (spots x genes, CSR counts).
    """
    import anndata
    import scipy.sparse as sp

    ref_counts, ref_labels, _, pb = hao_split(seed, n_spots, cells_per_sample=cells_per_spot)
    signature = (curated_signature(ref_counts, ref_labels) if curated
                 else mean_cpm(ref_counts, ref_labels))
    counts = pb.bulk.to_numpy(dtype=np.float64)
    note = (f"spatial spots: {cells_per_spot} held-out hao cells each (raw counts, sparse "
            f"AnnData), {'curated' if curated else 'whole-transcriptome'} signature")
    if shift:
        rng = np.random.default_rng([seed, 12])
        counts = rng.poisson(counts * np.exp(rng.normal(0.0, shift, size=(counts.shape[0], 1))))
        note += f", per-gene log-normal platform factor (sd {shift}), counts redrawn"
    bulk = anndata.AnnData(sp.csr_array(counts.T.astype(np.float32)),
                           obs=pd.DataFrame(index=pb.bulk.columns.astype(str)),
                           var=pd.DataFrame(index=pb.bulk.index.astype(str)))
    note += f"; {100 * (counts > 0).mean():.0f}% of entries non-zero"
    name = (f"spatial_{cells_per_spot}c" + ("_curated" if curated else "")
            + (f"_shift" if shift else "") + f"_s{seed}")
    types = list(signature.columns)
    truth = pb.rna_fractions[types].set_axis(bulk.obs_names, axis=0)
    return Case(name, "spatial_spots", bulk, signature, truth, note=note,
                params=dict(seed=seed, cells=cells_per_spot, curated=curated, shift=shift))


def spatial_cases(quick=False):
    """Spatial spots of 2, 5 and 20 cells, whole-transcriptome and curated signatures, with
    and without a platform shift.

    Parameters
    ----------
    quick : bool, default False
        One seed instead of three.

    Returns
    -------
    list of Case
    """
    cases = []
    for seed in SPATIAL_SEEDS[:1] if quick else SPATIAL_SEEDS:
        cases += [spatial_case(seed, 2), spatial_case(seed, 5), spatial_case(seed, 20),
                  spatial_case(seed, 5, curated=True),
                  spatial_case(seed, 20, shift=CURATED_SHIFT_SD),
                  spatial_case(seed, 5, curated=True, shift=CURATED_SHIFT_SD)]
    return cases


#: The groups of cases :func:`all_cases` builds, in the order they are reported.
GROUPS = ("given", "hao") + FAMILIES + ("curated", "rnaseq_hetero", "designed", "spatial")


def all_cases(quick=False, groups=GROUPS):
    """The given sets, the hao pseudo-bulks, the simulations and the three newer families.

    Parameters
    ----------
    quick : bool, default False
        Fewer seeds and samples (see :func:`hao_cases`, :func:`simulated_cases`,
        :func:`curated_cases`, :func:`hetero_cases`, :func:`designed_cases`).
    groups : sequence of str, default :data:`GROUPS`
        Only these groups (names of :data:`GROUPS`), in the order of :data:`GROUPS`.

    Returns
    -------
    list of Case
    """
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown groups {unknown}; choose from {', '.join(GROUPS)}")
    builders = {"given": given_cases, "hao": hao_cases, "curated": curated_cases,
                "rnaseq_hetero": hetero_cases, "designed": designed_cases,
                "spatial": spatial_cases}
    cases = []
    for group in GROUPS:
        if group not in groups:
            continue
        if group in FAMILIES:
            cases += simulated_cases(quick, families=(group,))
        else:
            cases += builders[group](quick) if group != "given" else given_cases()
    return cases
