"""Accuracy, speed and memory of reference-free LinSeed on the shared real datasets.

Runs :func:`fastdeconv.reference_free.linseed` with the R package's README settings
(top 10000 genes, 100 permutations, p < 0.01) on GSE19830 (k = 3) and
GSE11058 (k = 4), with the automatic k and with the true k, matches the
components to the true types (Hungarian, :func:`fastdeconv.metrics.evaluate`
with ``match="best"``) and prints overall and per-type Pearson r and RMSE, the
time of each stage (median of ``--repeats`` warm runs) and the peak memory
(tracemalloc: arrays allocated by the run; ru_maxrss: the whole process).

It also reports what limits the accuracy: the spread over seeds 0..``--seeds``-1
(the permutation filter is at its resolution limit with 100 permutations), the
unweighted proportions fit (``weighting="none"``), and, from each dataset's
measured pure profiles (``reference.tsv.gz``; used for these diagnostics only,
never by LinSeed), three yardsticks: reference-based NNLS, LinSeed's
proportions step given the corners of the designed proportions, and given the
"marker corners" (the mean row-normalised profile of the 50 genes most specific
to each type by the reference: where the data's own corners are).  Two checks
with the truth follow: the share of significant genes outside the simplex of the
designed proportions (the premise of any corner search), and how much of the
error one factor per component removes.  A synthetic
check (:func:`fastdeconv.simulate.synthetic`, where the designed proportions
are the data's corners) closes the report.

Usage::

    python benchmarks/accuracy_linseed.py [--data ../shared/data] [--repeats 5] [--seed 0]
        [--seeds 10] [--top-genes-scan] [--hinge-scan]
        [--figure docs/_static/linseed_gse19830.png]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd


from fastdeconv.io import read_dataset
from fastdeconv.reference_free import _proportions, linseed
from fastdeconv.fractions import held_out_cell_fractions, mixture_designs
from fastdeconv.metrics import evaluate
from fastdeconv.simulate import synthetic
from fastdeconv.solvers import nnls

DATASETS = {"shenorr_GSE19830": 3, "abbas_GSE11058": 4}
# the R package (ctlab/LinSeed) on this machine, README settings, true k (from the issue)
R_PACKAGE = {
    "shenorr_GSE19830": {"pearson_r": 0.853, "rmse": 0.121, "seconds": 218.0, "peak_gb": 4.8},
    "abbas_GSE11058": {"pearson_r": 0.914, "rmse": 0.091, "seconds": 3.8, "peak_gb": None},
}


def _r(estimate, truth):
    return evaluate(estimate, truth, match="best").overall["pearson_r"]


def seed_spread(mix, truth, k, seeds):
    """Overall r of the defaults (true k) for seeds 0..seeds-1."""
    rs = np.array([_r(linseed(mix, k, seed=s).proportions, truth) for s in range(seeds)])
    print(f"seeds 0-{seeds - 1}: r median {np.median(rs):.3f}, min {rs.min():.3f}, "
          f"max {rs.max():.3f} ({np.round(rs, 3).tolist()})")
    return rs


def _proportions_from(corners, res, mix):
    """LinSeed's proportions step (default weighting) on the given corners (k x samples)."""
    G = mix.loc[res.genes.index].to_numpy(dtype=np.float64)
    keep = np.flatnonzero(res.genes["significant"].to_numpy())
    P = _proportions(corners / corners.sum(axis=1, keepdims=True), G, keep, None)[0]
    return pd.DataFrame(P.T, index=mix.columns)


def yardsticks(data, res, n_markers=50):
    """Accuracy with information LinSeed does not have (the measured pure profiles)."""
    mix, truth, ref = data["mixture"], data["truth"], data.get("reference")
    if ref is None:
        return
    ref = ref.loc[mix.index]
    X = mix.to_numpy() / mix.to_numpy().sum(axis=1, keepdims=True)
    coef = nnls(ref.to_numpy(), mix.to_numpy())
    nnls_r = _r(pd.DataFrame((coef / coef.sum(0)).T, index=mix.columns), truth.T)
    designed = _r(_proportions_from(truth.to_numpy(), res, mix), truth.T)
    corners = []
    for t in truth.index:
        specific = ref[t] / ref.drop(columns=t).max(axis=1).clip(lower=1e-12)
        corners.append(X[np.argsort(-specific.to_numpy(), kind="stable")[:n_markers]].mean(axis=0))
    marker = _r(_proportions_from(np.array(corners), res, mix), truth.T)
    print(f"yardsticks (use the measured pure profiles): reference NNLS r = {nnls_r:.3f}; "
          f"LinSeed's proportions step with the designed corners r = {designed:.3f}, "
          f"with the marker corners ({n_markers} most specific genes per type) r = {marker:.3f}")


