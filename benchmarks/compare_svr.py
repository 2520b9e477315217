"""CIBERSORT's nu-SVR: the library's exact kernel against scikit-learn's NuSVR, and accuracy.

Speed and agreement.  The same standardised inputs (CIBERSORT's: the signature
z-scored as one vector, each sample z-scored) go to

* ``fastdeconv``: :func:`fastdeconv.methods.svr.fit_nusvr` (the registered
  ``method="nusvr"``: the three nu values, CIBERSORT's choice by RMSE), with
  1 thread and with all threads;
* ``scikit-learn``: ``sklearn.svm.NuSVR(kernel="linear", C=1, nu=nu)`` for each
  nu and sample (libsvm, as e1071 and CIBERSORT.R run it; its default
  tolerance 1e-3 is e1071's), run in the peers' virtual environment by a
  subprocess (``--peer-python``; BLAS and OpenMP held to one thread), its
  weights ``coef_`` put through the same choice of nu.

Inputs: ``newman_GSE65133`` (20 PBMC samples) with LM22 (547 x 22; the 504
genes the mixture has), and a synthetic batch
(:func:`fastdeconv.simulate.synthetic`, 500 genes x 22 types x 2000 samples).
scikit-learn gets the first ``--sklearn-samples`` samples of the synthetic
batch (its time is reported per sample).  Times are medians of ``--repeats``
runs after a warm-up (compilation); the agreement is the largest difference
of the weights of any nu and of the proportions, at NuSVR's default tolerance
and (``--agreement`` samples) at ``tol=1e-9``, which is as close as libsvm
gets (its kernel cache holds single precision).  The library's own answers
are checked against cvxpy to 1e-9 in ``tests/test_svr.py``.

Accuracy: :func:`fastdeconv.deconvolve` with ``method="nusvr"`` on
``newman_GSE65133`` (LM22; the 9 truth rows against the like-named LM22
columns, those 9 estimates renormalised), ``shenorr_GSE19830`` and
``abbas_GSE11058`` (their ``reference.tsv.gz``), on all common genes (what
CIBERSORT uses) and on the pipeline's default genes; pooled Pearson r and RMSE
(:func:`fastdeconv.metrics.evaluate`).  One extra row shows ``C = 1 / n``:
libsvm's *documentation* writes the problem with bounds ``C / n``, its code
(and so e1071, CIBERSORT and scikit-learn) with bounds ``C``; a baseline
written from the documentation shrinks ``n`` times harder.

Run from the repository root::

    python benchmarks/compare_svr.py                         # everything
    python benchmarks/compare_svr.py --no-accuracy --sklearn-samples 100
    python benchmarks/compare_svr.py --peer-python none      # without scikit-learn
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import fastdeconv
import fastdeconv.methods.svr  # noqa: F401  (registers "nusvr" until the registry lists it)
from fastdeconv.io import read_dataset
from fastdeconv.methods._problem import RegressionProblem
from fastdeconv.methods.svr import NUSVR_OPTIONS, _choose, fit_nusvr
from fastdeconv.metrics import evaluate

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASTDECONV_DATA", ROOT.parent / "shared" / "data"))
PEER_PYTHON = "/work/peers-venv/bin/python"
NUS = NUSVR_OPTIONS["nu"]

#: what the peers' interpreter runs: every nu of every sample, timed as a whole
SKLEARN_SCRIPT = r"""
import sys, time
import numpy as np
from sklearn.svm import NuSVR
data = np.load(sys.argv[1])
X, Z, nus, C, tol, repeats = (data["X"], data["Z"], data["nus"], float(data["C"]),
                              float(data["tol"]), int(data["repeats"]))
W = np.empty((Z.shape[0], nus.size, X.shape[1]))
times = []
for rep in range(repeats):
    t0 = time.perf_counter()
    for j, z in enumerate(Z):
        for h, nu in enumerate(nus):
            W[j, h] = NuSVR(kernel="linear", C=C, nu=nu, tol=tol).fit(X, z).coef_.ravel()
    times.append(time.perf_counter() - t0)
import sklearn
np.savez(sys.argv[2], W=W, times=np.array(times), version=sklearn.__version__)
"""


def standardised(S, B):
    """CIBERSORT's inputs: the signature z-scored as one vector, each sample z-scored."""
    X = np.ascontiguousarray((S - S.mean()) / S.std(ddof=1))
    Z = np.ascontiguousarray(((B - B.mean(axis=0)) / B.std(axis=0, ddof=1)).T)
    return X, Z


def sklearn_fit(X, Z, C, tol, repeats, python):
    """NuSVR's weights (m, p, k), median seconds and version, from the peers' interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inputs, X=X, Z=Z, nus=np.asarray(NUS), C=C, tol=tol, repeats=repeats)
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        subprocess.run([python, "-c", SKLEARN_SCRIPT, inputs, outputs], check=True, env=env)
        out = np.load(outputs)
        return out["W"], float(np.median(out["times"])), str(out["version"])


def ours(S, B, n_jobs, repeats):
    """The method's fit: proportions (k, m) and median seconds."""
    fit_nusvr(RegressionProblem(S, B[:, :2], n_jobs=1))  # compile / load the kernel
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit = fit_nusvr(RegressionProblem(S, B, n_jobs=n_jobs))
        times.append(time.perf_counter() - t0)
    assert fit.converged.all()
    return fit.coefficients / fit.coefficients.sum(axis=0), float(np.median(times))


