"""Accuracy of signatures built from single cells, on the shared real data.

The split-half pseudo-bulk and the Newman PBMC microarray checks of
``benchmarks/accuracy_singlecell.py``, with one seed each so the file runs in
seconds. The thresholds are the issue's targets where the library meets them,
and regression guards (stated as such) where it does not.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastdeconv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def acc():
    from conftest import load_benchmark

    return load_benchmark("accuracy_singlecell")


@pytest.fixture(scope="module")
def hao(data_dir, acc):
    if not (data_dir / "hao_pbmc_sc_subset").is_dir():
        pytest.skip("hao_pbmc_sc_subset not found")
    return acc.load_hao(data_dir)


@pytest.fixture(scope="module")
def newman(data_dir, acc):
    if not (data_dir / "newman_GSE65133").is_dir():
        pytest.skip("newman_GSE65133 not found")
    return acc.load_newman(data_dir)


def test_split_halves_are_disjoint_and_balanced(hao, acc):
    _, labels = hao
    first = acc.split_halves(labels, 0)
    counts = labels.groupby(first.astype(int)).value_counts().unstack(0)
    assert (counts[1] == counts.sum(axis=1) // 2).all()
    np.testing.assert_array_equal(first, acc.split_halves(labels, 0))


def test_pseudobulk_split_half_accuracy(hao, acc):
    counts, labels = hao
    ev_rna, ev_cell, est, _ = acc.pseudobulk_split(counts, labels, seed=0)
    assert est.shape == (100, labels.nunique())
    # the target, met on RNA fractions (what a CPM signature estimates)
    assert ev_rna.overall["pearson_r"] >= 0.95
    assert ev_rna.overall["rmse"] <= 0.04
    # cell fractions (after the RNA-content conversion): the RMSE target is met,
    # r (0.93 measured) is below 0.95 on this 1336-cell reference (6 ILC and 18
    # plasma cells in the signature half); a regression guard, see docs/reference.md
    assert ev_cell.overall["pearson_r"] >= 0.90
    assert ev_cell.overall["rmse"] <= 0.04


def test_newman_coarse_groups_beat_baselines(hao, newman, acc):
    counts, labels = hao
    mixture, truth = newman
    truth5 = acc.newman_truth(truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sig = fastdeconv.build_signature(counts, labels, candidate_genes=mixture.index)
    # baselines of the issue (mean-CPM top-50 signature): NNLS r 0.46, simplex LS r 0.80
    for method, baseline in (("simplex", 0.80), ("nnls", 0.46)):
        _, cells = acc.deconvolve_with(sig, mixture, method=method)
        ev = acc.newman_scores(cells, truth5)
        assert ev.overall["pearson_r"] > baseline, method
        assert ev.per_type["pearson_r"].notna().all()