def premise_check(data, res):
    """Do the significant genes lie inside the simplex of the designed proportions?

    LinSeed finds the corners of the simplex that encloses the row-normalised
    genes.  If the data followed the linear mixing model with the designed
    proportions, genes would lie inside that simplex up to noise.  Prints the
    share of significant genes with a negative barycentric coordinate (least
    squares in sample space) and the 5% quantile of the smallest coordinate,
    once with every sample and once with one replicate per design: noise would
    make the replicate-averaged view (every sample) less outside, by about
    ``sqrt(replicates)``; a systematic departure stays.
    """
    mix, truth = data["mixture"], data["truth"]
    genes = res.genes.index[res.genes["significant"]]
    X = mix.loc[genes].to_numpy(dtype=np.float64)
    D = truth[mix.columns].to_numpy(dtype=np.float64)
    design = pd.Series(mixture_designs(truth.T).to_numpy())
    first = design.drop_duplicates().index.to_numpy()  # one replicate per design

    def outside(cols):
        Xn = X[:, cols] / X[:, cols].sum(axis=1, keepdims=True)
        Dn = D[:, cols] / D[:, cols].sum(axis=1, keepdims=True)
        A = np.vstack([Dn.T, np.ones(len(Dn))])
        bary = np.linalg.lstsq(A, np.vstack([Xn.T, np.ones(len(Xn))]), rcond=None)[0].T
        low = bary.min(axis=1)
        return (low < 0).mean(), np.quantile(low, 0.05)

    share, q5 = outside(np.arange(mix.shape[1]))
    share1, q51 = outside(first)
    print(f"premise check (uses the truth): {share:.1%} of the {len(genes)} significant genes lie "
          f"outside the simplex of the designed proportions (5% quantile of the smallest "
          f"barycentric coordinate {q5:.3f}; one replicate per design: {share1:.1%}, {q51:.3f})")


def calibration_check(data, res):
    """How much of LinSeed's error is one factor per component (uses the truth).

    The factors are fitted by :func:`fastdeconv.fractions.fit_rna_content` on all
    designs but one and applied to the held-out design; fitted to every sample
    they are an oracle.
    """
    truth = data["truth"].T
    est = evaluate(res.proportions, truth, match="best").estimate  # named by the matched types
    held_out, oracle = held_out_cell_fractions(est, truth)
    cv = evaluate(held_out, truth).overall
    oracle = evaluate(oracle, truth).overall
    print(f"one factor per component calibrated on the other designs "
          f"(fastdeconv.fractions.fit_rna_content, uses the truth): "
          f"held-out r = {cv['pearson_r']:.3f}, RMSE = {cv['rmse']:.3f}; fitted to all samples "
          f"(oracle) r = {oracle['pearson_r']:.3f}")


def synthetic_check(seeds=3):
    """Synthetic counts (negative binomial) where the designed corners are the data's."""
    print("\n== synthetic(n_genes=3000, n_samples=30), negative-binomial counts, true k")
    for k in (3, 4):
        for weighting in ("variance", "none"):
            rs = []
            for s in range(seeds):
                data = synthetic(n_genes=3000, n_types=k, n_samples=30, seed=s)
                rs.append(_r(linseed(data.bulk, k, seed=s, weighting=weighting).proportions,
                             data.proportions))
            print(f"k = {k}, weighting={weighting!r}: r over seeds 0-{seeds - 1} = "
                  f"{np.round(rs, 4).tolist()}")


