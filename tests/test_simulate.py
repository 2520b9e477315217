"""Tests of fastdeconv.simulate: synthetic benchmarks and pseudo-bulk mixtures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import nnls

from fastdeconv.simulate import dirichlet_fractions, pseudobulk, synthetic


# --------------------------------------------------------------------------- synthetic


def test_synthetic_shapes_names_and_scales():
    d = synthetic(n_genes=400, n_types=5, n_samples=30, seed=3)
    assert d.bulk.shape == (400, 30)
    assert d.signature.shape == (400, 5)
    assert d.proportions.shape == (30, 5)
    assert d.counts.shape == (400, 30)
    assert (
        list(d.signature.columns)
        == list(d.proportions.columns)
        == [f"type_{i}" for i in range(1, 6)]
    )
    assert list(d.bulk.columns) == list(d.proportions.index)
    assert list(d.bulk.index) == list(d.signature.index)
    assert d.bulk.index.is_unique and d.bulk.columns.is_unique
    np.testing.assert_allclose(d.proportions.sum(axis=1), 1.0, atol=1e-12)
    assert (d.proportions.to_numpy() >= 0).all()
    np.testing.assert_allclose(d.signature.sum(axis=0), 1e6, rtol=1e-12)
    np.testing.assert_allclose(d.bulk.sum(axis=0), 1e6, rtol=1e-12)
    # counts are integers, bulk is counts per million of them
    counts = d.counts.to_numpy()
    assert np.array_equal(counts, np.round(counts))
    np.testing.assert_allclose(d.bulk.to_numpy(), counts / counts.sum(axis=0) * 1e6)


def test_synthetic_is_seeded():
    a = synthetic(n_genes=200, n_types=3, n_samples=10, seed=7)
    b = synthetic(n_genes=200, n_types=3, n_samples=10, seed=7)
    c = synthetic(n_genes=200, n_types=3, n_samples=10, seed=8)
    pd.testing.assert_frame_equal(a.bulk, b.bulk)
    pd.testing.assert_frame_equal(a.proportions, b.proportions)
    assert not np.allclose(a.bulk.to_numpy(), c.bulk.to_numpy())


def test_synthetic_markers_are_up_in_their_type_only():
    d = synthetic(n_genes=1000, n_types=4, n_samples=5, seed=0, n_markers=20, marker_fold=10.0)
    sig = d.signature
    all_markers = [g for genes in d.markers.values() for g in genes]
    assert len(all_markers) == len(set(all_markers)) == 80
    for t, genes in d.markers.items():
        own = sig.loc[genes, t]
        others = sig.loc[genes].drop(columns=t).max(axis=1)
        # a fold of ~10 against type noise exp(N(0, 0.5)): the own type wins for almost all
        assert (own > others).mean() >= 0.9


def test_synthetic_noise_free_mixture_is_exact():
    d = synthetic(n_genes=300, n_types=4, n_samples=8, seed=2, noise="none")
    expected = d.signature.to_numpy() @ d.proportions.to_numpy().T
    np.testing.assert_allclose(d.bulk.to_numpy(), expected, rtol=1e-10)


def test_synthetic_negative_binomial_overdispersed_vs_poisson():
    kw = dict(n_genes=2000, n_types=3, n_samples=40, seed=5, depth=1e6)
    nb = synthetic(noise="negative_binomial", dispersion=0.2, **kw)
    po = synthetic(noise="poisson", **kw)
    clean = synthetic(noise="none", **kw)

    def rel_error(d):
        return np.median(np.abs(d.bulk.to_numpy() - clean.bulk.to_numpy()) / clean.bulk.to_numpy())

    assert rel_error(nb) > 1.5 * rel_error(po)


def test_synthetic_proportions_recoverable_by_nnls():
    d = synthetic(n_genes=2000, n_types=5, n_samples=40, seed=11)
    S, B = d.signature.to_numpy(), d.bulk.to_numpy()
    X = np.array([nnls(S, B[:, j])[0] for j in range(B.shape[1])])
    X /= X.sum(axis=1, keepdims=True)
    P = d.proportions.to_numpy()
    assert np.corrcoef(X.ravel(), P.ravel())[0, 1] > 0.9
    assert np.sqrt(np.mean((X - P) ** 2)) < 0.08


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_genes=0), "n_genes"),
        (dict(n_types=2.5), "n_types"),
        (dict(n_genes=50, n_types=10, n_markers=10), "do not fit"),
        (dict(marker_fold=-1.0), "marker_fold"),
        (dict(depth=0), "depth"),
        (dict(noise="gaussian"), "noise"),
        (dict(alpha=[1.0, 2.0]), "one value per cell type"),
        (dict(alpha=0.0), "alpha"),
        (dict(dispersion=float("nan")), "dispersion"),
    ],
)
def test_synthetic_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        synthetic(**kwargs)


def test_dirichlet_fractions_alpha_mapping_and_sparsity():
    f = dirichlet_fractions(2000, ["a", "b"], alpha={"a": 9.0, "b": 1.0}, seed=0)
    assert list(f.columns) == ["a", "b"]
    assert abs(f["a"].mean() - 0.9) < 0.01  # Dirichlet mean alpha_i / sum(alpha)
    with pytest.raises(ValueError, match="unknown cell types"):
        dirichlet_fractions(3, ["a"], alpha={"z": 1.0})
    with pytest.raises(ValueError, match="unique"):
        dirichlet_fractions(3, ["a", "a"])


# --------------------------------------------------------------------------- pseudobulk


def _toy_cells(seed=0, n_genes=40):
    """Three types with very different library sizes (RNA content per cell)."""
    rng = np.random.default_rng(seed)
    sizes = {"T": 12, "B": 9, "NK": 6}
    scale = {"T": 1.0, "B": 4.0, "NK": 0.5}
    blocks, labels = [], []
    for t, n in sizes.items():
        blocks.append(rng.poisson(3.0 * scale[t], size=(n_genes, n)))
        labels += [t] * n
    counts = np.hstack(blocks).astype(float)
    perm = rng.permutation(counts.shape[1])
    return counts[:, perm], np.asarray(labels, dtype=object)[perm]


def test_pseudobulk_shapes_and_truths():
    counts, labels = _toy_cells()
    pb = pseudobulk(counts, labels, n_samples=20, cells_per_sample=200, seed=1)
    assert pb.bulk.shape == (40, 20)
    assert list(pb.cell_fractions.columns) == ["B", "NK", "T"]
    assert (pb.n_cells.sum(axis=1) == 200).all()
    np.testing.assert_allclose(pb.cell_fractions.to_numpy(), pb.n_cells.to_numpy() / 200)
    np.testing.assert_allclose(pb.rna_fractions.sum(axis=1), 1.0)
    np.testing.assert_allclose(pb.cell_fractions.sum(axis=1), 1.0)
    # every pseudo-bulk count is a sum of whole cells
    assert np.array_equal(pb.bulk.to_numpy(), np.round(pb.bulk.to_numpy()))


def test_pseudobulk_rna_fractions_match_naive_computation():
    """Rebuild the bulk and the RNA fractions from the cell draws, naively."""
    counts, labels = _toy_cells(seed=4)
    pb = pseudobulk(counts, labels, n_samples=6, cells_per_sample=50, seed=9)
    # B cells have 4x the RNA of T cells: their RNA share exceeds their cell share
    assert (pb.rna_fractions["B"] >= pb.cell_fractions["B"] - 1e-12).all()
    assert (pb.rna_fractions["NK"] <= pb.cell_fractions["NK"] + 1e-12).all()
    # the RNA fraction of each type equals its share of the bulk's total counts,
    # obtained from a per-type decomposition of the bulk: bulk_t = sum of that type's cells
    totals = pb.bulk.sum(axis=0).to_numpy()
    lib = counts.sum(axis=0)
    # expected RNA per type given the realised cell counts: n_cells * mean library of the type
    for t in pb.rna_fractions.columns:
        mean_lib = lib[labels == t].mean()
        approx = pb.n_cells[t].to_numpy() * mean_lib / totals
        # sampling with replacement: equal in expectation, close for 50 cells
        assert np.all(np.abs(approx - pb.rna_fractions[t].to_numpy()) < 0.15)


def test_pseudobulk_exact_with_one_cell_per_type():
    """With one cell per type the draws are forced and the bulk is exact."""
    counts = np.array([[1.0, 10.0], [2.0, 0.0], [3.0, 30.0]])  # 3 genes x 2 cells
    labels = ["x", "y"]
    pb = pseudobulk(
        counts, labels, fractions={"x": 0.25, "y": 0.75}, n_samples=3, cells_per_sample=4, seed=0
    )
    n = pb.n_cells.to_numpy()
    expected = counts @ n.T  # cell x drawn n_x times, cell y n_y times
    np.testing.assert_allclose(pb.bulk.to_numpy(), expected)
    rna = n * counts.sum(axis=0)
    np.testing.assert_allclose(pb.rna_fractions.to_numpy(), rna / rna.sum(axis=1, keepdims=True))


def test_pseudobulk_given_fractions_realised_on_average():
    counts, labels = _toy_cells(seed=2)
    target = pd.DataFrame({"T": [0.5, 0.1], "NK": [0.5, 0.9]}, index=["m1", "m2"])
    pb = pseudobulk(counts, labels, fractions=target, cells_per_sample=20000, seed=0)
    assert list(pb.bulk.columns) == ["m1", "m2"]
    assert (pb.cell_fractions["B"] == 0).all()  # type missing from fractions -> 0
    np.testing.assert_allclose(
        pb.cell_fractions[["T", "NK"]].to_numpy(), target.to_numpy(), atol=0.02
    )


def test_pseudobulk_sparse_dense_dataframe_agree():
    counts, labels = _toy_cells(seed=3)
    kw = dict(n_samples=5, cells_per_sample=30, seed=4)
    dense = pseudobulk(counts, labels, **kw)
    sparse = pseudobulk(sp.csc_matrix(counts), labels, **kw)
    cells = [f"c{i}" for i in range(counts.shape[1])]
    frame = pd.DataFrame(counts, index=[f"g{i}" for i in range(40)], columns=cells)
    # labels as a Series indexed by cell id, in a different order: aligned by id
    series = pd.Series(labels, index=cells).iloc[::-1]
    named = pseudobulk(frame, series, **kw)
    np.testing.assert_array_equal(dense.bulk.to_numpy(), sparse.bulk.to_numpy())
    np.testing.assert_array_equal(dense.bulk.to_numpy(), named.bulk.to_numpy())
    assert list(named.bulk.index) == list(frame.index)
    pd.testing.assert_frame_equal(dense.rna_fractions, named.rna_fractions)


def test_pseudobulk_anndata_with_obs_column():
    anndata = pytest.importorskip("anndata")
    counts, labels = _toy_cells(seed=6)
    adata = anndata.AnnData(
        X=sp.csr_matrix(counts.T),
        obs=pd.DataFrame({"cell_type": labels}, index=[f"c{i}" for i in range(counts.shape[1])]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(counts.shape[0])]),
    )
    a = pseudobulk(adata, "cell_type", n_samples=4, cells_per_sample=25, seed=0)
    b = pseudobulk(counts, labels, n_samples=4, cells_per_sample=25, seed=0)
    np.testing.assert_array_equal(a.bulk.to_numpy(), b.bulk.to_numpy())
    assert a.bulk.index[0] == "g0"
    # a ValueError (fastdeconv.inputs.counts.as_labels, shared with build_signature's
    # label_key=); pseudobulk raised a KeyError before
    with pytest.raises(ValueError, match="not a column of .obs"):
        pseudobulk(adata, "celltype", n_samples=2)


def test_pseudobulk_cpm_normalisation_and_seed():
    counts, labels = _toy_cells()
    a = pseudobulk(counts, labels, n_samples=3, seed=5, normalize="cpm")
    b = pseudobulk(counts, labels, n_samples=3, seed=5, normalize="cpm")
    np.testing.assert_allclose(a.bulk.sum(axis=0), 1e6)
    pd.testing.assert_frame_equal(a.bulk, b.bulk)


@given(
    n_samples=st.integers(1, 6),
    cells=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_pseudobulk_invariants(n_samples, cells, seed):
    counts, labels = _toy_cells(seed=1, n_genes=8)
    pb = pseudobulk(counts, labels, n_samples=n_samples, cells_per_sample=cells, seed=seed)
    assert (pb.n_cells.sum(axis=1) == cells).all()
    np.testing.assert_allclose(pb.rna_fractions.sum(axis=1), 1.0)
    assert (pb.bulk.to_numpy() >= 0).all()
    # a type with no cells contributes no RNA
    assert ((pb.n_cells.to_numpy() == 0) <= (pb.rna_fractions.to_numpy() == 0)).all()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda c, lab: dict(counts=c, labels=lab[:-1], n_samples=2), "labels has"),
        (lambda c, lab: dict(counts=-c, labels=lab, n_samples=2), "negative"),
        (lambda c, lab: dict(counts=np.where(c > 5, np.nan, c), labels=lab, n_samples=2), "NaN"),
        (
            lambda c, lab: dict(counts=c, labels=lab, fractions={"DC": 1.0}, n_samples=2),
            "not in labels",
        ),
        (
            lambda c, lab: dict(counts=c, labels=lab, fractions={"T": 0.5, "B": 0.2}, n_samples=2),
            "sum to 1",
        ),
        (
            lambda c, lab: dict(counts=c, labels=lab, fractions=[0.5, 0.5], n_samples=2),
            "one column per",
        ),
        (
            lambda c, lab: dict(counts=c, labels=lab, n_samples=2, cells_per_sample=0),
            "cells_per_sample",
        ),
        (lambda c, lab: dict(counts=c, labels=lab), "n_samples"),
        (lambda c, lab: dict(counts=c[:, :0], labels=lab[:0], n_samples=2), "empty"),
        (lambda c, lab: dict(counts=c, labels=lab, n_samples=2, normalize="tpm"), "normalize"),
        (lambda c, lab: dict(counts=c[0], labels=lab, n_samples=2), "2-D"),
        (
            lambda c, lab: dict(
                counts=c,
                labels=pd.Series(lab, index=[f"x{i}" for i in range(len(lab))]).iloc[1:],
                n_samples=2,
            ),
            "labels has",
        ),
    ],
)
def test_pseudobulk_rejects_bad_input(make, match):
    counts, labels = _toy_cells()
    with pytest.raises((ValueError, TypeError), match=match):
        pseudobulk(**make(counts, labels))


def test_pseudobulk_labels_missing_cells_named():
    counts, labels = _toy_cells()
    cells = [f"c{i}" for i in range(counts.shape[1])]
    frame = pd.DataFrame(counts, columns=cells)
    partial = pd.Series(labels, index=cells).iloc[2:]
    with pytest.raises(ValueError, match="have no label"):
        pseudobulk(frame, partial, n_samples=2)


@pytest.mark.slow
def test_pseudobulk_real_single_cells(data_dir):
    """Hao PBMC cells: RNA fractions differ from cell fractions (platelets are small)."""
    from fastdeconv.io import read_table

    folder = data_dir / "hao_pbmc_sc_subset"
    if not folder.is_dir():
        pytest.skip("hao_pbmc_sc_subset not in the shared data")
    counts = read_table(folder / "counts.tsv.gz")
    labels = read_table(folder / "cell_labels.tsv", numeric=False).iloc[:, 0]
    pb = pseudobulk(
        sp.csr_matrix(counts.to_numpy()),
        labels.reindex(counts.columns).to_numpy(),
        n_samples=30,
        cells_per_sample=500,
        seed=0,
    )
    assert pb.bulk.shape == (counts.shape[0], 30)
    assert pb.cell_fractions.shape[1] == 11
    assert np.array_equal(pb.bulk.to_numpy(), np.round(pb.bulk.to_numpy()))
    lib = counts.sum(axis=0).groupby(labels.reindex(counts.columns).to_numpy()).mean()
    small, large = lib.idxmin(), lib.idxmax()
    assert pb.rna_fractions[small].mean() < pb.cell_fractions[small].mean()
    assert pb.rna_fractions[large].mean() > pb.cell_fractions[large].mean()


# --------------------------------------------------------------------------- run_benchmark


def test_run_benchmark_report():
    import fastdeconv
    from fastdeconv.simulate import run_benchmark

    try:
        fastdeconv.deconvolve  # noqa: B018
    except (AttributeError, ImportError):
        pytest.skip("fastdeconv.deconvolve is not available in this build")
    data = synthetic(n_genes=500, n_types=4, n_samples=60, seed=2)
    report = run_benchmark(data, repeats=2, n_jobs=1)
    assert set(report.times) == {
        "deconvolve",
        "nnls",
        "nnls_1thread",
        "scipy_nnls_loop",
        "first_call",
    }
    assert all(t > 0 for t in report.times.values())
    assert report.max_abs_diff < 1e-8
    assert report.evaluation.overall["pearson_r"] > 0.9
    assert report.speedup == pytest.approx(report.times["scipy_nnls_loop"] / report.times["nnls"])
    text = str(report)
    assert "500 genes x 60 samples, 4 cell types" in text and "faster than the scipy loop" in text
    with pytest.raises(TypeError, match="SyntheticData"):
        run_benchmark(data.bulk)
