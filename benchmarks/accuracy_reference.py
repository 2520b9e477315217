"""Accuracy of reference-based deconvolution on real mixtures with known proportions.

Runs :func:`fastdeconv.deconvolve` with its default options, a few of its
documented alternatives (to show what each part of the default contributes)
and peer-style baselines on the shared datasets, and prints one table:

* ``shenorr_GSE19830`` -- rat liver/brain/lung RNA mixed at designed ratios
  (reference: mean of the pure samples; 3 types).
* ``abbas_GSE11058`` -- four immune cell lines mixed at designed ratios
  (reference: mean of the pure replicates; 4 types).
* ``newman_GSE65133`` -- 20 PBMC samples with flow cytometry of 9 subsets,
  deconvolved with LM22 (22 types): the 9 truth rows are scored against the
  like-named LM22 columns after renormalising those 9 estimates to sum to 1.
* ``sim_cibersort_tutorial_LM22`` -- in-silico LM22 mixtures (a smoke test).
* ``hao_pbmc_sc_subset`` -- an independent check of the defaults on data of
  another kind (no target): the cells of each type are split in two halves
  (seeded); the reference is the mean CPM profile of one half (11 types,
  11180 genes, so marker selection applies), and 100 pseudo-bulk samples of
  500 cells (:func:`fastdeconv.simulate.pseudobulk`) are mixed from the other
  half and scored against their true RNA fractions.

Scores: Pearson r and RMSE pooled over all (cell type, sample) entries
(:func:`fastdeconv.metrics.evaluate`).

Baselines: NNLS on all common genes (:func:`scipy.optimize.nnls`, normalised),
simplex-constrained least squares on all common genes, and a CIBERSORT-style
nu-SVR (linear kernel, nu in {0.25, 0.5, 0.75} chosen by the RMSE of the
reconstruction, inputs z-scored, negative weights set to 0 and normalised;
solved with cvxpy, skipped when cvxpy is missing) on the genes the default
uses, with CIBERSORT's C = 1 and with C = 100 (weaker shrinkage).

Run from the repository root::

    python benchmarks/accuracy_reference.py                      # print the table

The documentation's accuracy page is written by ``benchmarks/study_reference.py``
(the cross-validated method-selection study that chose the defaults); this
script is the quick per-dataset view of the default and its switches.

Nothing here is tuned to these datasets: the library defaults are used as
they are documented.
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
import scipy.optimize

import fastdeconv
from fastdeconv.io import read_dataset
from fastdeconv.fractions import held_out_cell_fractions
from fastdeconv.metrics import evaluate
from fastdeconv.simulate import split_pseudobulk

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASTDECONV_DATA", ROOT.parent / "shared" / "data"))

DATASETS = {
    "shenorr_GSE19830": dict(renormalize=False),
    "abbas_GSE11058": dict(renormalize=False),
    "newman_GSE65133": dict(renormalize=True),
    "sim_cibersort_tutorial_LM22": dict(renormalize=False),
    "hao_pbmc_sc_subset": dict(renormalize=False),
}

#: Targets of the issue (overall Pearson r, RMSE); None = no target.
TARGETS = {
    "shenorr_GSE19830": (0.99, 0.04),
    "abbas_GSE11058": (0.95, None),
    "newman_GSE65133": (0.60, None),  # "beat the nu-SVR baseline (r 0.60)"
}

#: Figures the issue measured with peer-style baselines (r, RMSE).
ISSUE_BASELINES = {
    "shenorr_GSE19830": "NNLS 0.98 / 0.046; simplex LS 0.98 / 0.062; nu-SVR (100 markers/type) 0.99 / 0.047",
    "abbas_GSE11058": "NNLS 0.86; nu-SVR 0.90",
    "newman_GSE65133": "NNLS 0.28; nu-SVR 0.60 (over the 9 subsets)",
}

#: fastdeconv configurations: the default first, then one change at a time.
VARIANTS = {
    "fastdeconv default": {},
    "method='simplex'": dict(method="simplex"),
    "method='simplex_le'": dict(method="simplex_le"),
    "robust=None": dict(robust=None),
    "genes='all'": dict(genes="all"),
    "background=False": dict(background=False),
    "n_markers=50": dict(n_markers=50),
    "n_markers=200": dict(n_markers=200),
}


def load(name):
    """Return mixture, reference and truth (samples x types) of one dataset."""
    d = read_dataset(DATA / name)
    if name == "hao_pbmc_sc_subset":
        return split_half_pseudobulk(d["counts"], d["cell_labels"])
    return d["mixture"], d["reference"], d["truth"].T


def split_half_pseudobulk(counts, labels, seed=0, n_samples=100):
    """Mean-CPM reference from half of the cells, pseudo-bulk CPM from the other half."""
    split = split_pseudobulk(counts, labels.loc[counts.columns], n_samples, seed=seed,
                             cells_per_sample=500)
    cells = split.reference_counts
    cpm = cells / cells.sum() * 1e6
    reference = cpm.T.groupby(split.reference_labels).mean().T
    pb = split.pseudobulk
    bulk = pb.bulk / pb.bulk.sum() * 1e6
    return bulk, reference, pb.rna_fractions[reference.columns]


def score(estimate, truth, renormalize):
    """Overall Pearson r and RMSE of an estimate (samples x types) against the truth."""
    ev = evaluate(estimate, truth, renormalize=renormalize)
    return ev.overall["pearson_r"], ev.overall["rmse"], ev


def common(bulk, signature):
    genes = signature.index[signature.index.isin(bulk.index)]
    return bulk.loc[genes], signature.loc[genes]


def baseline_nnls(bulk, signature):
    """scipy NNLS on all common genes, coefficients normalised to sum to 1."""
    B, S = common(bulk, signature)
    X = np.column_stack([scipy.optimize.nnls(S.to_numpy(), B[c].to_numpy())[0] for c in B])
    return pd.DataFrame((X / X.sum(0)).T, index=B.columns, columns=S.columns)


def baseline_simplex(bulk, signature):
    """Simplex-constrained least squares on all common genes."""
    B, S = common(bulk, signature)
    X = fastdeconv.simplex_lstsq(S.to_numpy(), B.to_numpy())
    return pd.DataFrame(X.T, index=B.columns, columns=S.columns)


def baseline_nusvr(bulk, signature, genes, C=1.0):
    """CIBERSORT-style linear nu-SVR (Newman et al. 2015) with cvxpy; None without cvxpy."""
    try:
        import cvxpy as cp
    except ImportError:
        return None
    S = signature.loc[genes].to_numpy()
    S = (S - S.mean()) / S.std()
    n, k = S.shape
    out = {}
    for sample in bulk.columns:
        y = bulk.loc[genes, sample].to_numpy()
        y = (y - y.mean()) / y.std()
        best = None
        for nu in (0.25, 0.5, 0.75):
            w, b0, eps = cp.Variable(k), cp.Variable(), cp.Variable(nonneg=True)
            xi, xs = cp.Variable(n, nonneg=True), cp.Variable(n, nonneg=True)
            r = y - S @ w - b0
            prob = cp.Problem(
                cp.Minimize(0.5 * cp.sum_squares(w) + C * (nu * eps + cp.sum(xi + xs) / n)),
                [r <= eps + xi, -r <= eps + xs],
            )
            prob.solve(solver=cp.CLARABEL)
            coef = np.maximum(w.value, 0.0)
            if coef.sum() <= 0:
                continue
            p = coef / coef.sum()
            rmse = np.sqrt(np.mean((y - S @ p * (y @ (S @ p)) / max((S @ p) @ (S @ p), 1e-300)) ** 2))
            if best is None or rmse < best[0]:
                best = (rmse, p)
        out[sample] = best[1] if best else np.full(k, np.nan)
    return pd.DataFrame(out, index=signature.columns).T


#: Datasets whose truth counts cells (designed cell mixtures, flow cytometry) and
#: gets the RNA-content calibration rows.
CALIBRATED = ("shenorr_GSE19830", "abbas_GSE11058", "newman_GSE65133")
CALIBRATION_CV = "default, RNA content calibrated on the other mixtures (held-out scores)"
CALIBRATION_ORACLE = "default, RNA content fitted to these samples (oracle, not a method)"


def run(names, with_svr=True):
    """Score every method on every dataset; return (rows, details)."""
    rows, details = [], {}
    for name in names:
        bulk, signature, truth = load(name)
        renorm = DATASETS[name]["renormalize"]
        results = {}
        for label, options in VARIANTS.items():
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = fastdeconv.deconvolve(bulk, signature, progress=False, **options)
            seconds = time.perf_counter() - t0
            results[label] = (res.proportions.drop(columns="unexplained", errors="ignore"), seconds)
            if label == "fastdeconv default":
                default = res
        for label, fn in [("NNLS, all genes (scipy)", baseline_nnls),
                          ("simplex LS, all genes", baseline_simplex)]:
            t0 = time.perf_counter()
            results[label] = (fn(bulk, signature), time.perf_counter() - t0)
        if with_svr:
            t0 = time.perf_counter()
            est = baseline_nusvr(bulk, signature, default.genes_used)
            if est is not None:
                results["nu-SVR (CIBERSORT-style), default genes"] = (est, time.perf_counter() - t0)
                t0 = time.perf_counter()
                est = baseline_nusvr(bulk, signature, default.genes_used, C=100.0)
                results["nu-SVR as above, C=100 (less shrinkage)"] = (est, time.perf_counter() - t0)
        if name in CALIBRATED:
            t0 = time.perf_counter()
            held_out, oracle = held_out_cell_fractions(results["fastdeconv default"][0], truth)
            seconds = time.perf_counter() - t0
            results[CALIBRATION_CV] = (held_out, seconds)
            results[CALIBRATION_ORACLE] = (oracle, seconds)
        for label, (est, seconds) in results.items():
            r, rmse, ev = score(est, truth, renorm)
            rows.append(dict(dataset=name, method=label, pearson_r=r, rmse=rmse, seconds=seconds))
            if label == "fastdeconv default":
                details[name] = dict(result=default, evaluation=ev)
    return pd.DataFrame(rows), details


def target_text(name, r, rmse):
    target = TARGETS.get(name)
    if target is None:
        return "no target (smoke test)" if name.startswith("sim") else "no target (independent check)"
    r_min, rmse_max = target
    ok = r >= r_min and (rmse_max is None or rmse <= rmse_max)
    want = f"r >= {r_min}" + (f", RMSE <= {rmse_max}" if rmse_max is not None else "")
    return f"{'met' if ok else 'NOT met'} ({want})"


def markdown_table(frame, floatfmt="{:.3f}"):
    """A DataFrame as a Markdown table (index included when it is named)."""
    show = frame.reset_index() if frame.index.name else frame
    cells = [[floatfmt.format(v) if isinstance(v, (float, np.floating)) else str(v) for v in row]
             for row in show.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, show.columns)) + " |",
             "| " + " | ".join("---" for _ in show.columns) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def per_type_table(details, name):
    ev = details[name]["evaluation"]
    cols = [c for c in ("pearson_r", "rmse", "mean_estimate", "mean_truth") if c in ev.per_type]
    return markdown_table(ev.per_type[cols])


def page(table, details):
    """The docs/accuracy.md page, with every figure taken from this run."""
    default = table[table["method"] == "fastdeconv default"].set_index("dataset")
    summary = default[["pearson_r", "rmse"]].copy()
    summary["target"] = [target_text(n, r.pearson_r, r.rmse) for n, r in summary.iterrows()]
    summary["issue's baselines (r / RMSE)"] = [ISSUE_BASELINES.get(n, "") for n in summary.index]

    def fig(dataset, method, column="pearson_r"):
        row = table[(table.dataset == dataset) & (table.method == method)]
        return f"{row[column].iloc[0]:.3f}" if len(row) else "n/a"

    svr = "nu-SVR (CIBERSORT-style), default genes"
    abbas = details.get("abbas_GSE11058")
    abbas_bias = ""
    if abbas is not None:
        pt = abbas["evaluation"].per_type
        bias = (pt["mean_estimate"] - pt["mean_truth"]).round(3)
        abbas_bias = ", ".join(f"{t} {b:+.3f}" for t, b in bias.items())
        abbas_r = ", ".join(f"{t} {r:.3f}" for t, r in pt["pearson_r"].items())
    return f"""# Accuracy on real mixtures

