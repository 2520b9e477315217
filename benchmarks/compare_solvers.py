"""Side-by-side speed comparison of fastdeconv's solvers with SciPy and cvxpy.

Run from the project root:

    python benchmarks/compare_solvers.py            # all sizes (needs ~10 GB RAM, a few minutes)
    python benchmarks/compare_solvers.py --quick    # small sizes only

For each size it times, in the same process and run:

* fastdeconv ``nnls`` and ``simplex_lstsq`` on all samples (median of repeats);
* a ``scipy.optimize.nnls`` loop (one call per sample) on a subset of the
  samples, scaled to all of them (the per-sample cost of the loop is constant);
* cvxpy with Clarabel on one batched problem (all subset samples in one matrix
  variable, QR-reduced), the fastest formulation that is also exact (OSQP, the
  default, is not), likewise scaled;

and prints medians and ratios, plus the agreement with SciPy on the subset.  It
also measures a cold start (fresh process importing fastdeconv and solving a
small problem, warm compilation cache) and the first-ever compilation (a fresh
process with an empty cache directory).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks.common import make_problem  # noqa: E402

import fastdeconv  # noqa: E402

FULL = [(5000, 20, 100_000), (500, 10, 100_000), (20_000, 30, 1000)]
QUICK = [(5000, 20, 10_000), (500, 10, 10_000), (20_000, 30, 1000)]


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def scipy_loop(S, B):
    from scipy.optimize import nnls

    return np.column_stack([nnls(S, B[:, j])[0] for j in range(B.shape[1])])


def cvxpy_batched(S, B, simplex):
    import cvxpy as cp

    Q, R = np.linalg.qr(S)
    X = cp.Variable((S.shape[1], B.shape[1]))
    cons = [X >= 0]
    if simplex:
        cons.append(cp.sum(X, axis=0) == 1)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(R @ X - Q.T @ B)), cons)
    prob.solve(solver="CLARABEL")
    return X.value


def fresh_process_seconds(code, env=None):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - t0


COLD = (
    "import numpy as np, fastdeconv\n"
    "S = np.random.default_rng(0).lognormal(size=(200, 8))\n"
    "fastdeconv.nnls(S, S[:, :3]); fastdeconv.simplex_lstsq(S, S[:, :3])\n"
)


MEMORY = """
import sys, numpy as np, fastdeconv
sys.path.insert(0, {bench!r})
from benchmarks.common import make_problem
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
S, B = make_problem({n}, {k}, {m})
fastdeconv.{solver}(S, B[:, :64])
with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
    f.write("5")
base = status("VmRSS")
X = fastdeconv.{solver}(S, B)
peak = status("VmHWM")
print(base, peak, B.nbytes, X.nbytes)
"""


def peak_memory(n, k, m, solver):
    """RSS of a fresh process holding the data, its peak during one solve, and the data sizes.

    Linux only: the peak (VmHWM) is reset through /proc/self/clear_refs after the
    data are built, so the temporaries of data generation do not count.
    """
    code = MEMORY.format(bench=str(Path(__file__).resolve().parent), n=n, k=k, m=m, solver=solver)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return [int(v) for v in out.stdout.split()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--repeat", type=int, default=5, help="repeats for fastdeconv timings")
    parser.add_argument("--scipy-samples", type=int, default=1000)
    parser.add_argument("--cvxpy-samples", type=int, default=100)
    args = parser.parse_args(argv)

    print(f"fastdeconv {fastdeconv.__version__}, numpy {np.__version__}, cores {os.cpu_count()}")
    rows = []
    for n, k, m in QUICK if args.quick else FULL:
        S, B = make_problem(n, k, m)
        fastdeconv.nnls(S, B[:, :64])
        fastdeconv.simplex_lstsq(S, B[:, :64])
        t_nnls = median_time(lambda: fastdeconv.nnls(S, B), args.repeat)
        t_simplex = median_time(lambda: fastdeconv.simplex_lstsq(S, B), args.repeat)

        ms = min(m, args.scipy_samples)
        sub = np.ascontiguousarray(B[:, :ms])
        t0 = time.perf_counter()
        X_scipy = scipy_loop(S, sub)
        t_scipy = (time.perf_counter() - t0) * m / ms
        err = np.abs(fastdeconv.nnls(S, sub) - X_scipy).max() / max(np.abs(X_scipy).max(), 1e-300)

        mc = min(m, args.cvxpy_samples)
        subc = np.ascontiguousarray(B[:, :mc])
        t0 = time.perf_counter()
        cvxpy_batched(S, subc, simplex=False)
        t_cvx = (time.perf_counter() - t0) * m / mc
        t0 = time.perf_counter()
        cvxpy_batched(S, subc, simplex=True)
        t_cvx_s = (time.perf_counter() - t0) * m / mc
        rows.append((n, k, m, t_nnls, t_simplex, t_scipy, t_cvx, t_cvx_s, err))
        del S, B, sub, subc

    head = (
        f"{'n x k x m':>20} {'nnls s':>8} {'simplex s':>9} {'scipy loop s':>12} "
        f"{'x scipy':>8} {'cvxpy nnls s':>12} {'x cvxpy':>8} {'cvxpy simpl s':>13} {'x cvxpy':>8} {'max rel diff':>12}"
    )
    print(head)
    for n, k, m, tn, ts, tsc, tc, tcs, err in rows:
        print(
            f"{f'{n}x{k}x{m}':>20} {tn:8.3f} {ts:9.3f} {tsc:12.1f} {tsc / tn:8.0f} "
            f"{tc:12.1f} {tc / tn:8.0f} {tcs:13.1f} {tcs / ts:8.0f} {err:12.1e}"
        )
    print("(scipy and cvxpy times are measured on a subset of samples and scaled to m)")

    n, k, m = (QUICK if args.quick else FULL)[0]
    for solver in ("nnls", "simplex_lstsq"):
        before, after, b_bytes, x_bytes = peak_memory(n, k, m, solver)
        print(
            f"memory {solver} {n}x{k}x{m}: process {before / 2**30:.2f} GiB with the data, peak "
            f"{after / 2**30:.2f} GiB during the solve (+{(after - before) / 2**20:.0f} MiB); "
            f"bulk {b_bytes / 2**30:.2f} GiB, result {x_bytes / 2**20:.0f} MiB"
        )
    warm = np.median([fresh_process_seconds(COLD) for _ in range(3)])
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        first = fresh_process_seconds(COLD, env=env)
    baseline = np.median([fresh_process_seconds("import numpy") for _ in range(3)])
    print(f"fresh process, import + first solves, warm cache: {warm:.2f} s (python + numpy alone {baseline:.2f} s)")
    print(f"fresh process, first-ever compilation (empty cache): {first:.1f} s")


if __name__ == "__main__":
    main()
