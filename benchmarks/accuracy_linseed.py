"""Accuracy, speed and memory of reference-free LinSeed on the shared real datasets.

Runs :func:`fastdeconv.linseed.linseed` with the R package's README settings
(top 10000 genes, 100 permutations, p < 0.01) on GSE19830 (k = 3) and
GSE11058 (k = 4), with the automatic k and with the true k, matches the
components to the true types (Hungarian, :func:`fastdeconv.metrics.evaluate`
with ``match="best"``) and prints overall and per-type Pearson r and RMSE, the
time of each stage (median of ``--repeats`` warm runs) and the peak memory
(tracemalloc: arrays allocated by the run; ru_maxrss: the whole process).

Usage::

    python benchmarks/accuracy_linseed.py [--data ../shared/data] [--repeats 5] [--seed 0]
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

from fastdeconv.io import read_dataset
from fastdeconv.linseed import linseed
from fastdeconv.metrics import evaluate

DATASETS = {"shenorr_GSE19830": 3, "abbas_GSE11058": 4}
# the R package (ctlab/LinSeed) on this machine, README settings, true k (from the issue)
R_PACKAGE = {
    "shenorr_GSE19830": {"pearson_r": 0.853, "rmse": 0.121, "seconds": 218.0, "peak_gb": 4.8},
    "abbas_GSE11058": {"pearson_r": 0.914, "rmse": 0.091, "seconds": 3.8, "peak_gb": None},
}


def run(data_dir, repeats, seed, figure=None):
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
              f"matching {ev.matching}")
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
    parser.add_argument("--figure", help="save the GSE19830 diagnostic figure (spectrum, simplex, "
                        "significance) to this file, e.g. docs/_static/linseed_gse19830.png")
    args = parser.parse_args(argv)
    run(args.data, args.repeats, args.seed, args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