This page is generated by `python benchmarks/accuracy_reference.py --write docs/accuracy.md`
(about a minute on two cores); anyone can re-run it and get the same figures.
The datasets are the shared real mixtures with known proportions (`../shared/data`,
see its README): two designed mixing experiments, 20 PBMC samples with flow-cytometry
truth, a simulated smoke test, and pseudo-bulk mixtures of single cells. Scores are Pearson r and RMSE pooled over all
(cell type, sample) entries ({{func}}`fastdeconv.metrics.evaluate`); for
`newman_GSE65133` the 9 truth rows are scored against the like-named LM22 columns
after renormalising those 9 estimates to sum to 1.

{{func}}`fastdeconv.deconvolve` runs with its documented defaults (see the
{{doc}}`guide`: NNLS normalised to sum 1, 100 marker genes per type for
whole-transcriptome references, Huber re-weighting, a background term). Nothing is
tuned to these data; `tests/test_accuracy_reference.py` asserts these figures.

## The default against the targets

{markdown_table(summary)}

What the figures say:

- **shenorr_GSE19830** (three very distinct tissues) is the easy case. The default
  meets the target because of the marker-gene selection (all genes: r
  {fig("shenorr_GSE19830", "genes='all'")}) and the robust fit (plain NNLS on the
  markers: RMSE {fig("shenorr_GSE19830", "robust=None", "rmse")}). The number of
  markers matters: see the `n_markers` rows below; 100 per type is the default for
  the reason given in the guide, not because it is best here.