def top_genes_scan(data_dir, values=(1000, 2000, 3000, 5000, 10000)):
    """Overall r against ``top_genes`` on GSE19830 and on pseudo-bulk of the Hao PBMC cells."""
    from fastdeconv.simulate import pseudobulk

    print("\n== top_genes scan (true k; pseudo-bulk: 30 samples of 500 cells, RNA fractions)")
    cases = []
    folder = Path(data_dir) / "shenorr_GSE19830"
    if folder.is_dir():
        data = read_dataset(folder)
        cases.append(("GSE19830", data["mixture"], data["truth"].T, 3, 0))
    folder = Path(data_dir) / "hao_pbmc_sc_subset"
    if folder.is_dir():
        cells = read_dataset(folder)
        labels = cells["cell_labels"]
        for types in (["Monocytes", "T cells CD8", "B cells"],
                      ["Monocytes", "T cells CD4 conv", "NK cells", "B cells"]):
            chosen = labels.isin(types).to_numpy()
            for s in (0, 1):
                pb = pseudobulk(cells["counts"].loc[:, chosen], labels[chosen].to_numpy(), 30,
                                cells_per_sample=500, seed=s)
                cases.append((f"PBMC {len(types)} types, seed {s}", pb.bulk, pb.rna_fractions,
                              len(types), s))
    for name, bulk, truth, k, s in cases:
        rs = []
        for top in values:
            rs.append(_r(linseed(bulk, k, top_genes=top, seed=s).proportions, truth))
        print(f"{name}: " + ", ".join(f"{t}: {r:.3f}" for t, r in zip(values, rs)))


def noise_hinge_weight(bulk, res, k):
    """The hinge weight a Gaussian noise model implies: ``1 / (2 sigma_b^2)``.

    Read as a likelihood, the squared hinge ``w * a^2`` is Gaussian noise of
    variance ``1 / (2 w)`` in barycentric units.  The noise per dimension is
    estimated from the significant genes' residuals off the (k-1)-dimensional
    subspace (the dimensions the corner search discards hold only noise),
    ``sigma_y^2 = median ||residual||^2 / (m - k)``, and converted to
    barycentric units with the median height of the corners above the
    opposite facets of LinSeed's simplex.
    """
    from fastdeconv.reference_free import _project

    genes = res.genes.index[res.genes["significant"]]
    X = bulk.loc[genes].to_numpy(dtype=np.float64)
    X = X / X.sum(axis=1, keepdims=True)
    mu, V, Y = _project(X, k)
    residual = (X - mu) - Y @ V.T
    sigma2 = np.median((residual**2).sum(axis=1)) / max(X.shape[1] - k, 1)
    E = np.vstack([res.corner_coordinates.to_numpy().T, np.ones(k)])
    heights = 1.0 / np.linalg.norm(np.linalg.inv(E)[:, : k - 1], axis=1)
    return 1.0 / (2.0 * sigma2 / np.median(heights) ** 2)


def hinge_scan(data_dir, values=(1.0, 10.0, 100.0, 1000.0, 1e4, 1e5), seeds=(0, 1, 2)):
    """Overall r against ``hinge_weight`` on both datasets and on synthetic counts."""
    print("\n== hinge_weight scan (true k; GSE11058 and synthetic over seeds "
          f"{list(seeds)}, GSE19830 seed {seeds[0]}: it does not depend on the seed)")
    cases = []
    for name, k in DATASETS.items():
        folder = Path(data_dir) / name
        if folder.is_dir():
            data = read_dataset(folder)
            runs = seeds if name == "abbas_GSE11058" else seeds[:1]
            cases.append((name, k, [(data["mixture"], data["truth"].T, s) for s in runs]))
    for k in (3, 4):
        sets = [synthetic(n_genes=3000, n_types=k, n_samples=30, seed=s) for s in seeds]
        cases.append((f"synthetic k={k}", k, [(d.bulk, d.proportions, s)
                                              for d, s in zip(sets, seeds, strict=True)]))
    parts = []
    for name, k, runs in cases:
        bulk = runs[0][0]
        parts.append(f"{name} {noise_hinge_weight(bulk, linseed(bulk, k, seed=runs[0][2]), k):.3g}")
    print("noise-model hinge_weight 1 / (2 sigma^2), sigma the noise in barycentric units: "
          + "; ".join(parts))
    for hw in values:
        parts = []
        for name, k, runs in cases:
            rs = [_r(linseed(bulk, k, seed=s, hinge_weight=hw).proportions, truth)
                  for bulk, truth, s in runs]
            parts.append(f"{name} {np.round(rs, 3).tolist()}")
        print(f"hinge_weight {hw:g}: " + "; ".join(parts))


