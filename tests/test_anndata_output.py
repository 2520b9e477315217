"""Results stored in an AnnData bulk, scverse style: obsm keys, uns parameters, copy=."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import pandas as pd
import pytest

anndata = pytest.importorskip("anndata")

import fastdeconv  # noqa: E402

TYPES = ["T", "B", "M"]


def planted(m=6, n=80, seed=0):
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(n)]
    sig = pd.DataFrame(rng.gamma(1.0, 100.0, (n, 3)), index=genes, columns=TYPES)
    P = rng.dirichlet(np.ones(3), m)
    X = P @ sig.to_numpy().T  # samples x genes
    adata = anndata.AnnData(pd.DataFrame(X, index=[f"s{j}" for j in range(m)], columns=genes))
    return adata, sig, pd.DataFrame(P, index=adata.obs_names, columns=TYPES)


def test_deconvolve_stores_the_result_in_the_anndata():
    adata, sig, truth = planted()
    res = fastdeconv.deconvolve(adata, sig, method="nnls", uncertainty={"n_boot": 20, "n_perm": 10})
    assert res.adata is adata
    props = adata.obsm["fastdeconv_proportions"]
    assert isinstance(props, pd.DataFrame) and list(props.columns) == TYPES
    assert list(props.index) == list(adata.obs_names)
    np.testing.assert_allclose(props.to_numpy(), truth.to_numpy(), atol=1e-8)
    assert adata.obsm["fastdeconv_fit"]["converged"].all()
    assert "T_lower" in adata.obsm["fastdeconv_uncertainty"].columns
    assert adata.uns["fastdeconv"]["method"] == "nnls"
    assert adata.uns["fastdeconv"]["options"]["robust"] == "huber"


def test_copy_leaves_the_input_as_it_was_and_the_file_round_trips(tmp_path):
    adata, sig, truth = planted(seed=1)
    res = fastdeconv.deconvolve(adata, sig, copy=True)
    assert "fastdeconv_proportions" not in adata.obsm and "fastdeconv" not in adata.uns
    assert res.adata is not adata
    np.testing.assert_allclose(res.adata.obsm["fastdeconv_proportions"].to_numpy(),
                               res.proportions.to_numpy())
    path = tmp_path / "bulk.h5ad"
    res.adata.write_h5ad(path)  # what is stored can be written and read back
    back = anndata.read_h5ad(path)
    np.testing.assert_allclose(back.obsm["fastdeconv_proportions"].to_numpy(),
                               res.proportions.to_numpy())
    assert back.uns["fastdeconv"]["method"] == res.method


def test_copy_needs_an_anndata_and_to_anndata_checks_the_samples():
    adata, sig, _ = planted(seed=2)
    bulk = pd.DataFrame(adata.X.T, index=adata.var_names, columns=adata.obs_names)
    with pytest.raises(ValueError, match="copy= is for an AnnData bulk"):
        fastdeconv.deconvolve(bulk, sig, copy=True)
    res = fastdeconv.deconvolve(bulk, sig)
    assert not hasattr(res, "adata")
    with pytest.raises(ValueError, match="6 samples but the AnnData 3 observations"):
        res.to_anndata(adata[:3].copy())
    with pytest.raises(TypeError, match="needs an AnnData"):
        res.to_anndata(bulk)
    # samples matched by name, whatever the order of the observations
    shuffled = adata[::-1].copy()
    out = res.to_anndata(shuffled)
    np.testing.assert_allclose(out.obsm["fastdeconv_proportions"].loc["s0"].to_numpy(),
                               res.proportions.loc["s0"].to_numpy())


def test_cli_reads_and_writes_h5ad(tmp_path, capsys):
    from fastdeconv.cli import main

    adata, sig, truth = planted(seed=3)
    adata.layers["raw"] = adata.X.copy()
    adata.X = np.zeros_like(adata.X)  # the layer holds the data: .X would fail
    adata.write_h5ad(tmp_path / "bulk.h5ad")
    sig.to_csv(tmp_path / "sig.tsv", sep="\t")
    out = tmp_path / "out.h5ad"
    base = ["deconvolve", "--signature", str(tmp_path / "sig.tsv"), "-q", "--method", "nnls"]
    assert main([*base, "--bulk", str(tmp_path / "bulk.h5ad"), "--layer", "raw",
                 "--output", str(out)]) == 0
    back = anndata.read_h5ad(out)
    np.testing.assert_allclose(back.obsm["fastdeconv_proportions"].to_numpy(), truth.to_numpy(),
                               atol=1e-8)
    assert back.uns["fastdeconv"]["method"] == "nnls"
    # a table bulk written as .h5ad: the samples as observations
    table = pd.DataFrame(adata.layers["raw"].T, index=adata.var_names, columns=adata.obs_names)
    table.to_csv(tmp_path / "bulk.tsv", sep="\t")
    assert main([*base, "--bulk", str(tmp_path / "bulk.tsv"), "--output",
                 str(tmp_path / "t.h5ad")]) == 0
    assert anndata.read_h5ad(tmp_path / "t.h5ad").obsm["fastdeconv_proportions"].shape == (6, 3)
    # --layer for a table, and an output over the input, are refused naming the flag
    assert main([*base, "--bulk", str(tmp_path / "bulk.tsv"), "--layer", "raw", "--output",
                 str(tmp_path / "x.tsv")]) == 1
    assert "--layer is for an .h5ad or .zarr --bulk" in capsys.readouterr().err
    assert main([*base, "--bulk", str(tmp_path / "bulk.h5ad"), "--layer", "raw", "--output",
                 str(tmp_path / "bulk.h5ad")]) == 1
    assert "would overwrite --bulk" in capsys.readouterr().err


def test_cli_reads_and_writes_zarr(tmp_path, capsys):
    pytest.importorskip("zarr")
    from fastdeconv.cli import main

    adata, sig, truth = planted(seed=4)
    adata.write_zarr(tmp_path / "bulk.zarr")
    sig.to_csv(tmp_path / "sig.tsv", sep="\t")
    out = tmp_path / "out.zarr"
    argv = ["deconvolve", "--bulk", str(tmp_path / "bulk.zarr"), "--signature",
            str(tmp_path / "sig.tsv"), "-q", "--method", "nnls", "--output", str(out)]
    for _ in range(2):  # the second run replaces the first store
        assert main(argv) == 0
        back = anndata.read_zarr(out)
        np.testing.assert_allclose(back.obsm["fastdeconv_proportions"].to_numpy(),
                                   truth.to_numpy(), atol=1e-8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bulk.zarr", "out.zarr", "sig.tsv"]
    argv[2] = str(tmp_path / "missing.zarr")
    assert main(argv) == 1
    assert "--bulk: zarr store not found" in capsys.readouterr().err


def test_cli_h5ad_to_h5ad_keeps_the_counts_in_the_bulk(tmp_path):
    """An AnnData bulk is read block by block; OUT holds its names and the results."""
    from fastdeconv.cli import main

    rng = np.random.default_rng(5)
    genes = [f"g{i}" for i in range(80)]
    sig = pd.DataFrame(rng.gamma(1.0, 50.0, size=(80, 3)), index=genes, columns=list("ABC"))
    truth = rng.dirichlet(np.ones(3), size=12)
    counts = sp.csr_array((sig.to_numpy() @ truth.T).T.astype(np.float32))
    adata = anndata.AnnData(counts, obs=pd.DataFrame({"region": ["x"] * 12},
                                                     index=[f"spot{j}" for j in range(12)]),
                            var=pd.DataFrame(index=genes))
    adata.write_h5ad(tmp_path / "spots.h5ad")
    sig.to_csv(tmp_path / "sig.tsv", sep="\t")
    out = tmp_path / "out.h5ad"
    assert main(["deconvolve", "--bulk", str(tmp_path / "spots.h5ad"), "--signature",
                 str(tmp_path / "sig.tsv"), "--output", str(out), "--method", "simplex",
                 "--robust", "none", "--quiet"]) == 0
    back = anndata.read_h5ad(out)
    assert back.X is None and list(back.obs["region"]) == ["x"] * 12
    assert list(back.var_names) == genes
    np.testing.assert_allclose(back.obsm["fastdeconv_proportions"].to_numpy(), truth,
                               atol=1e-8)
    assert back.uns["fastdeconv"]["method"] == "simplex"