def our_weights(X, Z, C=1.0):
    """The kernel's weights of every nu (m, p, k), for the comparison with NuSVR's ``coef_``."""
    from fastdeconv.kernels.svr import nu_svr

    m, k = Z.shape[0], X.shape[1]
    W = np.empty((m, len(NUS), k))
    it = np.empty((m, len(NUS)), dtype=np.int64)
    st = np.empty((m, len(NUS)), dtype=np.int8)
    nu_svr(X, Z, np.asarray(NUS), C, 1e-11, -1, True, W, it, st, np.empty((0, 0, 0, 0)))
    return W, it


def speed(repeats, sklearn_samples, python, tol, agree):
    from fastdeconv.simulate import synthetic

    d = read_dataset(DATA / "newman_GSE65133")
    genes = d["reference"].index.intersection(d["mixture"].index)
    lm22 = (d["reference"].loc[genes].to_numpy(float), d["mixture"].loc[genes].to_numpy(float))
    syn = synthetic(n_genes=500, n_types=22, n_samples=2000, seed=0)
    batch = (syn.signature.to_numpy(float),
             syn.bulk.loc[syn.signature.index].to_numpy(float))
    print(f"speed: median of {repeats} runs; ms per sample (3 nu values each)")
    header = (f"{'case':<34} {'ours 1 thr':>10} {'ours all':>9} {'sklearn':>9} "
              f"{'sklearn/ours':>12} {'max|dw|':>8} {'max|dp|':>8} {'IPM it':>7}")
    print(header)
    version = None
    tight = []
    for label, (S, B), sub in (("newman_GSE65133 + LM22 (504 x 22 x 20)", lm22, None),
                               ("synthetic (500 x 22 x 2000)", batch, sklearn_samples)):
        m = B.shape[1]
        P1, t1 = ours(S, B, 1, repeats)
        _, tall = ours(S, B, None, repeats)
        X, Z = standardised(S, B)
        W, it = our_weights(X, Z)
        cells = [f"{1e3 * t1 / m:10.2f}", f"{1e3 * tall / m:9.2f}"]
        if python:
            take = m if sub is None else min(sub, m)
            Wsk, tsk, version = sklearn_fit(X, Z[:take], 1.0, tol, repeats, python)
            kept, _ = _choose(Wsk, X, Z[:take])
            dw = np.abs(Wsk - W[:take]).max()
            dp = np.abs(kept.T - P1[:, :take]).max()
            cells += [f"{1e3 * tsk / take:9.2f}", f"{tsk / take / (t1 / m):12.1f}",
                      f"{dw:8.1e}", f"{dp:8.1e}"]
            if agree:  # NuSVR near its best (slow): how close the answers really are
                Wt, _, _ = sklearn_fit(X, Z[:agree], 1.0, 1e-9, 1, python)
                kept, _ = _choose(Wt, X, Z[:agree])
                tight.append(f"{label}: max|dw| {np.abs(Wt - W[:agree]).max():.1e}, "
                             f"max|dp| {np.abs(kept.T - P1[:, :agree]).max():.1e}")
        else:
            cells += [f"{'-':>9}", f"{'-':>12}", f"{'-':>8}", f"{'-':>8}"]
        print(f"{label:<34} " + " ".join(cells) + f" {np.median(it):7.1f}")
    if python:
        print(f"(scikit-learn {version}, NuSVR tol={tol:g}; 'sklearn/ours' compares one thread "
              "each; max|dw|: weights of any nu, max|dp|: proportions after the choice of nu; "
              "IPM it: median interior-point iterations per fit)")
        for line in tight:
            print(f"NuSVR with tol=1e-9 on the first {agree} samples: {line}")


def accuracy():
    cases = (("newman_GSE65133", True), ("shenorr_GSE19830", False), ("abbas_GSE11058", False))
    print("\naccuracy of method='nusvr': pooled Pearson r / RMSE / seconds")
    print(f"{'dataset':<18} {'all common genes':>22} {'default genes':>22} "
          f"{'C = 1/n, all genes':>22}")
    for name, renormalize in cases:
        d = read_dataset(DATA / name)
        bulk, reference, truth = d["mixture"], d["reference"], d["truth"].T
        n = len(reference.index.intersection(bulk.index))
        cells = []
        for options in (dict(genes="all"), dict(), dict(genes="all",
                                                       method_options={"C": 1.0 / n})):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = fastdeconv.deconvolve(bulk, reference, method="nusvr", progress=False,
                                            **options)
            seconds = time.perf_counter() - t0
            ev = evaluate(res, truth, renormalize=renormalize)
            cells.append(f"{ev.overall['pearson_r']:.3f} / {ev.overall['rmse']:.3f} / "
                         f"{seconds:5.2f}")
        print(f"{name:<18} " + " ".join(f"{c:>22}" for c in cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sklearn-samples", type=int, default=200,
                        help="synthetic samples given to scikit-learn (default 200)")
    parser.add_argument("--sklearn-tol", type=float, default=1e-3,
                        help="NuSVR's tolerance (default 1e-3, e1071's and CIBERSORT's)")
    parser.add_argument("--agreement", type=int, default=2,
                        help="samples refitted by NuSVR with tol=1e-9 to compare answers "
                             "(slow: seconds per fit on LM22; 0 skips)")
    parser.add_argument("--peer-python", default=PEER_PYTHON,
                        help="interpreter with scikit-learn ('none': skip it)")
    args = parser.parse_args()
    python = None if args.peer_python == "none" else args.peer_python
    if not args.no_speed:
        speed(args.repeats, args.sklearn_samples, python, args.sklearn_tol, args.agreement)
    if not args.no_accuracy:
        accuracy()


if __name__ == "__main__":
    main()