def run(data_dir, repeats, seed, figure=None, seeds=10):
    rows = []
    for name, k_true in DATASETS.items():
        folder = Path(data_dir) / name
        if not folder.is_dir():
            print(f"skip {name}: {folder} not found", file=sys.stderr)
            continue
        data = read_dataset(folder)
        mix, truth = data["mixture"], data["truth"].T
        linseed(mix, k_true, seed=seed)  # warm: Numba kernels loaded, first-call costs paid
        auto = linseed(mix, "auto", seed=seed)
        timings = []
        for _ in range(repeats):
            res = linseed(mix, k_true, seed=seed)
            timings.append(res.info["timings"])
        tracemalloc.start()
        t0 = time.perf_counter()
        res = linseed(mix, k_true, seed=seed)
        wall = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        ev = evaluate(res.proportions, truth, match="best")
        ev_auto = evaluate(auto.proportions, truth, match="best") if auto.n_types == k_true else None
        sums = res.proportions.sum(axis=1)
        print(f"\n== {name}: {mix.shape[0]} genes x {mix.shape[1]} samples, true k = {k_true}")
        d = auto.k_diagnostics
        print(f"automatic k = {d.k} (variance rule {d.k_variance}, noise subspace {d.k_noise}; "
              f"cumulative explained variance {np.round(d.explained[:6], 4).tolist()})")
        print(f"true k: overall r = {ev.overall['pearson_r']:.4f}, RMSE = {ev.overall['rmse']:.4f}, "
              f"mean per-type r = {ev.per_type['pearson_r'].mean():.4f}; proportions sum to "
              f"{sums.min():.15f}..{sums.max():.15f}")
        if ev_auto is not None:
            print(f"auto k: overall r = {ev_auto.overall['pearson_r']:.4f}, "
                  f"RMSE = {ev_auto.overall['rmse']:.4f}")
        print(ev.per_type[["pearson_r", "rmse"]].round(4).to_string())
        print(f"significant genes: {int(res.genes['significant'].sum())} of {len(res.genes)}; "
              f"matching {ev.matching}; proportions-fit weights mean^-"
              f"{res.info['variance_power']:.2f}")
        plain = linseed(mix, k_true, seed=seed, weighting="none")
        print(f"unweighted proportions fit (weighting='none'): "
              f"r = {_r(plain.proportions, truth):.4f}")
        if seeds > 1:
            seed_spread(mix, truth, k_true, seeds)
        yardsticks(data, res)
        premise_check(data, res)
        calibration_check(data, res)
        stages = {s: statistics.median(t[s] for t in timings) for s in timings[0]}
        print("median time per stage (s): "
              + ", ".join(f"{s} {v:.3f}" for s, v in stages.items()))
        print(f"peak traced memory of one run: {peak / 2**20:.0f} MiB (wall {wall:.2f} s)")
        ref = R_PACKAGE[name]
        print(f"R package: r = {ref['pearson_r']}, RMSE = {ref['rmse']}, {ref['seconds']} s "
              f"-> speed-up {ref['seconds'] / stages['total']:.0f}x")
        if figure and name == "shenorr_GSE19830":
            auto.plot(figure)
            print(f"wrote the diagnostic figure to {figure}")
        rows.append((name, ev.overall["pearson_r"], ev.overall["rmse"], d.k, stages["total"], peak))
    synthetic_check()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nprocess peak resident memory (imports, data and all runs): {rss:.0f} MiB")
    return rows


def main(argv=None):
    here = Path(__file__).resolve().parent
    default = os.environ.get("FASTDECONV_DATA", str(here.parent.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=default, help="folder of the shared datasets")
    parser.add_argument("--repeats", type=int, default=5, help="warm runs timed per dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=10,
                        help="report the spread of r over seeds 0..SEEDS-1 (1: skip)")
    parser.add_argument("--top-genes-scan", action="store_true",
                        help="also scan top_genes on GSE19830 and PBMC pseudo-bulk (slow)")
    parser.add_argument("--hinge-scan", action="store_true",
                        help="also scan hinge_weight on both datasets and synthetic counts")
    parser.add_argument("--figure", help="save the GSE19830 diagnostic figure (spectrum, simplex, "
                        "significance) to this file, e.g. docs/_static/linseed_gse19830.png")
    args = parser.parse_args(argv)
    run(args.data, args.repeats, args.seed, args.figure, args.seeds)
    if args.top_genes_scan:
        top_genes_scan(args.data)
    if args.hinge_scan:
        hinge_scan(args.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
