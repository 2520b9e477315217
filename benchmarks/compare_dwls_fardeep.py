"""DWLS and FARDEEP beside NNLS: accuracy on the shared real datasets, and speed.

Accuracy: :func:`fastdeconv.deconvolve` with ``method`` in nnls / dwls /
fardeep (``robust=None`` for nnls, so that the three minimise their own
losses; no background), and the library's default (``"default"``: NNLS with
its default Huber loss and background level) for context, each on

* ``shenorr_GSE19830`` and ``abbas_GSE11058`` with their ``reference.tsv.gz``,
  on all common genes (``genes="all"``) and on the 100-marker selection
  (``genes="markers"``, :func:`fastdeconv.regression.select_marker_genes`);
* ``newman_GSE65133`` with LM22 (its own genes), scored on the 9 truth rows
  after renormalising those 9 estimates (``evaluate(..., renormalize=True)``).

Scores: pooled Pearson r and RMSE over all (cell type, sample) entries
(:func:`fastdeconv.metrics.evaluate`).

Speed: a synthetic batch of 500 genes x 20 cell types x 2000 samples
(:func:`fastdeconv.simulate.synthetic`), the method's fit on the
pipeline's problem (median of ``--repeats`` runs after a warm-up): wall time
with 1 thread and with all threads, and the CPU time of the 1-thread run (a
shared machine's load inflates wall times, less so CPU times).

Run from the repository root::

    python benchmarks/compare_dwls_fardeep.py            # accuracy and speed
    python benchmarks/compare_dwls_fardeep.py --no-speed
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

import fastdeconv
import fastdeconv.methods.dwls  # noqa: F401  (registers "dwls" until the registry lists it)
import fastdeconv.methods.fardeep  # noqa: F401
from fastdeconv.io import read_dataset
from fastdeconv.methods import REGRESSION
from fastdeconv.methods._problem import RegressionProblem
from fastdeconv.metrics import evaluate

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASTDECONV_DATA", ROOT.parent / "shared" / "data"))
METHODS = ("nnls", "dwls", "fardeep")
COLUMNS = METHODS + ("default",)
CASES = (
    ("shenorr_GSE19830", "all", False),
    ("shenorr_GSE19830", "markers", False),
    ("abbas_GSE11058", "all", False),
    ("abbas_GSE11058", "markers", False),
    ("newman_GSE65133", "auto", True),
)


def accuracy():
    print(f"{'dataset':<18} {'genes':<8} " + " ".join(f"{m:>16}" for m in COLUMNS))
    print(f"{'':<18} {'':<8} " + " ".join(f"{'r / RMSE / s':>16}" for _ in COLUMNS))
    for name, genes, renormalize in CASES:
        d = read_dataset(DATA / name)
        bulk, reference, truth = d["mixture"], d["reference"], d["truth"].T
        cells = []
        for method in COLUMNS:
            options = {} if method == "default" else dict(method=method, robust=None,
                                                          background=False)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = fastdeconv.deconvolve(bulk, reference, genes=genes, progress=False,
                                            **options)
            seconds = time.perf_counter() - t0
            ev = evaluate(res, truth, renormalize=renormalize)
            cells.append(f"{ev.overall['pearson_r']:.3f}/{ev.overall['rmse']:.3f}/{seconds:4.1f}")
        print(f"{name:<18} {genes:<8} " + " ".join(f"{c:>16}" for c in cells))


def speed(repeats):
    from fastdeconv.simulate import synthetic

    d = synthetic(n_genes=500, n_types=20, n_samples=2000, seed=0)
    S = np.ascontiguousarray(d.signature.to_numpy())
    B = np.ascontiguousarray(d.bulk.loc[d.signature.index].to_numpy())
    print(f"\nspeed: {S.shape[0]} genes x {S.shape[1]} types x {B.shape[1]} samples "
          f"(median of {repeats})")
    for method in METHODS:
        record = REGRESSION.get(method)
        options = record.resolve_options()
        line = []
        for n_jobs in (1, None):
            problem = RegressionProblem(S, B, n_jobs=n_jobs, options=options)
            record.fit(RegressionProblem(S, B[:, :2], n_jobs=1, options=options))  # compile
            times, cpu = [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                record.fit(problem)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            if n_jobs == 1:
                line.append(f"1 thread {np.median(times):7.2f} s (CPU {np.median(cpu):6.2f} s)")
            else:
                line.append(f"all threads {np.median(times):7.2f} s")
        print(f"  {method:<8} " + "   ".join(line))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.no_accuracy:
        accuracy()
    if not args.no_speed:
        speed(args.repeats)


if __name__ == "__main__":
    main()
