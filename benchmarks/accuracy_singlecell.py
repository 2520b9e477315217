"""Accuracy of signatures built from single cells: pseudo-bulk and real PBMC bulk.

Re-runnable check of the targets of the "references from single-cell data"
issue, using only the library's public functions:

1. Split-half pseudo-bulk on ``hao_pbmc_sc_subset``: the cells of each type
   are split in two halves (seeded); the signature is built from one half,
   100 pseudo-bulk samples (500 cells each, Dirichlet(1) fractions) are
   mixed from the other half, deconvolved, and scored against the true RNA
   fractions and the true cell fractions, over all cell types of the
   signature.  Repeated for several seeds.
2. Real bulk: a signature from all of ``hao_pbmc_sc_subset`` (markers among
   the genes the array measures) applied to the 20 PBMC microarrays of
   ``newman_GSE65133``; estimates and flow-cytometry truth summed into five
   coarse groups (B, CD4 T, CD8 T, NK, monocytes), each renormalised to sum to
   1 over those groups, and scored (overall Pearson r and RMSE over the
   20 x 5 values).  Baseline: a mean-CPM signature of the top 50 markers per
   type by fold change, deconvolved without weights.
3. ``--timing``: ``build_signature`` on 10**5 simulated cells x 20000 genes
   (sparse).

Run from the repository root::

    python benchmarks/accuracy_singlecell.py            # accuracy, ~1 min
    python benchmarks/accuracy_singlecell.py --timing   # plus the 10**5-cell timing
    python benchmarks/accuracy_singlecell.py --plot pb.png   # estimated-vs-true figure

The default options of :func:`fastdeconv.build_signature` are used
throughout; nothing here is tuned to these datasets.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import fastdeconv
from fastdeconv.io import read_table
from fastdeconv.metrics import evaluate, group_types
from fastdeconv.simulate import split_pseudobulk

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASTDECONV_DATA", ROOT.parent / "shared" / "data"))

#: Newman flow subsets and hao cell types summed into the five coarse groups
NEWMAN_TRUTH_GROUPS = {
    "B": ["B cells naive", "B cells memory"],
    "CD4 T": ["T cells CD4 naive", "T cells CD4 memory resting", "T cells CD4 memory activated"],
    "CD8 T": ["T cells CD8"],
    "NK": ["NK cells resting"],
    "Monocytes": ["Monocytes"],
}
HAO_GROUPS = {
    "B": ["B cells"],
    "CD4 T": ["T cells CD4 conv", "Tregs"],
    "CD8 T": ["T cells CD8"],
    "NK": ["NK cells"],
    "Monocytes": ["Monocytes"],
}


def load_hao(data=DATA):
    """Counts (genes x cells DataFrame) and labels (Series by cell) of hao_pbmc_sc_subset."""
    folder = data / "hao_pbmc_sc_subset"
    counts = read_table(folder / "counts.tsv.gz")
    labels = read_table(folder / "cell_labels.tsv", numeric=False)["cell_type"]
    return counts, labels.loc[counts.columns]


def load_newman(data=DATA):
    """Mixture (genes x samples) and truth (subsets x samples) of newman_GSE65133."""
    folder = data / "newman_GSE65133"
    return read_table(folder / "mixture.tsv.gz"), read_table(folder / "truth.tsv")


def deconvolve_with(signature_result, bulk, method="nnls", weighted=True):
    """Deconvolve ``bulk``; return (RNA fractions, cell fractions), samples x types.

    ``method`` is passed to :func:`fastdeconv.deconvolve` with its other
    defaults; ``weighted`` adds the signature's inverse-mean gene weights.
    """
    weights = signature_result.gene_weights if weighted else None
    res = fastdeconv.deconvolve(
        bulk, signature_result.signature, method=method, weights=weights, progress=False
    )
    rna = res.proportions
    return rna, res.to_cell_fractions(signature_result)


def pseudobulk_split(counts, labels, seed, n_samples=100, method="nnls", **options):
    """One split-half experiment; returns the evaluations against RNA and cell fractions."""
    split = split_pseudobulk(counts, labels, n_samples, seed=seed, normalize="cpm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small types have few markers
        sig = fastdeconv.build_signature(split.reference_counts, split.reference_labels, **options)
    pb = split.pseudobulk
    rna, cells = deconvolve_with(sig, pb.bulk, method=method)
    types = list(sig.signature.columns)
    return (
        evaluate(rna[types], pb.rna_fractions[types]),
        evaluate(cells[types], pb.cell_fractions[types]),
        cells[types],
        pb.cell_fractions[types],
    )


def newman_truth(truth):
    return group_types(truth.T, NEWMAN_TRUTH_GROUPS)


def baseline_signature(counts, labels, genes, n_markers=50):
    """Mean-CPM signature of the top ``n_markers`` genes per type by fold change.

    The simple baseline of the issue: per-type mean CPM, markers ranked by
    the ratio of a type's mean to the mean of the other types (pseudocount 1
    CPM), among the genes measured by the bulk; no test, no weights.
    """
    cpm = counts / counts.sum(axis=0) * 1e6
    mean = cpm.T.groupby(np.asarray(labels)).mean().T
    mean = mean.loc[mean.index.isin(genes)]
    chosen = []
    for t in mean.columns:
        others = mean.drop(columns=t).mean(axis=1)
        fc = (mean[t] + 1.0) / (others + 1.0)
        chosen.extend(fc.sort_values(ascending=False).index[:n_markers])
    return mean.loc[pd.Index(chosen).unique()]


def newman_scores(estimate, truth):
    """Overall and per-group scores of a samples x hao-types estimate."""
    est = group_types(estimate, HAO_GROUPS)
    return evaluate(est, truth.loc[est.index, est.columns])


def run_pseudobulk(counts, labels, seeds, method="nnls", **options):
    rows = []
    for seed in seeds:
        ev_rna, ev_cell, _, _ = pseudobulk_split(counts, labels, seed, method=method, **options)
        rows.append(
            {
                "seed": seed,
                "rna_r": ev_rna.overall["pearson_r"],
                "rna_rmse": ev_rna.overall["rmse"],
                "cell_r": ev_cell.overall["pearson_r"],
                "cell_rmse": ev_cell.overall["rmse"],
            }
        )
    return pd.DataFrame(rows).set_index("seed")


def run_newman(counts, labels, mixture, truth):
    truth5 = newman_truth(truth)
    rows = []
    base = baseline_signature(counts, labels, mixture.index)
    for method in ("nnls", "simplex"):
        res = fastdeconv.deconvolve(mixture, base, method=method, progress=False)
        ev = newman_scores(res.proportions, truth5)
        rows.append(("baseline mean-CPM top-50, unweighted", method, "RNA", ev))
    for average in ("cells", "pooled"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sig = fastdeconv.build_signature(
                counts, labels, candidate_genes=mixture.index, average=average
            )
        for method in ("nnls", "simplex"):
            for weighted in (False, True):
                if average == "pooled" and not weighted:
                    continue
                rna, cells = deconvolve_with(sig, mixture, method=method, weighted=weighted)
                name = f"build_signature(average={average!r})" + (
                    ", gene_weights" if weighted else ", unweighted"
                )
                rows.append((name, method, "RNA", newman_scores(rna, truth5)))
                rows.append((name, method, "cells", newman_scores(cells, truth5)))
    table = pd.DataFrame(
        [
            {
                "signature": name,
                "solver": method,
                "fractions": kind,
                "r": ev.overall["pearson_r"],
                "rmse": ev.overall["rmse"],
                **{f"r {g}": ev.per_type.loc[g, "pearson_r"] for g in HAO_GROUPS},
            }
            for name, method, kind, ev in rows
        ]
    )
    return table, sig


def run_timing(n_cells=100_000, n_genes=20_000, density=0.02):
    sys.path.insert(0, str(ROOT / "benchmarks" / "benchmarks"))
    from bench_reference import make_sparse_counts

    small, small_labels = make_sparse_counts(n_genes=500, n_cells=400, density=0.3)
    fastdeconv.build_signature(small, small_labels, n_markers=5)  # compile / load cache
    counts, labels = make_sparse_counts(n_genes=n_genes, n_cells=n_cells, density=density)
    out = {}
    for method in ("t-test", "nb"):
        t0 = time.perf_counter()
        fastdeconv.build_signature(counts, labels, method=method, n_markers=50)
        out[method] = time.perf_counter() - t0
    return counts.nnz, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="split-half repetitions")
    parser.add_argument("--timing", action="store_true", help="time 1e5 cells x 20000 genes")
    parser.add_argument("--plot", help="estimated-vs-true figure of the first split (png/pdf)")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        parser.error(f"shared datasets not found at {DATA} (set FASTDECONV_DATA)")

    pd.set_option("display.width", 200)
    counts, labels = load_hao()
    print("== split-half pseudo-bulk, hao_pbmc_sc_subset (100 samples x 500 cells) ==")
    for method, average in (("nnls", "cells"), ("simplex", "cells"), ("nnls", "pooled")):
        table = run_pseudobulk(counts, labels, range(args.seeds), method=method, average=average)
        print(f"-- build_signature(average={average!r}); deconvolve method={method!r}, "
              "weights=gene_weights")
        print(table.round(3).to_string())
        print("mean:", table.mean().round(3).to_dict())

    mixture, truth = load_newman()
    print("\n== newman_GSE65133 (20 PBMC microarrays), 5 coarse groups ==")
    table, sig = run_newman(counts, labels, mixture, truth)
    print(table.round(3).to_string(index=False))
    print(f"signature: {sig.signature.shape[0]} genes x {sig.signature.shape[1]} types")

    if args.plot:
        from fastdeconv.plotting import plot_estimate_vs_truth

        _, _, est, tru = pseudobulk_split(counts, labels, 0)
        plot_estimate_vs_truth(est, tru, path=args.plot)
        print(f"figure written to {args.plot}")

    if args.timing:
        nnz, times = run_timing()
        print(f"\n== build_signature, 100000 cells x 20000 genes, sparse ({nnz} non-zeros) ==")
        for method, sec in times.items():
            print(f"method={method!r}: {sec:.2f} s")


if __name__ == "__main__":
    main()
