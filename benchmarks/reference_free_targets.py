"""The issue-14 targets on the given designed mixtures: accuracy, time, seed stability, fixed cost.

For each given dataset (GSE19830, GSE11058) this measures, side by side:

* ``fastdeconv linseed --cell-types auto`` as a user runs it (a fresh process:
  Python start, imports, reading, the run, writing; median of ``--repeats``
  wall-clock runs) and the Pearson r of its proportions against the designed
  ones (Hungarian matching);
* the same answer for seeds 0-9: the largest difference of any proportion
  from seed 0's, and the stability score the run reports;
* the fixed cost: in a fresh process, ``import fastdeconv`` then the first
  :func:`fastdeconv.linseed` call, and a second call;
* every method of the pipeline (``--method``) at the defaults, in-process.

The R package (LinSeed 0.99.3) cannot be installed here (CRAN is not
reachable from this machine); its r and seconds are the issue's, measured on
the same data with its README settings, and the targets are computed from
them: r at least R's, time within max(2 s, R's / 20).

Usage::

    python benchmarks/reference_free_targets.py [--data ../shared/data] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from fastdeconv.io import read_dataset
from fastdeconv.metrics import evaluate
from fastdeconv.reference_free import METHODS, linseed

#: the issue's table: R LinSeed 0.99.3 on the same data (r, seconds)
R_PACKAGE = {"shenorr_GSE19830": (0.853, 218.0), "abbas_GSE11058": (0.914, 3.8)}
HELD_BACK = {"rat brain cultures": (0.406, 188.0), "purified immune RNA mixes": (0.823, 122.0)}

FIRST_CALL = """
import time
t0 = time.perf_counter()
import fastdeconv
t1 = time.perf_counter()
import pandas as pd
mix = pd.read_csv({path!r}, sep="\\t", index_col=0)
t2 = time.perf_counter()
fastdeconv.linseed(mix, "auto", progress=False)
t3 = time.perf_counter()
fastdeconv.linseed(mix, "auto", progress=False)
t4 = time.perf_counter()
print(t1 - t0, t3 - t2, t4 - t3)
"""


def _r(estimate, truth):
    return evaluate(estimate, truth, match="best").overall["pearson_r"]


def cli_runs(path, repeats):
    """Wall seconds of the CLI (fresh processes) and its proportions."""
    exe = Path(sys.executable).with_name("fastdeconv")
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "p.tsv")
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run([str(exe), "linseed", "--bulk", str(path), "--cell-types", "auto",
                            "--output", out, "-q"], check=True)
            times.append(time.perf_counter() - t)
        return times, pd.read_csv(out, sep="\t", index_col=0)


def first_call(path, repeats):
    rows = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", FIRST_CALL.format(path=str(path))],
                              check=True, capture_output=True, text=True)
        rows.append([float(x) for x in done.stdout.split()])
    return np.median(np.array(rows), axis=0)


def run(data_dir, repeats):
    rows = []
    for name, (r_R, s_R) in R_PACKAGE.items():
        d = read_dataset(Path(data_dir) / name)
        mix, truth = d["mixture"], d["truth"].T
        path = Path(data_dir) / name / "mixture.tsv.gz"
        times, P = cli_runs(path, repeats)
        r_cli = _r(P, truth)
        seeds = [linseed(mix, "auto", seed=s, progress=False) for s in range(10)]
        ref = seeds[0].proportions.to_numpy()
        spread = max(float(np.abs(res.proportions.to_numpy() - ref).max()) for res in seeds)
        imp, first, second = first_call(path, repeats)
        budget = max(2.0, s_R / 20)
        rows.append({"dataset": name, "cli r": r_cli, "R r": r_R,
                     "cli median s": statistics.median(times), "R s": s_R, "budget s": budget,
                     "within budget": statistics.median(times) <= budget,
                     "seeds 0-9 max diff": spread, "stability": seeds[0].info["stability"],
                     "import s": imp, "first call s": first, "second call s": second})
        methods = {}
        for method in METHODS:
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = linseed(mix, "auto", method=method, progress=False)
            methods[method] = (round(_r(res.proportions, truth), 3),
                               round(time.perf_counter() - t, 2), res.n_types)
        print(f"{name}: methods (r, s, k): {methods}", flush=True)
    table = pd.DataFrame(rows).set_index("dataset")
    print(table.round(3).T.to_string())
    print("held back (not in ../shared/data; the issue's figures for R, the budget):",
          {k: (r, max(2.0, s / 20)) for k, (r, s) in HELD_BACK.items()})
    return table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    run(a.data, a.repeats)


if __name__ == "__main__":
    main()
