"""Accuracy of hierarchical deconvolution (lineages, then subtypes) against flat fits.

Cell types that share markers -- subtypes of one lineage -- are the case the
hierarchy (:mod:`fastdeconv.hierarchical`) is for.  This script compares, on
real data with known proportions, the flat fit with the two-level fit, for
each regression setting, with an automatic hierarchy
(:func:`fastdeconv.hierarchical.lineages`) and a hand-given immune one, and
with both forms of the level fits (``columns="types"``: every type a column,
the hierarchy chooses the genes of each level; ``columns="lineages"``: mean
profiles of the lineages, Rectangle's clustered signature):

* ``newman_GSE65133`` -- 20 PBMC samples (microarray), flow cytometry of 9
  subsets, deconvolved with LM22 (22 types, 547 genes; many types of one
  lineage); scored as on the accuracy page: the 9 like-named columns,
  renormalised to sum to 1 (:func:`fastdeconv.metrics.evaluate`).
* ``hao_pbmc_sc_subset`` -- pseudo-bulks from single cells whose reference
  has sibling subtypes (CD4 conventional T, Tregs, CD8 T; NK; pDC and mDC;
  B and plasma cells): the cells of every type are split in halves
  (:func:`fastdeconv.simulate.split_pseudobulk`, seeds 0, 1, 2), the
  reference is the mean CPM of one half, 100 pseudo-bulks of 500 cells are
  mixed from the other and scored against their RNA fractions.

Settings (every fit through :func:`fastdeconv.deconvolve`):

* ``nnls``: ``method="nnls", robust=None, background=False``;
* ``nnls+huber``: ``method="nnls", robust="huber", background=False``;
* ``default``: the pipeline's defaults (NNLS, Huber, background term).

Rows: ``flat`` (``genes="auto"``, as the pipeline does today), ``flat
markers`` (``genes="markers"``: the flat fit on marker genes, the fair
comparison for the hierarchy, which selects markers at each level), and
``<hierarchy>/types`` for the hierarchical fits of the pipeline
(``fastdeconv.deconvolve(..., hierarchy=...)``: 100 marker genes per column of
each level's marker table) and ``<hierarchy>/lineages`` for the variant that
fits mean lineage profiles (:func:`fastdeconv.hierarchical.fit_hierarchical`
with ``columns="lineages"``, levels fitted by ``deconvolve`` on the genes the
pipeline's rule picks).

Scores: pooled Pearson r and RMSE over all (type, sample) entries, and the
per-type Pearson r (minimum and median over the scored types).  Nothing is
tuned: the hand hierarchy is the textbook immune lineage tree, written down
before any run.

Run from the repository root::

    python benchmarks/accuracy_hierarchical.py            # all (about 2 minutes on 2 cores)
    python benchmarks/accuracy_hierarchical.py --quick    # hao seed 0 and newman only
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

import fastdeconv
from fastdeconv.hierarchical import fit_hierarchical, lineages
from fastdeconv.regression import _choose_genes
from fastdeconv.io import read_dataset
from fastdeconv.metrics import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_reference import split_half_pseudobulk  # noqa: E402  (the same split as there)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASTDECONV_DATA", ROOT.parent / "shared" / "data"))

SETTINGS = {
    "nnls": dict(method="nnls", robust=None, background=False),
    "nnls+huber": dict(method="nnls", robust="huber", background=False),
    "default": dict(),
}

#: Textbook immune lineages of LM22's 22 types (types not listed are lineages of their own).
LM22_HIERARCHY = {
    "B cells": ["B cells naive", "B cells memory", "Plasma cells"],
    "T cells": ["T cells CD8", "T cells CD4 naive", "T cells CD4 memory resting",
                "T cells CD4 memory activated", "T cells follicular helper",
                "T cells regulatory (Tregs)", "T cells gamma delta"],
    "NK cells": ["NK cells resting", "NK cells activated"],
    "Monocytes/macrophages": ["Monocytes", "Macrophages M0", "Macrophages M1", "Macrophages M2"],
    "Dendritic cells": ["Dendritic cells resting", "Dendritic cells activated"],
    "Mast cells": ["Mast cells resting", "Mast cells activated"],
}
#: The siblings of the Hao reference (others are lineages of their own).
HAO_HIERARCHY = {
    "T cells": ["T cells CD4 conv", "Tregs", "T cells CD8"],
    "Dendritic cells": ["pDC", "mDC"],
    "B lineage": ["B cells", "Plasma cells"],
}


def full_map(groups, types):
    """Lineage -> types form completed with one lineage per unlisted type."""
    listed = {t for ts in groups.values() for t in ts}
    out = dict(groups)
    out.update({t: [t] for t in types if t not in listed})
    return out


def load_newman():
    d = read_dataset(DATA / "newman_GSE65133")
    return d["mixture"], d["reference"], d["truth"].T, True, LM22_HIERARCHY


def load_hao(seed):
    d = read_dataset(DATA / "hao_pbmc_sc_subset")
    bulk, reference, truth = split_half_pseudobulk(d["counts"], d["cell_labels"], seed=seed)
    return bulk, reference, truth, False, HAO_HIERARCHY


def scores(estimate, truth, renormalize):
    ev = evaluate(estimate, truth, renormalize=renormalize)
    per_type = ev.per_type["pearson_r"]
    return dict(pearson_r=ev.overall["pearson_r"], rmse=ev.overall["rmse"],
                min_type_r=per_type.min(), median_type_r=per_type.median()), per_type


def level_fit(**options):
    """A level fit of deconvolve calls on the genes the pipeline's rule picks (100 markers)."""

    def fit(sig, bulk, markers, genes):
        used = _choose_genes(markers, genes, 100, 2.0)
        return fastdeconv.deconvolve(bulk, sig, genes=used, progress=False, **options).proportions

    return fit


