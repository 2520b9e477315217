"""Tests of fastdeconv.inputs.counts: single-cell counts and labels, one reader for all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fastdeconv.inputs.counts import Counts, as_counts, as_labels
from fastdeconv.signature import build_signature
from fastdeconv.simulate import pseudobulk


def toy(seed=0, n_genes=12, n_cells=10):
    rng = np.random.default_rng(seed)
    x = rng.poisson(2.0, size=(n_genes, n_cells))
    x[:, 0] += 1  # no empty cell
    genes = [f"g{i}" for i in range(n_genes)]
    cells = [f"c{i}" for i in range(n_cells)]
    return x, genes, cells


def adata_of(x, genes, cells, **obs):
    anndata = pytest.importorskip("anndata")
    return anndata.AnnData(
        X=sp.csr_matrix(x.T.astype(np.float64)),
        obs=pd.DataFrame(obs, index=cells),
        var=pd.DataFrame(index=genes),
    )


# ------------------------------------------------------------------ counts ----
@pytest.mark.parametrize(
    "make, sparse",
    [
        (np.ascontiguousarray, False),
        (np.asfortranarray, False),
        (lambda x: x.tolist(), False),
        (sp.csr_array, True),
        (sp.csc_matrix, True),
        (sp.coo_array, True),
    ],
    ids=["C", "F", "list", "csr", "csc", "coo"],
)
def test_layouts_give_the_same_counts(make, sparse):
    x, _, _ = toy()
    c = as_counts(make(x))
    assert isinstance(c, Counts) and c.sparse == sparse
    assert (c.n_genes, c.n_cells) == x.shape
    assert c.genes.tolist() == [f"gene{i}" for i in range(12)]
    assert c.cells.tolist() == [f"cell{i}" for i in range(10)]
    assert not c.has_gene_names and not c.has_cell_names and c.obs is None
    if sparse:
        assert c.matrix.format in ("csr", "csc")
    np.testing.assert_array_equal(c.library_sizes(), x.sum(axis=0))


def test_csr_and_csc_are_read_in_place():
    x, _, _ = toy()
    for m in (sp.csr_array(x.astype(float)), sp.csc_array(x.astype(float))):
        assert as_counts(m).matrix is m


@pytest.mark.parametrize(
    "dtype, kept",
    [(np.float64, True), (np.float32, True), (np.int64, True), (np.int32, True),
     (np.uint8, False), (np.int16, False), (np.uint64, False)],
)
def test_dtypes_the_kernels_read_are_kept_others_become_float64(dtype, kept):
    x, _, _ = toy()
    for obj in (x.astype(dtype), sp.csr_array(x.astype(dtype))):
        c = as_counts(obj)
        assert c.matrix.dtype == (dtype if kept else np.float64)


def test_dataframe_names_and_sparse_columns():
    x, genes, cells = toy()
    df = pd.DataFrame(x, index=genes, columns=cells)
    c = as_counts(df)
    assert c.genes.tolist() == genes and c.cells.tolist() == cells
    assert c.has_gene_names and c.has_cell_names and not c.sparse
    sparse_df = df.astype(pd.SparseDtype("float64", 0.0))
    cs = as_counts(sparse_df)
    assert cs.sparse
    np.testing.assert_array_equal(cs.matrix.toarray(), x)
    mixed = sparse_df.copy()
    mixed[cells[0]] = df[cells[0]].astype(float)  # one dense column: read densely
    assert not as_counts(mixed).sparse


def test_gene_names_for_arrays_and_range_indexed_frames():
    x, genes, _ = toy()
    c = as_counts(x, gene_names=genes)
    assert c.genes.tolist() == genes and c.has_gene_names
    c = as_counts(pd.DataFrame(x), gene_names=genes)  # a RangeIndex is no names
    assert c.genes.tolist() == genes
    with pytest.raises(ValueError, match="has its own"):
        as_counts(pd.DataFrame(x, index=genes), gene_names=genes)
    with pytest.raises(ValueError, match="gene_names has 3 names but counts has 12 genes"):
        as_counts(x, gene_names=genes[:3])
    with pytest.raises(ValueError, match=r"duplicated gene name.*\['g1'\]\); pass duplicates="):
        as_counts(x, gene_names=["g1"] * 2 + genes[2:])


def test_numeric_gene_names_become_strings():
    x, _, _ = toy()
    c = as_counts(pd.DataFrame(x, index=np.arange(100, 112)))
    assert c.genes.tolist() == [str(i) for i in range(100, 112)]


def test_anndata_is_transposed_without_copy():
    x, genes, cells = toy()
    adata = adata_of(x, genes, cells, cell_type=["A"] * 5 + ["B"] * 5)
    c = as_counts(adata)
    assert c.matrix.format == "csc" and np.shares_memory(c.matrix.data, adata.X.data)
    assert c.genes.tolist() == genes and c.cells.tolist() == cells
    assert c.obs is adata.obs
    adata.layers["counts"] = adata.X.copy()
    adata.X = None
    assert as_counts(adata, layer="counts").n_genes == 12
    with pytest.raises(ValueError, match=r"layer 'raw' not found .*\['counts'\]"):
        as_counts(adata, layer="raw")
    with pytest.raises(ValueError, match="has no .X"):
        as_counts(adata)


@pytest.mark.parametrize(
    "obj, error, match",
    [
        ("counts.tsv", TypeError, "counts must be a genes x cells"),
        ({"a": 1}, TypeError, "counts must be a genes x cells"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "numeric"),
        (np.array([[True, False]]), TypeError, "numeric; got dtype bool"),
        (np.array([[1 + 2j, 0]]), TypeError, "numeric"),
        (np.array([[1, "a"]], dtype=object), TypeError, "numeric"),
        (np.ones(4), ValueError, "must be 2-D"),
        (np.ones((0, 3)), ValueError, r"counts is empty \(0 genes x 3 cells\)"),
        (sp.csr_array((3, 0)), ValueError, "counts is empty"),
    ],
)
def test_bad_counts(obj, error, match):
    with pytest.raises(error, match=match):
        as_counts(obj)


def test_layer_without_anndata():
    with pytest.raises(ValueError, match="layer= is only meaningful for AnnData"):
        as_counts(np.ones((2, 2)), layer="counts")


def test_numeric_object_arrays_are_read():
    c = as_counts(np.array([[1, 2.5], [3, 4]], dtype=object))
    assert c.matrix.dtype == np.float64


@pytest.mark.parametrize("sparse", [False, True])
def test_value_checks(sparse):
    def make(a):
        return as_counts(sp.csr_array(a) if sparse else a)

    with pytest.raises(ValueError, match="counts contain 2 NaN or infinite values"):
        make(np.array([[1.0, np.nan], [np.inf, 0.0]])).check_values()
    with pytest.raises(ValueError, match="negative values"):
        make(np.array([[1.0, -1.0]])).check_values()
    make(np.array([[1.0, 0.0]])).check_values()
    assert make(np.array([[1.0, 0.0]])).is_integer()
    assert not make(np.array([[1.5, 0.0]])).is_integer()
    assert make(np.array([[1, 0]])).is_integer()


@pytest.mark.parametrize(
    "make",
    [np.ascontiguousarray, np.asfortranarray, sp.csr_array, sp.csc_array,
     lambda x: np.repeat(x, 2, axis=1)[:, ::2]],
    ids=["C", "F", "csr", "csc", "strided"],
)
@pytest.mark.parametrize("n_jobs", [1, 3, None, -1, -2])
def test_group_sums_match_pandas_for_any_layout_and_threads(make, n_jobs):
    x, _, _ = toy(3, n_genes=30, n_cells=40)
    x = x.astype(np.float64)
    groups = np.random.default_rng(1).integers(0, 3, x.shape[1]).astype(np.int64)
    scale = 1e6 / x.sum(axis=0)
    sums = as_counts(make(x)).group_sums(groups, 3, scale, n_jobs=n_jobs)
    v = x * scale
    expected = {
        "count_sum": x, "count_sq": x * x, "norm_sum": v, "log_sum": np.log1p(v),
        "log_sq": np.log1p(v) ** 2, "nnz": (x != 0).astype(float),
    }
    for name, arr in expected.items():
        want = pd.DataFrame(arr.T).groupby(groups).sum().T.to_numpy()
        np.testing.assert_allclose(sums[name], want, rtol=1e-12, atol=1e-9, err_msg=name)


def test_group_sums_bad_n_jobs():
    c = as_counts(np.ones((3, 4)))
    with pytest.raises(ValueError, match="n_jobs"):
        c.group_sums(np.zeros(4, np.int64), 1, np.ones(4), n_jobs=0)
    with pytest.raises(TypeError, match="n_jobs"):
        c.group_sums(np.zeros(4, np.int64), 1, np.ones(4), n_jobs=1.5)


# ------------------------------------------------------------------ labels ----
@pytest.fixture
def named():
    x, genes, cells = toy()
    return as_counts(pd.DataFrame(x, index=genes, columns=cells))


LABELS = ["A", "B"] * 5


def test_sequences_are_read_in_order(named):
    for labels in (LABELS, np.array(LABELS), tuple(LABELS), pd.Series(LABELS),
                   np.array(LABELS)[:, None], pd.DataFrame({"type": LABELS})):
        out = as_labels(labels, named)
        assert out.tolist() == LABELS and out.dtype.kind == "U"


def test_non_string_labels_become_strings(named):
    assert as_labels(list(range(10)), named).tolist() == [str(i) for i in range(10)]


def test_series_indexed_by_cell_is_aligned(named):
    series = pd.Series(LABELS, index=named.cells).iloc[::-1]
    assert as_labels(series, named).tolist() == LABELS
    frame = series.to_frame("type")
    assert as_labels(frame, named).tolist() == LABELS
    assert as_labels(None, named) is None


def test_cell_ids_are_compared_as_strings():
    x, _, _ = toy()
    counts = as_counts(pd.DataFrame(x, columns=[str(i) for i in range(10)]))
    series = pd.Series(LABELS, index=np.arange(10)[::-1])  # int ids, reversed
    assert as_labels(series, counts).tolist() == LABELS[::-1]


def test_series_without_matching_ids(named):
    partial = pd.Series(LABELS, index=named.cells).iloc[2:]
    with pytest.raises(ValueError, match="lack 2 cells of counts .*have no label"):
        as_labels(partial, named)
    unrelated = pd.Series(LABELS, index=[f"x{i}" for i in range(10)])
    with pytest.raises(ValueError, match="match no cell of counts"):
        as_labels(unrelated, named)
    # counts without cell ids (an array): nothing to align with, read in order
    unnamed = as_counts(np.ones((3, 10)))
    assert as_labels(unrelated, unnamed).tolist() == LABELS
    dup = pd.Series(LABELS + ["A"], index=list(named.cells) + ["c0"])
    with pytest.raises(ValueError, match="duplicated cell ids"):
        as_labels(dup, named)


@pytest.mark.parametrize(
    "labels, error, match",
    [
        (LABELS[:-1], ValueError, "labels has 9 entries but counts has 10 cells"),
        (["A", None] * 5, ValueError, "5 cells have a missing label"),
        (pd.DataFrame({"a": LABELS, "b": LABELS}), ValueError, "single column"),
        (np.array(LABELS).reshape(2, 5), ValueError, "must be 1-D"),
        ("cell_type", TypeError, "a str names an .obs column of AnnData"),
    ],
)
def test_bad_labels(named, labels, error, match):
    with pytest.raises(error, match=match):
        as_labels(labels, named)


def test_label_key_without_anndata(named):
    with pytest.raises(ValueError, match="label_key= is only meaningful for AnnData"):
        as_labels(None, named, label_key="cell_type")


def test_anndata_obs_column_by_label_key_or_by_name():
    x, genes, cells = toy()
    adata = adata_of(x, genes, cells, cell_type=LABELS)
    c = as_counts(adata)
    assert as_labels(None, c, label_key="cell_type").tolist() == LABELS
    assert as_labels("cell_type", c).tolist() == LABELS
    with pytest.raises(ValueError, match=r"label_key='type' is not a column of .obs.*cell_type"):
        as_labels(None, c, label_key="type")
    with pytest.raises(ValueError, match=r"labels='type' is not a column of .obs"):
        as_labels("type", c)
    with pytest.raises(ValueError, match="not both"):
        as_labels(LABELS, c, label_key="cell_type")


# ------------------------------------------- the pipelines read the same way ----
@pytest.mark.parametrize(
    "counts, labels, error, match",
    [
        (np.ones(5), LABELS, ValueError, "must be 2-D"),
        (-np.ones((4, 10)), LABELS, ValueError, "negative values"),
        (np.full((4, 10), np.nan), LABELS, ValueError, "NaN or infinite"),
        (np.ones((4, 10)), LABELS[:3], ValueError, "labels has 3 entries"),
        (np.ones((4, 10)), "cell_type", TypeError, "a str names an .obs column"),
        ("counts.tsv", LABELS, TypeError, "counts must be a genes x cells"),
    ],
)
def test_build_signature_and_pseudobulk_reject_alike(counts, labels, error, match):
    with pytest.raises(error, match=match):
        build_signature(counts, labels)
    with pytest.raises(error, match=match):
        pseudobulk(counts, labels, n_samples=2)


def test_pseudobulk_names_unnamed_genes_as_before():
    x, _, _ = toy()
    pb = pseudobulk(x, LABELS, n_samples=2, cells_per_sample=5)
    assert pb.bulk.index[0] == "gene_00001"
    with pytest.raises(ValueError, match="labels are required"):
        pseudobulk(x, None, n_samples=2)


def test_group_sums_do_not_depend_on_the_number_of_threads():
    """The chunks are a fixed number, added in order: n_jobs changes no bit."""
    import scipy.sparse as sp

    from fastdeconv.inputs.counts import as_counts

    rng = np.random.default_rng(3)
    X = sp.random(400, 3000, density=0.2, format="csr", random_state=rng) * 50
    X.data = np.round(X.data) + 1
    c = as_counts(sp.csr_matrix(X))
    groups = rng.integers(0, 5, size=c.n_cells)
    scale = 1e6 / np.asarray(X.sum(axis=0)).ravel().clip(1)
    seen = []
    one = c.group_sums(groups, 5, scale, n_jobs=1, advance=seen.append)
    two = c.group_sums(groups, 5, scale, n_jobs=2)
    for name in one:
        assert np.array_equal(one[name], two[name]), name
    assert sum(seen) == c.n_cells
