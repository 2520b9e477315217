"""Tests of fastdeconv.signature: build_signature, the marker rule, clustering, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from fastdeconv.results import Result
from fastdeconv.signature import SignatureResult, build_signature, cluster_cells

TYPES = ["B", "Mono", "NK", "T"]


def planted(seed=0, n_genes=300, cells_per_type=(40, 30, 25, 35), n_markers=10, fold=15.0):
    """Counts (genes x cells DataFrame), labels, and the planted markers of each type."""
    rng = np.random.default_rng(seed)
    k = len(TYPES)
    base = rng.gamma(0.8, 2.0, size=(n_genes, 1)) * np.ones((1, k))
    marker_of = {}
    for t in range(k):
        rows = np.arange(t * n_markers, (t + 1) * n_markers)
        base[rows, t] *= fold
        marker_of[TYPES[t]] = [f"g{i}" for i in rows]
    labels = np.repeat(TYPES, cells_per_type)
    codes = np.repeat(np.arange(k), cells_per_type)
    lib = rng.uniform(0.5, 1.5, codes.size) * np.array([1.0, 3.0, 1.0, 1.0])[codes]
    counts = rng.poisson(base[:, codes] * lib[None, :])
    cells = [f"c{i}" for i in range(codes.size)]
    df = pd.DataFrame(counts, index=[f"g{i}" for i in range(n_genes)], columns=cells)
    perm = rng.permutation(codes.size)  # cells not sorted by type
    return df.iloc[:, perm], pd.Series(labels[perm], index=df.columns[perm]), marker_of


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def result(data):
    df, labels, _ = data
    return build_signature(df, labels, n_markers=10)


def test_planted_markers_recovered(data, result):
    _, _, marker_of = data
    assert list(result.signature.columns) == TYPES
    for t in TYPES:
        chosen = set(result.markers.loc[result.markers.cell_type == t, "gene"])
        assert chosen == set(marker_of[t])
    assert result.signature.shape == (40, 4)


def test_signature_is_mean_cpm_of_each_type(data, result):
    df, labels, _ = data
    cpm = df / df.sum(axis=0) * 1e6
    expected = cpm.T.groupby(labels.loc[df.columns].to_numpy()).mean().T
    pd.testing.assert_frame_equal(
        result.signature, expected.loc[result.signature.index, TYPES], check_names=False,
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        result.rna_content[TYPES], df.sum(axis=0).groupby(labels.loc[df.columns]).mean()[TYPES]
    )
    assert result.n_cells.to_dict() == {"B": 40, "Mono": 30, "NK": 25, "T": 35}


def test_pooled_average_is_normalised_sum(data, result):
    df, labels, _ = data
    res = build_signature(df, labels, n_markers=10, average="pooled")
    lab = labels.loc[df.columns].to_numpy()
    pooled = df.T.groupby(lab).sum().T / df.sum(axis=0).groupby(lab).sum() * 1e6
    pd.testing.assert_frame_equal(
        res.signature, pooled.loc[res.signature.index, TYPES], check_names=False, rtol=1e-12
    )
    pd.testing.assert_frame_equal(res.markers, result.markers)  # same markers either way
    with pytest.raises(ValueError, match="average must be one of"):
        build_signature(df, labels, average="median")


def test_marker_table_statistics_match_scipy(data, result):
    df, labels, _ = data
    lab = labels.loc[df.columns].to_numpy()
    logcpm = np.log1p(df / df.sum(axis=0) * 1e6)
    table = result.statistics.set_index(["gene", "cell_type"])
    for gene, t in [("g0", "B"), ("g15", "Mono"), ("g200", "T"), ("g35", "T")]:
        x = logcpm.loc[gene].to_numpy()
        ref = stats.ttest_ind(x[lab == t], x[lab != t], equal_var=False)
        row = table.loc[(gene, t)]
        assert row.statistic == pytest.approx(ref.statistic, rel=1e-9)
        assert row.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
        frac = (df.loc[gene].to_numpy()[lab == t] > 0).mean()
        assert row.frac_expressing == pytest.approx(frac)
    # FDR per type over all genes
    for t in TYPES:
        sub = result.statistics[result.statistics.cell_type == t]
        np.testing.assert_allclose(sub.fdr, stats.false_discovery_control(sub.pvalue), rtol=1e-12)


def test_marker_rule_is_respected(result):
    m = result.markers
    assert list(m.columns) == [
        "gene", "cell_type", "statistic", "pvalue", "fdr", "log_fc", "log_fc_next",
        "frac_expressing", "mean_expression", "rank",
    ]
    assert (m.fdr <= 0.05).all() and (m.log_fc >= 1.0).all() and (m.frac_expressing >= 0.1).all()
    for _, part in m.groupby("cell_type"):
        assert part["rank"].tolist() == list(range(1, len(part) + 1))
        assert np.all(np.diff(part.log_fc_next.to_numpy()) <= 0)  # ranked by specificity


def test_log_fold_changes(data, result):
    df, labels, _ = data
    cpm = df / df.sum(axis=0) * 1e6
    lab = labels.loc[df.columns].to_numpy()
    row = result.statistics.set_index(["gene", "cell_type"]).loc[("g12", "Mono")]
    inside = cpm.loc["g12"].to_numpy()[lab == "Mono"].mean()
    rest = cpm.loc["g12"].to_numpy()[lab != "Mono"].mean()
    others = max(cpm.loc["g12"].to_numpy()[lab == t].mean() for t in TYPES if t != "Mono")
    assert row.log_fc == pytest.approx(np.log2((inside + 1) / (rest + 1)))
    assert row.log_fc_next == pytest.approx(np.log2((inside + 1) / (others + 1)))


@pytest.mark.parametrize("kind", ["ndarray_C", "ndarray_F", "csr", "csc", "coo", "anndata", "float32"])
def test_input_layouts_agree(data, result, kind):
    df, labels, _ = data
    x = df.to_numpy()
    lab = labels.loc[df.columns].to_numpy()
    kwargs = {"gene_names": df.index, "n_markers": 10}
    if kind == "ndarray_C":
        res = build_signature(np.ascontiguousarray(x), lab, **kwargs)
    elif kind == "ndarray_F":
        res = build_signature(np.asfortranarray(x), lab, **kwargs)
    elif kind == "float32":
        res = build_signature(x.astype(np.float32), lab, **kwargs)
    elif kind in ("csr", "csc", "coo"):
        res = build_signature(getattr(sp, f"{kind}_array")(x), lab, **kwargs)
    else:
        anndata = pytest.importorskip("anndata")
        adata = anndata.AnnData(
            X=sp.csr_matrix(x.T.astype(np.float64)),
            obs=pd.DataFrame({"cell_type": lab}, index=df.columns),
            var=pd.DataFrame(index=df.index),
        )
        adata.layers["counts"] = adata.X.copy()
        adata.X = sp.csr_matrix(np.log1p(x.T))  # .X is not counts: the layer must be used
        res = build_signature(adata, label_key="cell_type", layer="counts", n_markers=10)
    pd.testing.assert_frame_equal(res.signature, result.signature, rtol=1e-6)
    pd.testing.assert_frame_equal(res.markers, result.markers, rtol=1e-5)


@pytest.mark.parametrize(
    "layout",
    [
        lambda x: sp.csc_array(x),
        lambda x: sp.csr_array(x),
        lambda x: sp.csr_array(x.astype(np.float32)),
        np.ascontiguousarray,
        np.asfortranarray,
    ],
    ids=["csc", "csr", "csr-float32", "C", "F"],
)
def test_threads_give_the_same_result(data, result, layout):
    df, labels, _ = data
    x = layout(df.to_numpy())
    for n_jobs in (1, 3, 500):
        res = build_signature(x, labels.loc[df.columns].to_numpy(), gene_names=df.index,
                              n_markers=10, n_jobs=n_jobs)
        pd.testing.assert_frame_equal(res.signature, result.signature, rtol=1e-6)
        pd.testing.assert_frame_equal(res.markers, result.markers, rtol=1e-5)
    with pytest.raises(ValueError, match="n_jobs"):
        build_signature(x, labels.loc[df.columns].to_numpy(), n_jobs=0)


@pytest.mark.parametrize("n_jobs", [None, -1, -2, -1000])
def test_n_jobs_all_cores_and_negative(data, result, n_jobs):
    # regression: n_jobs=-1 raised "n_jobs must be an integer >= 1" in build_signature
    df, labels, _ = data
    res = build_signature(df, labels, n_markers=10, n_jobs=n_jobs)
    pd.testing.assert_frame_equal(res.signature, result.signature, rtol=1e-12)
    pd.testing.assert_frame_equal(res.markers, result.markers, rtol=1e-12)
    clusters = cluster_cells(df, 4, seed=1, n_jobs=n_jobs)
    pd.testing.assert_series_equal(clusters, cluster_cells(df, 4, seed=1, n_jobs=1))


def test_n_jobs_of_the_wrong_type(data):
    df, labels, _ = data
    with pytest.raises(TypeError, match="n_jobs"):
        build_signature(df, labels, n_jobs="4")
    with pytest.raises(TypeError, match="n_jobs"):
        cluster_cells(df, 4, n_jobs=2.0)


@pytest.mark.parametrize("method", ["poisson", "nb"])
def test_likelihood_ratio_methods_find_planted_markers(data, method):
    df, labels, marker_of = data
    res = build_signature(df, labels, method=method, n_markers=10)
    assert res.method == method
    for t in TYPES:
        chosen = set(res.markers.loc[res.markers.cell_type == t, "gene"])
        assert len(chosen & set(marker_of[t])) >= 9


@pytest.mark.parametrize("rank_by", ["fold_change", "statistic"])
def test_other_rankings(data, rank_by):
    df, labels, _ = data
    res = build_signature(df, labels, n_markers=5, rank_by=rank_by)
    key = {"fold_change": "log_fc", "statistic": "statistic"}[rank_by]
    for _, part in res.markers.groupby("cell_type"):
        assert np.all(np.diff(part[key].to_numpy()) <= 0)


def test_auto_markers_minimise_condition_number(data):
    df, labels, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fewer than 100 markers pass
        res = build_signature(df, labels, n_markers="auto")
    kappas = res.condition_numbers
    assert res.n_markers == kappas.idxmin()
    assert res.condition_number == pytest.approx(kappas.min())
    assert res.condition_number == pytest.approx(np.linalg.cond(res.signature.to_numpy()))


def test_too_few_markers_warns_and_is_recorded(data):
    df, labels, _ = data
    with pytest.warns(UserWarning, match="fewer than 50 genes pass the marker rule"):
        res = build_signature(df, labels, n_markers=50, min_log_fc=2.0)
    assert res.notes and "fewer than 50" in res.notes[0]


def test_candidate_genes_restrict_markers(data):
    df, labels, marker_of = data
    allowed = [g for g in df.index if g not in marker_of["B"][:5]]
    with pytest.warns(UserWarning, match="for: B"):
        res = build_signature(df, labels, n_markers=10, candidate_genes=allowed)
    assert not set(res.signature.index) & set(marker_of["B"][:5])
    with pytest.raises(ValueError, match="none of candidate_genes"):
        build_signature(df, labels, candidate_genes=["nope"])


def test_cell_fractions_conversion(result):
    from fastdeconv.fractions import to_cell_fractions

    rna = pd.DataFrame([[0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 0.0]], columns=TYPES)
    cells = to_cell_fractions(rna, result)  # a SignatureResult supplies its RNA contents
    w = 1.0 / result.rna_content[TYPES].to_numpy()
    np.testing.assert_allclose(cells.iloc[0], w / w.sum())
    assert (cells.iloc[1] == 0).all()
    pd.testing.assert_frame_equal(cells, to_cell_fractions(rna, result.rna_content))


def test_signature_result_to_cell_fractions_is_deprecated_but_works(result):
    rna = pd.DataFrame([[0.1, 0.2, 0.3, 0.4]], columns=TYPES)
    with pytest.warns(DeprecationWarning, match=r"fastdeconv.to_cell_fractions\(proportions"):
        cells = result.to_cell_fractions(rna)
    from fastdeconv.fractions import to_cell_fractions

    pd.testing.assert_frame_equal(cells, to_cell_fractions(rna, result.rna_content))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="not types of this"):
        result.to_cell_fractions(pd.DataFrame({"X": [1.0]}))


def test_summary_write_and_frame(result, tmp_path):
    text = str(result)
    assert "4 cell types" in text and "Mono" in text
    result.write(tmp_path / "sig.tsv", markers_path=tmp_path / "markers.tsv")
    back = pd.read_csv(tmp_path / "sig.tsv", sep="\t", index_col=0)
    np.testing.assert_allclose(back.to_numpy(), result.signature.to_numpy(), rtol=1e-12)
    assert len(pd.read_csv(tmp_path / "markers.tsv", sep="\t")) == len(result.markers)
    assert result.to_frame() is not result.signature
    pd.testing.assert_frame_equal(result.to_frame(), result.signature)
    assert isinstance(result, SignatureResult) and isinstance(result, Result)
    assert str(result) == result.summary()


def test_plot_is_a_heatmap_of_the_markers(result, tmp_path):
    pytest.importorskip("matplotlib")
    fig = result.plot(tmp_path / "signature.png")
    assert (tmp_path / "signature.png").stat().st_size > 0
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == TYPES
    image = ax.images[0].get_array()
    assert image.shape == result.signature.shape
    # each gene (row) scaled to its own maximum across the types
    np.testing.assert_allclose(np.nanmax(image, axis=1), 1.0)


def test_signature_module_does_not_import_the_regression_pipeline():
    import subprocess
    import sys

    code = (
        "import sys, fastdeconv.signature; "
        "print(sorted(m for m in sys.modules if m.startswith('fastdeconv.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout
    for module in ("fastdeconv.regression", "fastdeconv.solvers", "fastdeconv.methods",
                   "fastdeconv.kernels.nnls"):
        assert f"'{module}'" not in loaded


# ----------------------------------------------------------------- clustering
def test_clustering_recovers_planted_types(data):
    df, labels, _ = data
    res = build_signature(df, n_clusters=4, n_markers=10, seed=3)
    clusters = res.clusters.loc[df.columns]
    table = pd.crosstab(clusters, labels.loc[df.columns])
    # each cluster is (almost purely) one type, each type one cluster
    assert table.max(axis=1).sum() >= 0.97 * len(clusters)
    assert sorted(table.idxmax(axis=1)) == TYPES
    assert sorted(res.signature.columns) == [f"cluster_{i}" for i in range(4)]
    assert res.clusters.value_counts().is_monotonic_decreasing
    assert "names are arbitrary" in res.summary()


def test_clustering_is_seeded(data):
    df, _, _ = data
    a = cluster_cells(sp.csr_array(df.to_numpy()), 4, seed=1)
    b = cluster_cells(sp.csr_array(df.to_numpy()), 4, seed=1)
    pd.testing.assert_series_equal(a, b)
    c = cluster_cells(df, 4, seed=1)  # dense path: same partition
    assert pd.crosstab(a.to_numpy(), c.to_numpy()).gt(0).sum(axis=1).eq(1).all()


@pytest.mark.parametrize(
    "k, error",
    [(1, ValueError), (0, ValueError), (66, ValueError), (2.5, TypeError), ("3", TypeError)],
)
def test_bad_n_clusters(data, k, error):
    # a wrong type is a TypeError (fastdeconv._checks); it was a ValueError before
    df, _, _ = data
    with pytest.raises(error, match="n_clusters"):
        build_signature(df, n_clusters=k)


# ----------------------------------------------------------------- bad input
def small():
    rng = np.random.default_rng(9)
    return rng.poisson(3.0, size=(20, 8)).astype(float), np.array(["a"] * 4 + ["b"] * 4)


@pytest.mark.parametrize(
    "mutate, kwargs, match",
    [
        (lambda x, y: (x, y[:-1]), {}, "labels has 7 entries but counts has 8 cells"),
        (lambda x, y: (x, np.array(["a"] * 7 + ["b"])), {}, r"at least 2 cells for the tests; too few: 'b' \(1 cell\)"),
        (lambda x, y: (x, np.array(["a"] * 8)), {}, "at least 2 cell types"),
        (lambda x, y: (np.where(np.arange(8) == 2, -1.0, x), y), {}, "negative values"),
        (lambda x, y: (x + 0.5, y), {"method": "nb"}, "not raw counts.*normalized="),
        (lambda x, y: (x + 0.5, y), {"method": "nb", "normalized": True},
         "likelihood-ratio test on raw counts.*method='t-test'"),
        (lambda x, y: (x + 0.5, y), {"method": "poisson", "normalized": True},
         "likelihood-ratio test on raw counts"),
        (lambda x, y: (np.where(np.arange(8) == 2, np.nan, x), y), {}, "NaN or infinite"),
        (lambda x, y: (x[:0], y), {}, "counts is empty"),
        (lambda x, y: (x, y), {"n_markers": 21}, "more markers per type than counts has genes"),
        (lambda x, y: (x, y), {"n_markers": 0}, "n_markers must be an integer"),
        (lambda x, y: (x, y), {"n_markers": "many"}, "positive integer or 'auto'"),
        (lambda x, y: (x, y), {"method": "wilcoxon"}, "method must be one of"),
        (lambda x, y: (x, y), {"rank_by": "magic"}, "rank_by must be one of"),
        (lambda x, y: (x, y), {"fdr": 2.0}, "fdr must be a finite number"),
        (lambda x, y: (x, y), {"min_frac": -0.1}, "min_frac must be a finite number"),
        (lambda x, y: (x, y), {"pseudocount": 0.0}, "pseudocount must be a finite number > 0"),
        (lambda x, y: (x, y), {"min_log_fc": float("nan")}, "min_log_fc must be a finite"),
        (lambda x, y: (x, y), {"normalization": "tpm"}, "normalization must be one of"),
        (lambda x, y: (x, y), {"n_clusters": 2}, "not both"),
        (lambda x, y: (x, y), {"label_key": "type"}, "only meaningful for AnnData"),
        (lambda x, y: (x, y), {"layer": "counts"}, "only meaningful for AnnData"),
        (lambda x, y: (x, None), {}, "no labels"),
        (lambda x, y: (x, np.array(["a", None] * 4, dtype=object)), {}, "missing label"),
        (lambda x, y: (np.where(np.arange(8) == 2, 0.0, x), y), {}, "no counts at all"),
        (lambda x, y: (x[0], y), {}, "must be 2-D"),
        (lambda x, y: (x, y), {"gene_names": ["g"] * 20}, "duplicated gene name.*duplicates='sum'"),
    ],
)
def test_bad_input_messages(mutate, kwargs, match):
    x, y = mutate(*small())
    with pytest.raises(ValueError, match=match):
        build_signature(x, y, **kwargs)


def test_bad_types():
    with pytest.raises(TypeError, match="counts must be"):
        build_signature("counts.tsv", ["a", "b"])
    with pytest.raises(TypeError, match="numeric"):
        build_signature(np.array([["a", "b"], ["c", "d"]]), ["x", "y"])


def test_label_series_must_cover_cells(data):
    df, labels, _ = data
    with pytest.raises(ValueError, match="lack 1 cells"):
        build_signature(df, labels.iloc[1:])


def test_anndata_errors(data):
    anndata = pytest.importorskip("anndata")
    df, labels, _ = data
    adata = anndata.AnnData(
        X=df.to_numpy().T.astype(float),
        obs=pd.DataFrame({"cell_type": labels.loc[df.columns].to_numpy()}, index=df.columns),
        var=pd.DataFrame(index=df.index),
    )
    with pytest.raises(ValueError, match="needs label_key=.*cell_type"):
        build_signature(adata)
    with pytest.raises(ValueError, match="not a column of .obs"):
        build_signature(adata, label_key="celltype")
    with pytest.raises(ValueError, match="layer 'raw' not found"):
        build_signature(adata, label_key="cell_type", layer="raw")
    with pytest.raises(ValueError, match="not both"):
        build_signature(adata, labels.to_numpy(), label_key="cell_type")
    res = build_signature(adata, label_key="cell_type", n_markers=10)
    assert sorted(res.signature.columns) == TYPES
    # the obs column may also be named by labels= (as pseudobulk accepts it)
    same = build_signature(adata, "cell_type", n_markers=10)
    pd.testing.assert_frame_equal(same.signature, res.signature)


def test_gene_weights_are_inverse_mean(result):
    w = result.gene_weights
    assert list(w.index) == list(result.signature.index)
    raw = 1.0 / (result.signature.mean(axis=1) + 1.0)
    np.testing.assert_allclose(w, raw / raw.mean())
    assert w.mean() == pytest.approx(1.0)