def run(cases):
    rows, per_type = [], {}
    for dataset, loader in cases:
        bulk, signature, truth, renorm, hand = loader()
        common = signature.index.intersection(bulk.index)
        signature, bulk = signature.loc[common], bulk.loc[common]
        hierarchies = {"auto": lineages(signature), "hand": full_map(hand, signature.columns)}
        for setting, options in SETTINGS.items():
            estimates = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for label, genes in (("flat", "auto"), ("flat markers", "markers")):
                    t0 = time.perf_counter()
                    res = fastdeconv.deconvolve(bulk, signature, genes=genes, progress=False,
                                                **options)
                    estimates[label] = (res.proportions, time.perf_counter() - t0)
                fit = level_fit(**options)
                for hname, hierarchy in hierarchies.items():
                    t0 = time.perf_counter()
                    res = fastdeconv.deconvolve(bulk, signature, hierarchy=hierarchy,
                                                progress=False, **options)
                    estimates[f"{hname}/types"] = (res.proportions, time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    res = fit_hierarchical(signature, bulk, hierarchy, fit, columns="lineages")
                    estimates[f"{hname}/lineages"] = (res.proportions, time.perf_counter() - t0)
            for label, (est, seconds) in estimates.items():
                est = est.drop(columns="unexplained", errors="ignore")
                sc, pt = scores(est, truth, renorm)
                rows.append(dict(dataset=dataset, setting=setting, fit=label, **sc,
                                 seconds=seconds))
                per_type[(dataset, setting, label)] = pt
        print(f"done {dataset}", file=sys.stderr, flush=True)
    return pd.DataFrame(rows), per_type


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="newman and one hao split only")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"shared datasets not found at {DATA} (set FASTDECONV_DATA)", file=sys.stderr)
        return 1
    seeds = (0,) if args.quick else (0, 1, 2)
    cases = [("newman_GSE65133", load_newman)]
    cases += [(f"hao split {s}", lambda s=s: load_hao(s)) for s in seeds]
    table, per_type = run(cases)
    fmt = dict(float_format=lambda v: f"{v:.3f}", index=False)
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        print("Automatic lineages (fastdeconv.hierarchical.lineages):")
        for dataset, loader in cases[:2]:
            _, signature, _, _, _ = loader()
            groups = [g for g in lineages(signature).unique() if " + " in g]
            print(f"  {dataset}: " + "; ".join(groups))
        print()
        print(table.to_string(**fmt))
        print()
        hao = table[table.dataset.str.startswith("hao")]
        if len(hao):
            mean = hao.groupby(["setting", "fit"], sort=False)[
                ["pearson_r", "rmse", "min_type_r", "median_type_r"]].mean().reset_index()
            print("hao, mean over the splits:")
            print(mean.to_string(**fmt))
            print()
        # the hierarchy against the flat fit, per dataset and setting: r and RMSE ratios
        flat = table[table.fit == "flat"].set_index(["dataset", "setting"])
        hier = table[table.fit.str.contains("/")].copy()
        hier["r - flat r"] = [r - flat.loc[(d, s), "pearson_r"]
                              for d, s, r in zip(hier.dataset, hier.setting, hier.pearson_r)]
        hier["rmse / flat rmse"] = [e / flat.loc[(d, s), "rmse"]
                                    for d, s, e in zip(hier.dataset, hier.setting, hier.rmse)]
        by = hier.groupby(["setting", "fit"], sort=False)
        summary = pd.concat([by["r - flat r"].min().rename("worst r - flat r"),
                             by["r - flat r"].median().rename("median r - flat r"),
                             by["rmse / flat rmse"].max().rename("worst rmse ratio")], axis=1)
        print("hierarchy against the flat fit (genes='auto'), over the datasets:")
        print(summary.reset_index().to_string(**fmt))
        print()
        for dataset in ("newman_GSE65133", "hao split 0"):
            cols = {f"{s} {f}": per_type[(dataset, s, f)]
                    for s in ("default", "nnls+huber")
                    for f in ("flat", "auto/types", "hand/types", "auto/lineages")
                    if (dataset, s, f) in per_type}
            if cols:
                print(f"{dataset}: per-type Pearson r")
                print(pd.DataFrame(cols).to_string(float_format=lambda v: f"{v:.3f}"))
                print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
