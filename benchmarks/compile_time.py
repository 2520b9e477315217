"""Cold-start compilation time: what a user's very first run of each pipeline costs.

Each run starts a fresh Python process with an empty ``NUMBA_CACHE_DIR`` (so
every Numba kernel it calls is compiled, none loaded from disk), imports
fastdeconv and makes the first call of each pipeline, timing every stage
separately:

1. ``import``            -- ``import fastdeconv`` (and NumPy/pandas);
2. ``nnls``              -- ``fastdeconv.nnls`` on a small batch;
3. ``simplex``           -- ``fastdeconv.simplex_lstsq`` on the same batch;
4. ``huber deconvolve``  -- ``fastdeconv.deconvolve`` with its defaults (Huber loss, simplex);
5. ``linseed``           -- ``fastdeconv.linseed`` with a fixed k;
6. ``build_signature``   -- ``fastdeconv.build_signature`` on dense counts (as the CLI
   reads a table).

Two scenarios:

* ``sequential``: all stages one after the other in one process; a stage pays only
  for the kernels the earlier stages did not compile (the total is the cost of
  compiling everything);
* ``isolated``: each pipeline alone in its own fresh process with its own empty
  cache -- what a user meets on the first ``fastdeconv deconvolve`` (or
  ``linseed``, or ``signature``) ever.

A ``warm`` line repeats the sequential run with the cache the first run filled
(loading instead of compiling).  Reports the median of ``--runs`` runs (default 3).

Run from the project root::

    python benchmarks/compile_time.py            # both scenarios, 3 runs each
    python benchmarks/compile_time.py --runs 1 --scenario isolated
    python benchmarks/compile_time.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

STAGES = ("import", "nnls", "simplex", "huber deconvolve", "linseed", "build_signature")

# One child script; STAGES_TO_RUN selects which stages it runs after the import.
CHILD = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import numpy as np
import pandas as pd
import fastdeconv
from fastdeconv.simulate import synthetic
times = {"import": time.perf_counter() - t0}
cpu = {"import": time.process_time() - c0}
want = set(sys.argv[1].split(","))

data = synthetic(n_genes=1000, n_types=5, n_samples=40, seed=0)
S = np.ascontiguousarray(data.signature.to_numpy())
B = np.ascontiguousarray(data.bulk.loc[data.signature.index].to_numpy())

def stage(name, call):
    if name not in want:
        return
    t, c = time.perf_counter(), time.process_time()
    call()
    times[name] = time.perf_counter() - t
    cpu[name] = time.process_time() - c

stage("nnls", lambda: fastdeconv.nnls(S, B))
stage("simplex", lambda: fastdeconv.simplex_lstsq(S, B))
stage("huber deconvolve", lambda: fastdeconv.deconvolve(data.bulk, data.signature))
lin = synthetic(n_genes=1500, n_types=3, n_samples=20, seed=1).bulk
stage("linseed", lambda: fastdeconv.linseed(lin, 3, n_permutations=20, pvalue=0.05))
rng = np.random.default_rng(0)
n_genes, n_types, per_type = 300, 4, 40
labels = np.repeat([f"type{t}" for t in range(n_types)], per_type)
mean = rng.lognormal(0.0, 1.0, size=(n_genes, n_types))
mean[rng.integers(0, n_genes, 60), rng.integers(0, n_types, 60)] *= 20.0
counts = rng.poisson(mean[:, np.repeat(np.arange(n_types), per_type)]).astype(np.float64)
cells = [f"c{i}" for i in range(counts.shape[1])]
counts = pd.DataFrame(counts, index=[f"g{i}" for i in range(n_genes)], columns=cells)
labels = pd.Series(labels, index=cells)
stage("build_signature", lambda: fastdeconv.build_signature(counts, labels))
print("TIMES " + json.dumps({"wall": times, "cpu": cpu}))
"""


def run_child(stages, cache_dir):
    """Run the child script in a fresh process with ``NUMBA_CACHE_DIR=cache_dir``.

    Returns ``{"wall": {stage: seconds}, "cpu": {stage: seconds}}``: elapsed
    time, and the process's CPU time (compilation is single-threaded, so on
    an idle machine the two agree; on a busy one the CPU time is the steadier).
    """
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, ",".join(stages)],
        env=env, cwd=cache_dir, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("TIMES ")][-1]
    return json.loads(line[len("TIMES "):])


def sequential(runs):
    """Cold and warm times of every stage in one process, ``runs`` times."""
    cold, warm = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(run_child(STAGES[1:], cache))
            warm.append(run_child(STAGES[1:], cache))
    return cold, warm


def isolated(runs):
    """Each pipeline alone in a fresh process with an empty cache, ``runs`` times."""
    results = []
    for _ in range(runs):
        row = {"wall": {}, "cpu": {}}
        for name in STAGES[1:]:
            with tempfile.TemporaryDirectory() as cache:
                t = run_child([name], cache)
            for clock in row:
                row[clock][name] = t[clock][name]
                row[clock].setdefault("import", t[clock]["import"])
        results.append(row)
    return results


def medians(rows, clock):
    """Median over the runs of each stage's time (and of the first-call total, import excluded)."""
    keys = [s for s in STAGES if s in rows[0][clock]]
    med = {k: float(np.median([r[clock][k] for r in rows])) for k in keys}
    med["total (first calls)"] = float(
        np.median([sum(r[clock][k] for k in keys if k != "import") for r in rows])
    )
    return med


def show(title, rows):
    wall, cpu = medians(rows, "wall"), medians(rows, "cpu")
    print(f"{title}\n  {'stage':<20} {'elapsed':>8} {'CPU':>8}")
    for key in wall:
        print(f"  {key:<20} {wall[key]:7.2f}s {cpu[key]:7.2f}s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median reported)")
    parser.add_argument("--scenario", choices=["both", "sequential", "isolated"], default="both")
    parser.add_argument("--json", metavar="FILE", help="also write the raw times there")
    args = parser.parse_args(argv)
    report = {}
    if args.scenario in ("both", "sequential"):
        cold, warm = sequential(args.runs)
        report["sequential_cold"], report["sequential_warm"] = cold, warm
        show(f"sequential, empty cache (median of {args.runs})", cold)
        show(f"sequential, warm cache (median of {args.runs})", warm)
    if args.scenario in ("both", "isolated"):
        rows = isolated(args.runs)
        report["isolated_cold"] = rows
        show(f"isolated: each pipeline alone, empty cache (median of {args.runs})", rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
