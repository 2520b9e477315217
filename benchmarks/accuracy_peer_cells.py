"""Accuracy of the single-cell peer methods (MuSiC, Bisque, EPIC) against NNLS on real cells.

1. Split-half pseudo-bulk on ``hao_pbmc_sc_subset``: the cells of every type
   are split in two (seeded, :func:`fastdeconv.simulate.split_pseudobulk`);
   the signature (:func:`fastdeconv.build_signature`, its default markers),
   the single-cell context (:meth:`CellContext.from_counts`, subjects = the
   13 sequencing lanes of the cell ids: "E2L4_", "L5_" ...) come from one
   half; 100 pseudo-bulk samples of 500 cells from the other.  Every method
   fits the same genes (the signature's markers); scored against the true
   *cell* fractions (NNLS's RNA fractions are converted with the reference's
   counts per cell).  Bulks: the 100 pseudo-bulks as mixed (same platform);
   the same with a per-gene affine platform shift (each gene scaled by
   exp(N(0, 0.5)) and offset by U(0, 1) x its mean: what Bisque is for); and
   the held-out cells summed by lane (13 samples whose compositions spread
   like the subjects', Bisque's assumption), without and with the shift.
   For reference, :func:`fastdeconv.deconvolve` with its defaults and
   ``labels=`` (its default method for single cells) on the same bulks.
2. ``newman_GSE65133`` with LM22 through :func:`fastdeconv.deconvolve`:
   EPIC (cell fractions with EPIC's mRNA per cell by LM22 name; and mRNA
   fractions) against NNLS and ``simplex_le``, the 9 flow-cytometry subsets
   scored against the like-named LM22 columns renormalised to sum to 1.

Run from the repository root::

    python benchmarks/accuracy_peer_cells.py            # ~1 min
    python benchmarks/accuracy_peer_cells.py --seeds 5

Nothing here is tuned to these data; every method runs with its defaults.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import fastdeconv
import fastdeconv.methods.bisque  # noqa: F401  (register the methods until the registry lists them)
import fastdeconv.methods.epic  # noqa: F401
import fastdeconv.methods.music  # noqa: F401
from fastdeconv.inputs.counts import as_counts
from fastdeconv.io import read_table
from fastdeconv.methods import REGRESSION
from fastdeconv.methods._problem import CellContext, RegressionProblem
from fastdeconv.metrics import evaluate
from fastdeconv.simulate import split_pseudobulk

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASTDECONV_DATA", ROOT.parent / "shared" / "data"))


def load_hao():
    folder = DATA / "hao_pbmc_sc_subset"
    counts = read_table(folder / "counts.tsv.gz")
    labels = read_table(folder / "cell_labels.tsv", numeric=False)["cell_type"]
    return counts, labels.loc[counts.columns]


def lanes(cells):
    """The sequencing lane of every cell id ("E2L4_GATG..." -> "E2L4")."""
    return np.array([str(c).split("_", 1)[0] for c in cells])


def shifted(bulk, seed):
    """A per-gene affine platform shift of a genes x samples bulk."""
    rng = np.random.default_rng(1000 + seed)
    scale = np.exp(rng.normal(0.0, 0.5, size=(bulk.shape[0], 1)))
    offset = rng.uniform(0.0, 1.0, size=(bulk.shape[0], 1)) * bulk.mean(axis=1, keepdims=True)
    return bulk * scale + offset


def fit_all(S, B, ctx, totals, rna_content):
    """Cell fractions (types x samples) of every method on one problem."""
    out = {}
    nnls = REGRESSION.get("nnls").fit(RegressionProblem(S, B)).coefficients
    cells = nnls / rna_content[:, None]
    out["nnls (RNA -> cells)"] = cells / cells.sum(axis=0)
    for name, options in [("music", {}), ("bisque", {}),
                          ("epic", dict(totals)),
                          ("epic, weights='none'", dict(totals, weights="none"))]:
        method = name.split(",")[0]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fit = REGRESSION.get(method).fit(
                RegressionProblem(S, B, options=options, cells=ctx))
        out[name] = fit.coefficients
        out[name + " seconds"] = time.perf_counter() - t0
    return out


def score(est, truth, types):
    ev = evaluate(pd.DataFrame(est.T, index=truth.index, columns=types), truth)
    return ev.overall["pearson_r"], ev.overall["rmse"], ev.per_type["pearson_r"].mean()


def run_hao(seeds):
    counts, labels = load_hao()
    rows = []
    for seed in range(seeds):
        split = split_pseudobulk(counts, labels, 100, seed=seed, cells_per_sample=500)
        ref_counts, ref_labels = split.reference_counts, split.reference_labels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sig = fastdeconv.build_signature(ref_counts, ref_labels)
        types = list(sig.signature.columns)
        genes = sig.signature.index
        full = CellContext.from_counts(as_counts(ref_counts), ref_labels.to_numpy(), types,
                                       subjects=lanes(ref_counts.columns))
        rows_of = pd.Index(ref_counts.index).get_indexer(genes)
        ctx = full.take(rows_of)
        S = np.ascontiguousarray(sig.signature.to_numpy(dtype=float))
        pb = split.pseudobulk
        rna = sig.rna_content[types].to_numpy(dtype=float)
        # held-out cells summed by lane: bulks whose compositions spread like the subjects'
        held = counts.columns.difference(ref_counts.columns)
        held_lanes = lanes(held)
        names = np.unique(held_lanes)
        lane_bulk = np.column_stack([counts[held[held_lanes == x]].sum(axis=1).to_numpy(float)
                                     for x in names])
        lane_truth = pd.DataFrame(
            [[np.mean(labels[held[held_lanes == x]] == t) for t in types] for x in names],
            index=names, columns=types)
        for platform in ("same platform", "per-gene shift", "lanes, same", "lanes, shift"):
            bulk_all = (pb.bulk.to_numpy(dtype=float) if not platform.startswith("lanes")
                        else lane_bulk)
            if platform.endswith("shift"):
                bulk_all = shifted(bulk_all, seed)
            truth = pb.cell_fractions[types] if not platform.startswith("lanes") else lane_truth
            B = np.ascontiguousarray(bulk_all[pd.Index(counts.index).get_indexer(genes)])
            totals = dict(bulk_totals=bulk_all.sum(axis=0),
                          signature_totals=(full.cell_mean() * 1e6).sum(axis=0))
            fits = fit_all(S, B, ctx, totals, rna)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                default = fastdeconv.deconvolve(
                    pd.DataFrame(bulk_all, index=counts.index), ref_counts, labels=ref_labels,
                    progress=False)
            fits[f"deconvolve default, labels= ({default.method})"] = (
                default.proportions[types].to_numpy().T)
            for name, est in fits.items():
                if name.endswith("seconds"):
                    continue
                r, rmse, r_type = score(est, truth, types)
                rows.append(dict(seed=seed, bulk=platform, method=name, r=r, rmse=rmse,
                                 per_type_r=r_type, seconds=fits.get(name + " seconds", np.nan)))
    table = pd.DataFrame(rows)
    return table.groupby(["bulk", "method"], sort=False)[["r", "rmse", "per_type_r",
                                                          "seconds"]].median()


def run_missing(seed=0):
    """EPIC's other cells when one type is left out of the reference (all 11 in turn).

    Pearson r over the 100 pseudo-bulk samples between the "other cells" share
    and the left-out type's true share (cell fractions; mRNA fractions against
    the true RNA fractions).
    """
    counts, labels = load_hao()
    split = split_pseudobulk(counts, labels, 100, seed=seed, cells_per_sample=500)
    pb = split.pseudobulk
    bulk_all = pb.bulk.to_numpy(dtype=float)
    rows = []
    for missing in sorted(labels.unique()):
        keep = split.reference_labels != missing
        ref_counts = split.reference_counts.loc[:, keep.to_numpy()]
        ref_labels = split.reference_labels[keep]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sig = fastdeconv.build_signature(ref_counts, ref_labels)
        types = list(sig.signature.columns)
        full = CellContext.from_counts(as_counts(ref_counts), ref_labels.to_numpy(), types,
                                       subjects=lanes(ref_counts.columns))
        ctx = full.take(pd.Index(ref_counts.index).get_indexer(sig.signature.index))
        S = np.ascontiguousarray(sig.signature.to_numpy(dtype=float))
        B = np.ascontiguousarray(bulk_all[pd.Index(counts.index).get_indexer(sig.signature.index)])
        totals = dict(bulk_totals=bulk_all.sum(axis=0),
                      signature_totals=(full.cell_mean() * 1e6).sum(axis=0))
        row = dict(missing=missing, true_mean=pb.cell_fractions[missing].mean())
        for frac in ("cells", "mrna"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                fit = REGRESSION.get("epic").fit(RegressionProblem(
                    S, B, options=dict(totals, weights="none", fractions=frac), cells=ctx))
            truth = (pb.cell_fractions if frac == "cells" else pb.rna_fractions)[missing]
            row[f"r other ({frac})"] = np.corrcoef(fit.extra["other_cells"], truth)[0, 1]
            row[f"mean other ({frac})"] = fit.extra["other_cells"].mean()
        rows.append(row)
    return pd.DataFrame(rows).set_index("missing")


def run_newman():
    folder = DATA / "newman_GSE65133"
    mixture = read_table(folder / "mixture.tsv.gz")
    lm22 = read_table(folder / "reference.tsv.gz")
    truth = read_table(folder / "truth.tsv").T
    rows = []
    for label, kw in [
        ("nnls (defaults)", dict(method="nnls")),
        ("nnls, robust=None, background=False", dict(method="nnls", robust=None,
                                                     background=False)),
        ("simplex_le", dict(method="simplex_le")),
        ("epic (cell fractions)", dict(method="epic")),
        ("epic (mRNA fractions)", dict(method="epic", method_options={"fractions": "mrna"})),
    ]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            res = fastdeconv.deconvolve(mixture, lm22, progress=False, **kw)
        est = res.proportions.drop(columns=["unexplained", "other_cells"], errors="ignore")
        ev = evaluate(est, truth, renormalize=True)
        rows.append(dict(method=label, r=ev.overall["pearson_r"], rmse=ev.overall["rmse"],
                         per_type_r=ev.per_type["pearson_r"].mean()))
    return pd.DataFrame(rows).set_index("method")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    pd.set_option("display.width", 140)
    print(f"hao_pbmc_sc_subset split-half pseudo-bulk, cell fractions, median over "
          f"{args.seeds} seeds")
    print(run_hao(args.seeds).round(3).to_string())
    print("\nEPIC other cells with one type left out of the reference (seed 0, "
          "weights='none')")
    missing = run_missing()
    print(missing.round(3).to_string())
    print("median r:", missing.filter(like="r other").median().round(3).to_dict())
    print("\nnewman_GSE65133 + LM22, 9 subsets renormalised")
    print(run_newman().round(3).to_string())


if __name__ == "__main__":
    main()