- **abbas_GSE11058 does not reach r 0.95** with the default or any variant here. Each
  cell line is tracked closely across the mixtures (per-type r: {abbas_r if abbas else "n/a"}),
  but with a constant per-type offset (mean estimate minus mean truth: {abbas_bias}).
  For marker genes of a single line, mixture / pure profile gives the same factor in
  every mixture (about 0.8 for IM-9 and Raji, 1.3 for THP-1): a per-cell-type scale
  difference between the pure samples and the mixtures (mRNA per cell, per-array
  normalisation) that no linear fit with this reference can identify from the
  mixtures alone. Robust fitting improves on plain NNLS
  ({fig("abbas_GSE11058", "NNLS, all genes (scipy)")}) and is on a par with the
  nu-SVR baseline, not better (the issue's 0.90; our nu-SVR runs:
  {fig("abbas_GSE11058", svr)} with C = 1,
  {fig("abbas_GSE11058", "nu-SVR as above, C=100 (less shrinkage)")} with C = 100).
- **The gap on abbas_GSE11058 is four numbers, one per cell line.** They behave like
  RNA contents per cell (THP-1, the monocytic line, carries the most, the B-cell
  lines the least): if the designed fractions count cells, a line's share of the RNA
  is its share of the cells times its RNA per cell. Any set of RNA contents explains the mixtures equally
  well (dividing a type's column of the signature by a factor and multiplying its
  coefficient by it leaves the fit unchanged), so no method that sees only the
  mixtures and this reference can tell the two apart. Given the contents,
  {{func}}`fastdeconv.to_cell_fractions` converts: with contents fitted by
  {{func}}`fastdeconv.fractions.fit_rna_content` on the *other* three mixture designs
  and applied to the held-out one, the default scores r
  {fig("abbas_GSE11058", CALIBRATION_CV)} (RMSE {fig("abbas_GSE11058", CALIBRATION_CV, "rmse")});
  fitted to all twelve samples (an oracle, not a method) r
  {fig("abbas_GSE11058", CALIBRATION_ORACLE)}. The same calibration leaves
  shenorr_GSE19830, whose truth is a share of tissue RNA, where it was
  ({fig("shenorr_GSE19830", CALIBRATION_CV)} held out), and lifts newman_GSE65133,
  whose flow-cytometry truth counts cells, from
  {fig("newman_GSE65133", "fastdeconv default")} to
  {fig("newman_GSE65133", CALIBRATION_CV)} (each sample held out in turn). This needs
  samples of known composition from the same cell types and platform; without
  them, the estimates are RNA fractions, and the default's figures above stand.
