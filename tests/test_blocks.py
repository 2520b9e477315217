"""A bulk read block by block (sparse, AnnData files, Dask): the same answers as in memory.

The oracle is the in-memory path on the dense table (BLAS projections, the methods'
own fits); the block path projects the stored non-zeros and solves from the Gram
form, so the two agree to rounding, and every way of giving the same counts
(CSR, CSC, AnnData in memory, .h5ad, .zarr, Dask) gives identical numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import fastdeconv
from fastdeconv.blockwise import BlockFitter
from fastdeconv.inputs.blocks import open_blocks
from fastdeconv.kernels.sparse import N_SUMS, project_csr_rows, project_dense_rows

anndata = pytest.importorskip("anndata")

N_GENES, N_TYPES, N_SPOTS = 300, 4, 700
GENES = [f"g{i}" for i in range(N_GENES)]
TYPES = [f"type{i}" for i in range(N_TYPES)]


@pytest.fixture(scope="module")
def spots():
    """Poisson counts of spots (genes x spots, about half zeros) and their signature."""
    rng = np.random.default_rng(0)
    S = rng.gamma(0.5, 40.0, size=(N_GENES, N_TYPES))
    for t in range(N_TYPES):
        S[t * 30:(t + 1) * 30, t] *= 15
    P = rng.dirichlet(np.full(N_TYPES, 0.7), size=N_SPOTS).T
    mu = S @ P
    counts = rng.poisson(mu / mu.sum(axis=0) * 400).astype(np.float32)
    counts[:, 5] = 0.0  # an empty spot
    sig = pd.DataFrame(S, index=GENES, columns=TYPES)
    names = [f"spot{j}" for j in range(N_SPOTS)]
    return counts, sig, names, P


def _adata(counts, names, genes=GENES):
    return anndata.AnnData(sp.csr_array(counts.T), obs=pd.DataFrame(index=names),
                           var=pd.DataFrame(index=genes))


def _dense(counts, names, genes=GENES):
    return pd.DataFrame(counts.astype(np.float64), index=genes, columns=names)


def _quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


GRAM_SETTINGS = [
    dict(method="nnls", robust=None),
    dict(method="nnls", robust=None, background=False, weights="poisson"),
    dict(method="simplex", robust=None, weights="relative"),
    dict(method="simplex_le", robust=None),
]


@pytest.mark.parametrize("kwargs", GRAM_SETTINGS, ids=lambda k: "-".join(map(str, k.values())))
def test_gram_path_matches_the_dense_path(spots, kwargs):
    counts, sig, names, _ = spots
    blocks = _quiet(fastdeconv.deconvolve, _adata(counts, names), sig, **kwargs)
    dense = _quiet(fastdeconv.deconvolve, _dense(counts, names), sig, **kwargs)
    assert blocks.options["blocks"] == "sparse" and "blocks" not in dense.options
    np.testing.assert_allclose(blocks.proportions.to_numpy(), dense.proportions.to_numpy(),
                               atol=1e-10, equal_nan=True)
    assert list(blocks.proportions.columns) == list(dense.proportions.columns)
    assert list(blocks.proportions.index) == names
    # fit statistics from the Gram form against the residuals themselves
    for col in ("residual_norm", "rmse", "r2", "pearson_r", "total", "background"):
        np.testing.assert_allclose(blocks.fit[col], dense.fit[col], rtol=1e-7, atol=1e-9,
                                   err_msg=col)
    assert (blocks.fit.converged == dense.fit.converged).all()
    assert blocks.fit.loc["spot5"].isna()[["residual_norm", "r2"]].all()
    assert blocks.proportions.loc["spot5"].isna().all()
    assert blocks.gene_weights is None  # genes x spots would be as large as the bulk


@pytest.mark.parametrize("method", ["dwls", "fardeep", "nnls"])
def test_dense_path_per_block_equals_the_in_memory_fit(spots, method, monkeypatch):
    """Methods without a Gram form (and Huber's loss) densify one block at a time."""
    from fastdeconv import blockwise, regression

    counts, sig, names, _ = spots
    monkeypatch.setattr(regression, "BLOCK", 256)  # several blocks
    sub = counts[:, :300]
    blocks = _quiet(fastdeconv.deconvolve, _adata(sub, names[:300]), sig, method=method)
    dense = _quiet(fastdeconv.deconvolve, _dense(sub, names[:300]), sig, method=method)
    np.testing.assert_allclose(blocks.proportions.to_numpy(), dense.proportions.to_numpy(),
                               atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(blocks.fit.pearson_r, dense.fit.pearson_r, atol=1e-12)
    assert not BlockFitter(method, sig.to_numpy(), np.arange(N_GENES),
                           np.ones(N_GENES, bool), solver={"huber": (1.345, 50, 1e-5)}
                           ).gram_form
    assert blockwise.BLOCK > 256


def test_every_container_gives_identical_numbers(spots, tmp_path):
    counts, sig, names, _ = spots
    kw = dict(method="nnls", robust=None)
    ref = _quiet(fastdeconv.deconvolve, _adata(counts, names), sig, **kw).proportions
    adata = _adata(counts, names)
    adata.write_h5ad(tmp_path / "spots.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.write_zarr(tmp_path / "spots.zarr")
    backed = anndata.read_h5ad(tmp_path / "spots.h5ad", backed="r")
    inputs = {
        "csc genes x spots": (sp.csc_array(counts), dict(bulk_genes=GENES)),
        "csr genes x spots": (sp.csr_array(counts), dict(bulk_genes=GENES)),
        "csr spots x genes": (sp.csr_array(counts.T), dict(bulk_genes=GENES,
                                                          transpose_bulk=True)),
        "h5ad path": (str(tmp_path / "spots.h5ad"), {}),
        "zarr path": (str(tmp_path / "spots.zarr"), {}),
        "backed AnnData": (backed, {}),
    }
    for label, (bulk, extra) in inputs.items():
        res = _quiet(fastdeconv.deconvolve, bulk, sig, **kw, **extra)
        assert res.options["blocks"] in ("sparse", "file"), label
        np.testing.assert_array_equal(res.proportions.to_numpy(), ref.to_numpy(), err_msg=label)
    backed.file.close()


def test_dask_array_identical_to_the_in_memory_path(spots):
    da = pytest.importorskip("dask.array")
    counts, sig, names, _ = spots
    for kw in (dict(method="nnls", robust=None), dict(method="dwls")):
        ref = _quiet(fastdeconv.deconvolve, sp.csc_array(counts[:, :400]), sig,
                     bulk_genes=GENES, **kw)
        lazy = da.from_array(counts[:, :400], chunks=(N_GENES, 150))  # genes x spots
        res = _quiet(fastdeconv.deconvolve, lazy, sig, bulk_genes=GENES, **kw)
        assert res.options["blocks"] == "dask"
        np.testing.assert_array_equal(res.proportions.to_numpy(), ref.proportions.to_numpy())
        pd.testing.assert_frame_equal(res.fit, ref.fit, check_exact=True)


def test_anndata_backed_by_dask_of_sparse_chunks(spots):
    da = pytest.importorskip("dask.array")
    counts, sig, names, _ = spots
    X = da.from_array(sp.csr_matrix(counts.T), chunks=(250, N_GENES), asarray=False)
    adata = anndata.AnnData(X, obs=pd.DataFrame(index=names), var=pd.DataFrame(index=GENES))
    res = _quiet(fastdeconv.deconvolve, adata, sig)  # the default for counts stored sparse
    ref = _quiet(fastdeconv.deconvolve, _adata(counts, names), sig)
    assert res.options["blocks"] == "dask" and res.options["weights"] == "relative"
    np.testing.assert_array_equal(res.proportions.to_numpy(), ref.proportions.to_numpy())
    assert "fastdeconv_proportions" in adata.obsm


def test_float32_counts_are_read_in_place(spots):
    counts, _, names, _ = spots
    adata = _adata(counts, names)
    source = open_blocks(adata)
    block = source.block(10, 20)
    assert source.dtype == np.float32 and block.data.dtype == np.float32
    assert np.shares_memory(block.data, adata.X.data)  # a view, not a copy


def test_duplicated_and_renamed_genes(spots):
    counts, sig, names, _ = spots
    genes = list(GENES)
    genes[1] = genes[0]  # two rows named g0
    with pytest.raises(ValueError, match="duplicates='sum'"):
        fastdeconv.deconvolve(_adata(counts, names, genes), sig, method="nnls", robust=None)
    sub = sig.drop(index="g1")
    res = _quiet(fastdeconv.deconvolve, _adata(counts, names, genes), sub, method="nnls",
                 robust=None, duplicates="sum")
    ref = _quiet(fastdeconv.deconvolve, _dense(counts, names, genes), sub, method="nnls",
                 robust=None, duplicates="sum")
    np.testing.assert_allclose(res.proportions.to_numpy(), ref.proportions.to_numpy(),
                               atol=1e-10, equal_nan=True)
    for col in ("residual_norm", "r2", "pearson_r"):  # sums of the summed genes
        np.testing.assert_allclose(res.fit[col], ref.fit[col], rtol=1e-9, err_msg=col)
    lower = _adata(counts[:, :200], names[:200], [g.upper() for g in GENES])
    with pytest.raises(ValueError, match="case_insensitive=True"):
        fastdeconv.deconvolve(lower, sig, method="nnls", robust=None)


def test_bad_values_are_refused_with_the_sample_named(spots):
    counts, sig, names, _ = spots
    bad = counts.copy()
    bad[3, 650] = -2.0  # beyond the first block's check
    from fastdeconv import regression

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(regression, "BLOCK", 256)
        mp.setattr(regression, "_HEAD_SAMPLES", 100)
        with pytest.raises(ValueError, match="sample 650"):
            _quiet(fastdeconv.deconvolve, _adata(bad, names), sig, method="nnls",
                   robust=None)
    bad[3, 650] = 0.0
    bad[3, 20] = np.nan  # in the first samples: the in-memory check and its message
    with pytest.raises(ValueError, match=r"NaN.*spot20"):
        _quiet(fastdeconv.deconvolve, _adata(bad, names), sig, method="nnls", robust=None)


def test_log_scale_counts_are_refused_or_unlogged(spots):
    counts, sig, names, _ = spots
    logged = np.log1p(counts)
    with pytest.raises(ValueError, match="scale='log1p'"):
        fastdeconv.deconvolve(_adata(logged, names), sig, method="nnls", robust=None)
    res = _quiet(fastdeconv.deconvolve, _adata(logged, names), sig, method="nnls",
                 robust=None, scale="log1p")
    ref = _quiet(fastdeconv.deconvolve, _adata(counts, names), sig, method="nnls",
                 robust=None)
    np.testing.assert_allclose(res.proportions.to_numpy(), ref.proportions.to_numpy(),
                               atol=1e-5, equal_nan=True)  # (float32 log1p round trip)


def test_whole_bulk_options_read_a_sparse_bulk_whole_but_refuse_dask(spots):
    da = pytest.importorskip("dask.array")
    counts, sig, names, _ = spots
    res = _quiet(fastdeconv.deconvolve, _adata(counts[:, :40], names[:40]), sig,
                 method="nnls", hierarchy="auto")
    assert "blocks" not in res.options and res.proportions.shape == (40, N_TYPES)
    lazy = da.from_array(counts[:, :40], chunks=(N_GENES, 20))
    with pytest.raises(ValueError, match=r"bulk\.compute\(\)"):
        fastdeconv.deconvolve(lazy, sig, bulk_genes=GENES, method="nnls", hierarchy="auto")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 9), st.integers(0, 10_000),
       st.floats(0.05, 0.9))
def test_projection_kernels_against_numpy(m, n, seed, density):
    rng = np.random.default_rng(seed)
    X = sp.random(m, n, density=density, format="csr", random_state=rng,
                  dtype=np.float32) * 10
    X = sp.csr_array(X)
    row_map = rng.integers(-1, 3, size=n)
    common = rng.random(n) < 0.7
    A = rng.random((3, 2))
    out, sums = np.zeros((m, 2)), np.zeros((m, N_SUMS))
    project_csr_rows(X.indptr, X.indices, X.data, row_map, common, A, 0, m, out, sums)
    D = X.toarray().astype(np.float64)
    used = row_map >= 0
    expect = D[:, used] @ A[row_map[used]]
    np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums[:, 0], D[:, used].sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(sums[:, 1], (D[:, used] ** 2).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(sums[:, 2], D[:, common].sum(axis=1), rtol=1e-12)
    out2, sums2 = np.zeros((m, 2)), np.zeros((m, N_SUMS))
    project_dense_rows(X.toarray(), row_map, common, A, 0, m, out2, sums2)
    np.testing.assert_allclose(out2, out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums2, sums, rtol=1e-12, atol=1e-12)


def test_dask_distributed_local_cluster_gives_identical_results(spots):
    """Two worker processes fit the chunks: the same numbers as the in-memory path."""
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    counts, sig, names, _ = spots
    sub = np.ascontiguousarray(counts[:, :300])
    ref = _quiet(fastdeconv.deconvolve, sp.csc_array(sub), sig, bulk_genes=GENES,
                 method="nnls", robust=None, weights="relative")
    ref_dwls = _quiet(fastdeconv.deconvolve, sub, sig, bulk_genes=GENES, method="dwls")
    lazy = da.from_array(sub, chunks=(N_GENES, 100))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        res = _quiet(fastdeconv.deconvolve, lazy, sig, bulk_genes=GENES, method="nnls",
                     robust=None, weights="relative")
        res_dwls = _quiet(fastdeconv.deconvolve, lazy, sig, bulk_genes=GENES, method="dwls")
        workers = client.run(lambda: __import__("os").getpid())
    assert len(set(workers.values())) == 2
    np.testing.assert_array_equal(res.proportions.to_numpy(), ref.proportions.to_numpy())
    pd.testing.assert_frame_equal(res.fit, ref.fit, check_exact=True)
    np.testing.assert_array_equal(res_dwls.proportions.to_numpy(),
                                  ref_dwls.proportions.to_numpy())


@pytest.mark.parametrize("solver", ["nnls", "simplex_lstsq"])
@pytest.mark.parametrize("options", [{}, {"weights": "random"}, {"loss": "huber"}],
                         ids=["squares", "weights", "huber"])
@pytest.mark.parametrize("fmt", ["csc", "csr"])
def test_public_solvers_take_sparse_bulks(spots, solver, options, fmt):
    """fastdeconv.nnls / simplex_lstsq on a sparse B: the dense answer, never densified whole."""
    counts, sig, _, _ = spots
    B = counts[:, :120].astype(np.float64)
    B = B[:, B.sum(axis=0) > 0]
    S = sig.to_numpy()
    if options.get("weights") == "random":
        options = {"weights": np.random.default_rng(1).random(N_GENES)}
    solve = getattr(fastdeconv, solver)
    X, info = _quiet(solve, S, B, return_info=True, **options)
    Xs, info_s = _quiet(solve, S, getattr(sp, f"{fmt}_array")(B), return_info=True, **options)
    np.testing.assert_allclose(Xs, X, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(info_s.residual_norm, info.residual_norm, rtol=1e-7)
    assert np.array_equal(info_s.converged, info.converged)
    bad = sp.csc_array(B)
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        solve(S, bad, **options)


def test_a_log_scale_for_linear_counts_is_refused(spots):
    counts, sig, names, _ = spots
    with pytest.raises(ValueError, match="looks linear already; pass scale='linear'"):
        fastdeconv.deconvolve(_adata(counts * 100, names), sig, scale="log2")


def test_cli_weight_rules_match_the_python_keyword(spots, tmp_path):
    from fastdeconv.cli import main
    from fastdeconv.cli.deconvolve import _WEIGHT_RULES
    from fastdeconv.regression import WEIGHT_RULES

    assert set(_WEIGHT_RULES) == set(WEIGHT_RULES)
    counts, sig, names, _ = spots
    bulk = _dense(counts[:, :30], names[:30])
    bulk.to_csv(tmp_path / "bulk.tsv", sep="\t")
    sig.to_csv(tmp_path / "sig.tsv", sep="\t")
    out = tmp_path / "p.tsv"
    assert main(["deconvolve", "--bulk", str(tmp_path / "bulk.tsv"), "--signature",
                 str(tmp_path / "sig.tsv"), "--output", str(out), "--method", "nnls",
                 "--robust", "none", "--weights", "poisson", "--quiet"]) == 0
    ref = _quiet(fastdeconv.deconvolve, bulk, sig, method="nnls", robust=None,
                 weights="poisson")
    back = fastdeconv.read_table(out)
    np.testing.assert_allclose(back.to_numpy(), ref.proportions.to_numpy(), rtol=1e-12)


def test_cli_names_the_weight_rules_for_an_unknown_one(tmp_path, capsys):
    from fastdeconv.cli import main

    assert main(["deconvolve", "--bulk", "b.tsv", "--signature", "s.tsv", "--output",
                 str(tmp_path / "o.tsv"), "--weights", "relativ"]) == 1
    err = capsys.readouterr().err
    assert "--weights: 'relativ' is neither a file nor a rule" in err and "relative" in err
