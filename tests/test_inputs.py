"""Tests of fastdeconv.inputs: coercion, checks, gene matching, collinearity."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from fastdeconv.errors import InputProblem
from fastdeconv.inputs import (
    SCALES,
    as_expression_frame,
    check_expression,
    collinear_types,
    harmonize_genes,
    looks_log_scale,
    match_genes,
    read_expression,
    warn_if_collinear,
)
from fastdeconv.io import write_table


@pytest.fixture
def values():
    return np.random.default_rng(1).gamma(1.0, 100.0, size=(6, 3))


GENES = [f"G{i}" for i in range(6)]


# --- coercion ----------------------------------------------------------------


def test_dataframe_is_converted_to_float64_with_string_genes():
    df = pd.DataFrame({"s1": [1, 2], "s2": [3, 4]}, index=[10, 11])
    out = as_expression_frame(df, name="bulk")
    assert out.dtypes.tolist() == [np.float64, np.float64]
    assert list(out.index) == ["10", "11"]


def test_array_with_genes_and_columns(values):
    out = as_expression_frame(values, name="bulk", genes=GENES, columns=["a", "b", "c"])
    np.testing.assert_array_equal(out.to_numpy(), values)
    assert list(out.index) == GENES and list(out.columns) == ["a", "b", "c"]


def test_array_without_genes_uses_positions(values):
    out = as_expression_frame(values, name="bulk")
    assert list(out.index) == [str(i) for i in range(6)]


def test_one_dimensional_and_list_input(values):
    out = as_expression_frame(values[:, 0], name="bulk", genes=GENES)
    assert out.shape == (6, 1)
    out = as_expression_frame(values.tolist(), name="bulk", genes=GENES)
    assert out.shape == (6, 3)


def test_series_input(values):
    s = pd.Series(values[:, 0], index=GENES, name="s1")
    out = as_expression_frame(s, name="bulk")
    assert list(out.columns) == ["s1"] and out.shape == (6, 1)


def test_sparse_input(values):
    out = as_expression_frame(scipy.sparse.csr_matrix(values), name="bulk", genes=GENES)
    np.testing.assert_array_equal(out.to_numpy(), values)


def test_orient_columns_by_genes(values):
    out = as_expression_frame(values.T, name="bulk", genes=GENES, orient="columns_by_genes")
    np.testing.assert_array_equal(out.to_numpy(), values)
    df = pd.DataFrame(values.T, columns=GENES)
    out = as_expression_frame(df, name="bulk", orient="columns_by_genes")
    assert list(out.index) == GENES
    with pytest.raises(ValueError, match="orient"):
        as_expression_frame(values, name="bulk", orient="sideways")


def test_anndata_with_layer(values):
    anndata = pytest.importorskip("anndata")
    ad = anndata.AnnData(
        X=np.zeros((3, 6)),
        obs=pd.DataFrame(index=["s1", "s2", "s3"]),
        var=pd.DataFrame(index=GENES),
        layers={"counts": scipy.sparse.csr_matrix(values.T)},
    )
    out = as_expression_frame(ad, name="bulk", layer="counts")
    np.testing.assert_array_equal(out.to_numpy(), values)
    assert list(out.columns) == ["s1", "s2", "s3"] and list(out.index) == GENES
    assert (as_expression_frame(ad, name="bulk").to_numpy() == 0).all()
    with pytest.raises(ValueError, match=r"no layer 'tpm'.*counts"):
        as_expression_frame(ad, name="bulk", layer="tpm")


def test_h5ad_path(tmp_path, values):
    anndata = pytest.importorskip("anndata")
    ad = anndata.AnnData(
        X=values.T, obs=pd.DataFrame(index=["a", "b", "c"]), var=pd.DataFrame(index=GENES)
    )
    ad.write_h5ad(tmp_path / "x.h5ad")
    out = as_expression_frame(str(tmp_path / "x.h5ad"), name="bulk")
    np.testing.assert_allclose(out.to_numpy(), values)


def test_table_path(tmp_path, values):
    df = pd.DataFrame(values, index=GENES, columns=["a", "b", "c"])
    write_table(df, tmp_path / "bulk.csv.gz", index_label="gene")
    out = as_expression_frame(tmp_path / "bulk.csv.gz", name="bulk")
    pd.testing.assert_frame_equal(out, df, check_names=False)


def test_coercion_errors(values):
    with pytest.raises(ValueError, match="layer"):
        as_expression_frame(values, name="bulk", layer="counts")
    with pytest.raises(ValueError, match="5 gene names given for 6"):
        as_expression_frame(values, name="bulk", genes=GENES[:5])
    with pytest.raises(ValueError, match="2 column names given for 3"):
        as_expression_frame(values, name="bulk", columns=["a", "b"])
    with pytest.raises(TypeError, match="unsupported input type"):
        as_expression_frame({"a": 1}, name="bulk")
    with pytest.raises(TypeError, match="non-numeric columns"):
        as_expression_frame(pd.DataFrame({"gene": ["A"], "s": [1.0]}), name="bulk")
    with pytest.raises(ValueError, match="1-D or 2-D"):
        as_expression_frame(np.zeros((2, 2, 2)), name="bulk")
    with pytest.raises(FileNotFoundError):
        as_expression_frame("/nonexistent/bulk.tsv", name="bulk")


# --- checks ------------------------------------------------------------------


def frame(values):
    return pd.DataFrame(values, index=GENES, columns=["a", "b", "c"])


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_non_finite_names_first_genes_and_samples(values, bad, word):
    values[2, 1] = bad
    values[4, 2] = bad
    with pytest.raises(ValueError, match=rf"{word}.*\['G2', 'G4'\].*\['b', 'c'\]"):
        check_expression(frame(values), name="bulk")


def test_negative_values(values):
    values[3, 0] = -0.5
    with pytest.raises(ValueError, match=r"negative.*\['G3'\].*\['a'\]"):
        check_expression(frame(values), name="bulk")


def test_log_scale_detected_with_guidance(values):
    logged = frame(np.log2(values + 1))
    with pytest.raises(ValueError, match=r"log-transformed.*scale='log2'.*scale='linear'"):
        check_expression(logged, name="bulk")
    check_expression(logged, name="bulk", allow_log=True)


def test_small_integer_counts_are_not_taken_for_logs():
    counts = pd.DataFrame({"s": [0.0, 3.0, 12.0]}, index=["A", "B", "C"])
    check_expression(counts, name="bulk")
    assert looks_log_scale(np.log2([3.0, 300.0]))
    assert not looks_log_scale([0.5, 120.0])
    assert not looks_log_scale([])


def test_empty():
    with pytest.raises(ValueError, match="empty"):
        check_expression(pd.DataFrame(index=["A"]), name="bulk")


def test_linear_data_pass(values):
    check_expression(frame(values), name="bulk")


# --- gene names --------------------------------------------------------------


def test_case_insensitive_and_ensembl_version():
    df = pd.DataFrame({"s": [1.0, 2.0, 3.0]}, index=["ENSG00000010610.12", "Cd4", "ENSMUSG00000023274.3"])
    out = harmonize_genes(df, name="bulk", case_insensitive=True, strip_version=True)
    assert list(out.index) == ["ENSG00000010610", "CD4", "ENSMUSG00000023274"]
    assert list(harmonize_genes(df, name="bulk").index) == list(df.index)


def test_duplicates_raise_or_sum():
    df = pd.DataFrame({"s": [1.0, 2.0, 4.0, 8.0]}, index=["A", "B", "A", "C"])
    with pytest.raises(ValueError, match=r"1 duplicated gene name.*\['A'\].*duplicates='sum'"):
        harmonize_genes(df, name="bulk")
    out = harmonize_genes(df, name="bulk", duplicates="sum")
    assert out["s"].to_dict() == {"A": 5.0, "B": 2.0, "C": 8.0}
    with pytest.raises(ValueError, match="duplicates must be"):
        harmonize_genes(df, name="bulk", duplicates="first")


def test_duplicates_created_by_case_folding():
    df = pd.DataFrame({"s": [1.0, 2.0]}, index=["cd4", "CD4"])
    with pytest.raises(ValueError, match="duplicated"):
        harmonize_genes(df, name="bulk", case_insensitive=True)


def _pair(n_sig, n_bulk_common, k=3):
    genes = [f"g{i}" for i in range(n_sig)]
    sig = pd.DataFrame(np.ones((n_sig, k)), index=genes, columns=[f"t{j}" for j in range(k)])
    bulk = pd.DataFrame(np.ones((n_bulk_common + 2, 1)), index=genes[:n_bulk_common] + ["x", "y"])
    return bulk, sig


def test_match_reports_missing_genes():
    bulk, sig = _pair(100, 90)
    b, s, match = match_genes(bulk, sig)
    assert match.n_matched == 90 and b.shape[0] == 90 and list(b.index) == list(s.index)
    assert match.missing == [f"g{i}" for i in range(90, 100)]
    assert "90 of 100 signature genes" in str(match) and "missing 10" in str(match)


def test_no_overlap():
    bulk = pd.DataFrame(np.ones((3, 1)), index=["a", "b", "c"])
    sig = pd.DataFrame(np.ones((3, 2)), index=["A", "B", "C"])
    with pytest.raises(ValueError, match="share no gene.*case_insensitive"):
        match_genes(bulk, sig)


def test_too_few_genes_absolute():
    bulk, sig = _pair(60, 40)
    with pytest.raises(ValueError, match=r"too few common genes.*max\(2k, 50\) = 50"):
        match_genes(bulk, sig)
    _, _, match = match_genes(bulk, sig, min_genes=30)
    assert match.n_matched == 40
    with pytest.raises(ValueError, match="at least 45 were required.*pass min_genes=40"):
        match_genes(bulk, sig, min_genes=45)


def test_too_few_genes_relative_to_signature():
    bulk, sig = _pair(400, 150)
    with pytest.raises(ValueError, match="half of the signature"):
        match_genes(bulk, sig)


def test_many_types_need_two_genes_each():
    bulk, sig = _pair(60, 55, k=30)
    with pytest.raises(ValueError, match=r"max\(2k, 50\) = 60"):
        match_genes(bulk, sig)


# --- collinearity ------------------------------------------------------------


def test_collinear_types_found():
    rng = np.random.default_rng(3)
    s = rng.gamma(1.0, 100.0, size=(300, 4))
    near = 0.5 * s[:, 1] + 0.5 * s[:, 2] + rng.normal(0, 1e-3, 300)
    sig = pd.DataFrame(np.column_stack([s, near]), columns=list("ABCDE"))
    cond, types = collinear_types(sig)
    assert cond > 1e4
    assert sorted(types) == ["B", "C", "E"]
    with pytest.warns(UserWarning, match=r"nearly collinear cell types.*'E'"):
        warn_if_collinear(sig)


def test_duplicate_profile_and_zero_column():
    rng = np.random.default_rng(4)
    s = rng.gamma(1.0, 100.0, size=(200, 3))
    sig = pd.DataFrame(np.column_stack([s, 3.0 * s[:, 0]]), columns=["A", "B", "C", "A2"])
    cond, types = collinear_types(sig)
    assert np.isinf(cond) or cond > 1e12
    assert set(types) == {"A", "A2"}
    sig0 = pd.DataFrame(np.column_stack([s, np.zeros(200)]), columns=["A", "B", "C", "Z"])
    assert collinear_types(sig0) == (np.inf, ["Z"])


def test_well_conditioned_does_not_warn():
    sig = pd.DataFrame(np.random.default_rng(5).gamma(1.0, 100.0, size=(200, 5)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cond = warn_if_collinear(sig)
    # the condition number matches numpy's on the unit-norm columns
    u = sig.to_numpy() / np.linalg.norm(sig.to_numpy(), axis=0)
    assert cond == pytest.approx(np.linalg.cond(u), rel=1e-10)


# --- issue 13: the log-scale check on real tables -----------------------------

_LOG_FORMS = {
    "log2": lambda x: np.log2(np.maximum(x, 1e-3)),
    "log2(x + 1)": lambda x: np.log2(x + 1),
    "ln(x + 1)": np.log1p,
    "log2(CPM + 1)": lambda x: np.log2(1e6 * x / x.sum(axis=0) + 1),
    "ln(CP10k + 1)": lambda x: np.log1p(1e4 * x / x.sum(axis=0)),
}
_LINEAR_FORMS = {
    "as given": lambda x: x,
    "profile (columns sum to 1)": lambda x: x / x.sum(axis=0),
    "percent": lambda x: 100 * x / x.sum(axis=0),
    "per ten thousand": lambda x: 1e4 * x / x.sum(axis=0),
    "CPM": lambda x: 1e6 * x / x.sum(axis=0),
    "scaled to a maximum of 1": lambda x: x / x.max(),
}


def _pieces(x, rng):
    """The whole table and the worse cases of it: gene subsets and single columns."""
    yield x
    yield x[:, :1]
    for n in (100, 1000):
        if n < x.shape[0]:
            yield x[np.sort(rng.choice(x.shape[0], n, replace=False))]


def test_normalised_profiles_pass_and_log_tables_of_every_dataset_are_caught(data_dir):
    from fastdeconv.io import read_table

    rng = np.random.default_rng(13)
    tables = [p for pattern in ("mixture", "reference*", "pure")
              for p in sorted(data_dir.glob(f"*/{pattern}.tsv.gz"))]
    assert len(tables) >= 8
    for path in tables:
        x = read_table(path).to_numpy(dtype=np.float64)
        for form, log in _LOG_FORMS.items():
            logged = log(x)
            for piece in _pieces(logged, rng):
                assert looks_log_scale(piece), (path.parent.name, path.name, form, piece.shape)
            with pytest.raises(ValueError, match="log"):
                check_expression(pd.DataFrame(logged), name="bulk")
        for form, linear in _LINEAR_FORMS.items():
            values = linear(x)
            assert not looks_log_scale(values), (path.parent.name, path.name, form)
            check_expression(pd.DataFrame(values), name="signature")
        profile = x / x.sum(axis=0)
        for piece in _pieces(profile, rng):
            assert not looks_log_scale(piece), (path.parent.name, path.name, piece.shape)


def test_log_scale_check_on_simulated_rnaseq():
    # whole-transcriptome TPM: many genes near zero, a few very high
    rng = np.random.default_rng(7)
    mu = rng.normal(0.0, 2.5, size=20_000)
    tpm = np.exp(mu[:, None] + rng.normal(0.0, 0.5, (20_000, 8)))
    tpm[rng.random(tpm.shape) < 0.35] = 0.0
    tpm = 1e6 * tpm / tpm.sum(axis=0)
    for form, log in _LOG_FORMS.items():
        for piece in _pieces(log(tpm), rng):
            assert looks_log_scale(piece), (form, piece.shape)
    for form, linear in _LINEAR_FORMS.items():
        assert not looks_log_scale(linear(tpm)), form


def test_log_message_names_the_remedies_of_the_caller():
    logged = pd.DataFrame(np.log2(np.random.default_rng(2).gamma(1.0, 300.0, (50, 3)) + 1))
    with pytest.raises(InputProblem) as info:
        check_expression(logged, name="signature", scale_option="signature_scale",
                         scales=SCALES)
    assert [f.value for f in info.value.fixes] == ["log2", "log2p1", "log1p", "linear"]
    text = info.value.render({"signature_scale": "--signature-scale"})
    assert "--signature-scale log2 for log2(x) values" in text
    assert "--signature-scale linear" in text and "--scale" not in text.replace("-scale", "")
    # a caller without the option is told in words
    with pytest.raises(ValueError) as info:
        check_expression(logged, name="bulk", scale_option=None)
    assert not isinstance(info.value, InputProblem) and "un-log it" in str(info.value)


def test_nan_message_offers_dropping_only_when_the_caller_can():
    df = pd.DataFrame({"s": [1.0, np.nan, 300.0]}, index=["A", "B", "C"])
    with pytest.raises(InputProblem, match=r"NaN.*\['B'\].*missing='drop'"):
        check_expression(df, name="bulk", missing_option="missing")
    with pytest.raises(ValueError, match="Remove these genes") as info:
        check_expression(df, name="bulk")
    assert not isinstance(info.value, InputProblem)


def test_missing_drop_and_transpose_in_read_expression():
    df = pd.DataFrame({"A": [1.0, 2.0], "B": [np.nan, 4.0], "C": [5.0, 6.0]}, index=["s1", "s2"])
    out = read_expression(df, name="bulk", transpose=True, missing="drop")
    assert list(out.index) == ["A", "C"] and list(out.columns) == ["s1", "s2"]
    with pytest.raises(ValueError, match="missing must be"):
        read_expression(df, name="bulk", missing="fill")


def test_duplicates_message_without_the_option_says_remove():
    df = pd.DataFrame({"w": [1.0, 2.0]}, index=["A", "A"])
    with pytest.raises(ValueError, match="remove the duplicated rows") as info:
        harmonize_genes(df, name="weights", duplicates_option=None)
    assert not isinstance(info.value, InputProblem)


def test_gene_mismatch_names_the_renaming_that_helps():
    sig = pd.DataFrame(np.ones((60, 2)), index=[f"ENSG{i:011d}" for i in range(60)])
    bulk = pd.DataFrame(np.ones((60, 1)), index=[f"ensg{i:011d}.7" for i in range(60)])
    with pytest.raises(InputProblem) as info:
        match_genes(bulk, sig)
    assert info.value.keywords() == ["case_insensitive", "strip_version"]
    assert "matches 60 genes" in str(info.value)


def test_messages_keep_braces_in_gene_names():
    df = pd.DataFrame({"s": [1.0, 2.0]}, index=["{0}", "{0}"])
    with pytest.raises(InputProblem, match=r"\['\{0\}'\]"):
        harmonize_genes(df, name="bulk")