- **newman_GSE65133** with LM22 (22 types, 9 measured subsets, another platform than
  LM22's) is the hard case. The default ({fig("newman_GSE65133", "fastdeconv default")})
  beats plain NNLS ({fig("newman_GSE65133", "NNLS, all genes (scipy)")}) and the issue's
  nu-SVR figure (0.60), but **our own CIBERSORT-style nu-SVR run is better on this
  dataset** ({fig("newman_GSE65133", svr)}); it is worse on the other three. Its
  advantage here comes from the ridge penalty of the SVR (CIBERSORT's C = 1 on
  z-scored data shrinks the 22 coefficients): with C = 100 it scores
  {fig("newman_GSE65133", "nu-SVR as above, C=100 (less shrinkage)")}. fastdeconv has no
  shrinkage option yet; choosing its strength without tuning to the data set is
  the open question. The
  background term (the array's intensity floor) and the robust loss carry most of
  the gain over NNLS; the sum-to-one constraint hurts across platforms
  (`method='simplex'`: {fig("newman_GSE65133", "method='simplex'")}).
  Per-subset accuracy is uneven (table at the end).
- **hao_pbmc_sc_subset** (split-half pseudo-bulk from single cells; no target, an
  independent check of the defaults on another kind of data): the default scores
  {fig("hao_pbmc_sc_subset", "fastdeconv default")}, plain NNLS on all genes
  {fig("hao_pbmc_sc_subset", "NNLS, all genes (scipy)")}. Here the marker selection
  neither helps nor hurts (all genes: {fig("hao_pbmc_sc_subset", "genes='all'")}) but
  makes the fit several times faster; the robust fit is what matters
  (`robust=None`: {fig("hao_pbmc_sc_subset", "robust=None")}). The pseudocount of the
  marker rule is essential on such sparse profiles: without it, genes seen in a
  handful of cells win on ratios of tiny means (see the guide).

## Every method on every dataset

Variants of `deconvolve` change one option of the default at a time; the
baselines are described in the script's docstring (the nu-SVR uses the genes the
default uses). Times are wall-clock seconds on the shared two-core machine,
including the input checks and gene matching.

{markdown_table(table.set_index("dataset"))}

## newman_GSE65133 per subset (default)

{per_type_table(details, "newman_GSE65133") if "newman_GSE65133" in details else ""}

## abbas_GSE11058 per cell line (default)

{per_type_table(details, "abbas_GSE11058") if abbas is not None else ""}
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--no-svr", action="store_true", help="skip the nu-SVR baseline")
    parser.add_argument("--write", metavar="PATH", help="also write the Markdown page there")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"shared datasets not found at {DATA} (set FASTDECONV_DATA)", file=sys.stderr)
        return 1
    table, details = run(args.datasets, with_svr=not args.no_svr)
    with pd.option_context("display.width", 140, "display.max_colwidth", 50):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print()
    for name in args.datasets:
        row = table[(table.dataset == name) & (table.method == "fastdeconv default")].iloc[0]
        print(f"{name}: default r {row.pearson_r:.3f}, RMSE {row.rmse:.3f} -> "
              f"{target_text(name, row.pearson_r, row.rmse)}")
    if args.write:
        Path(args.write).write_text(page(table, details), encoding="utf-8")
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
