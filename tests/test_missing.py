"""Cell types missing from the reference (fastdeconv.missing): planted cases as oracles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hypergeom

from fastdeconv.missing import (
    canonical_markers,
    fit_unexplained,
    marker_enrichment,
    residual_report,
    unexplained_fraction,
)

MARKERS = ["PPBP", "PF4", "GP9", "ITGA2B", "GP1BB", "TUBB1"]  # canonical platelet markers


def planted(seed=0, n=400, k=4, m=20, max_missing=0.4, missing_genes=MARKERS):
    """Signature of k types; bulk = S p + (missing profile) f, everything normalised to sum 1.

    The missing profile is a gamma profile like the others plus high expression of
    ``missing_genes`` (absent from every reference type, 40 times the mean gene).
    """
    rng = np.random.default_rng(seed)
    genes = list(missing_genes) + [f"g{i}" for i in range(n - len(missing_genes))]
    full = rng.gamma(0.5, 100.0, size=(n, k + 1))
    full[: len(missing_genes), :k] = 0.0
    full[: len(missing_genes), k] = 2000.0  # the gamma profiles' mean is 50
    full /= full.sum(axis=0)
    f = rng.uniform(0.0, max_missing, m)
    P = rng.dirichlet(np.ones(k), size=m).T * (1 - f)
    bulk = full[:, :k] @ P + np.outer(full[:, k], f)
    types = [f"T{i}" for i in range(k)]
    sig = pd.DataFrame(1e6 * full[:, :k], index=genes, columns=types)
    samples = [f"s{j}" for j in range(m)]
    return sig, pd.DataFrame(1e6 * bulk, index=genes, columns=samples), f, P, full[:, k]


def test_planted_fraction_is_recovered_exactly():
    sig, bulk, f, P, profile = planted()
    res = unexplained_fraction(sig, bulk, robust=None, tol=1e-8, max_iter=3000)
    assert res.model == "joint" and res.converged
    np.testing.assert_allclose(res.fraction.to_numpy(), f, atol=2e-3)
    np.testing.assert_allclose(res.proportions.to_numpy().T, P, atol=2e-3)
    assert np.corrcoef(res.missing_profile, profile)[0, 1] > 0.999


def test_planted_fraction_robust_default_is_close():
    sig, bulk, f, _, _ = planted(seed=1)
    res = unexplained_fraction(sig, bulk)
    np.testing.assert_allclose(res.fraction.to_numpy(), f, atol=0.02)


def test_per_sample_model_misses_what_the_joint_model_finds():
    # the reason for the joint model: EPIC's 1 - sum(p) on all genes under-reads
    sig, bulk, f, _, _ = planted(seed=2)
    per = unexplained_fraction(sig, bulk, model="per-sample", robust=None).fraction.to_numpy()
    joint = unexplained_fraction(sig, bulk, robust=None, tol=1e-7).fraction.to_numpy()
    assert np.abs(joint - f).max() < np.abs(per - f).max()


def test_nothing_missing_gives_zero():
    sig, bulk, _, _, _ = planted(seed=3, max_missing=0.0)
    for robust in ("huber", None):
        res = unexplained_fraction(sig, bulk, robust=robust)
        assert res.fraction.max() < 1e-6
        np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0, atol=1e-6)


def test_scale_invariance():
    sig, bulk, _, _, _ = planted(seed=4)
    a = unexplained_fraction(sig, bulk).fraction
    b = unexplained_fraction(sig * 3.0, bulk * 7.0).fraction
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_per_sample_model_matches_simplex_le_oracle():
    # KKT/oracle: the per-sample model is the simplex_le fit on normalised columns (scipy SLSQP)
    from scipy.optimize import minimize

    sig, bulk, _, _, _ = planted(seed=5, m=3)
    S = sig.to_numpy() / sig.to_numpy().sum(axis=0)
    res = unexplained_fraction(sig, bulk, model="per-sample", robust=None)
    for j in range(3):
        b = bulk.iloc[:, j].to_numpy() / bulk.iloc[:, j].sum()
        opt = minimize(lambda x: np.sum((S @ x - b) ** 2) * 1e4, np.full(4, 0.2),
                       jac=lambda x: 2e4 * S.T @ (S @ x - b), method="SLSQP",
                       bounds=[(0, None)] * 4,
                       constraints=[{"type": "ineq", "fun": lambda x: 1 - x.sum()}],
                       options={"ftol": 1e-14, "maxiter": 500})
        assert res.fraction.iloc[j] == pytest.approx(1 - opt.x.sum(), abs=1e-5)


def test_few_samples_fall_back_with_a_note():
    sig, bulk, _, _, _ = planted(seed=6, m=2)
    res = unexplained_fraction(sig, bulk)
    assert res.model == "per-sample"
    assert any("per-sample" in n for n in res.notes)
    with pytest.raises(ValueError, match="model='per-sample'"):
        unexplained_fraction(sig, bulk.iloc[:, :1], model="joint")


def test_summary_and_frame():
    sig, bulk, _, _, profile = planted(seed=7)
    res = unexplained_fraction(sig, bulk)
    text = res.summary()
    assert "Unexplained RNA share" in text and "Missing profile" in text
    assert res.to_frame().columns[-1] == "unexplained"
    # the missing profile is the planted one, per million
    assert res.missing_profile.sum() == pytest.approx(1e6)
    assert np.corrcoef(res.missing_profile, profile)[0, 1] > 0.99


def test_residual_report_ranks_planted_genes_and_suggests_the_type():
    sig, bulk, _, P, _ = planted(seed=8)
    # the pipeline's fit ignores the missing type: proportions renormalised to sum 1
    rep = residual_report(sig, bulk, pd.DataFrame((P / P.sum(axis=0)).T, index=bulk.columns,
                                                  columns=sig.columns), top=20)
    assert set(MARKERS) <= set(rep.genes.index[:20])
    assert rep.genes.loc[MARKERS, "frac_under"].min() > 0.5
    assert rep.genes.loc[MARKERS, "absent_in_signature"].all()
    assert rep.suggestion == "Platelets"
    row = rep.candidates.loc["Platelets"]
    assert row["overlap"] == 6 and set(row["genes"].split(",")) == set(MARKERS)
    # the p-value is the hypergeometric tail (oracle: scipy)
    assert row["p_value"] == pytest.approx(hypergeom.sf(5, len(rep.genes), 6, rep.top))
    assert "Suggested missing cell type: Platelets" in rep.summary()


def test_residual_report_user_markers_and_coefficient_forms():
    sig, bulk, _, P, _ = planted(seed=9)
    mine = {"Megakaryocyte-like": MARKERS[:4], "Other": ["g1", "g2", "g3"]}
    rep = residual_report(sig, bulk, P, top=20, markers=mine, canonical=False)
    assert rep.suggestion == "Megakaryocyte-like"
    assert set(rep.candidates["source"]) == {"user"}
    # samples x types, types x samples and a scaled copy give the same table
    rep2 = residual_report(sig, bulk, P.T * 5.0, top=20, markers=mine, canonical=False)
    pd.testing.assert_frame_equal(rep.genes, rep2.genes)


def test_no_missing_type_no_suggestion():
    sig, bulk, _, P, _ = planted(seed=10, max_missing=0.0)
    rep = residual_report(sig, bulk, P)
    assert rep.suggestion is None
    assert "no suggestion" in rep.summary()


def test_marker_enrichment_oracle():
    universe = [f"g{i}" for i in range(500)]
    table = marker_enrichment(["g0", "g1", "g2", "g3", "g4"], universe,
                              {"A": (["g0", "g1", "g100"], "x"), "B": (["g400", "G1"], "y"),
                               "C": (["nothere"], "z")})
    assert "C" not in table.index  # no marker in the universe
    assert table.loc["A", "p_value"] == pytest.approx(hypergeom.sf(1, 500, 3, 5))
    assert table.loc["B", "genes"] == "g1"  # case-insensitive match, the universe's spelling
    assert list(table.index) == ["A", "B"]


def test_canonical_table():
    markers = canonical_markers()
    assert len(markers) >= 20
    for cell_type in ("Monocytes", "Platelets", "Erythrocytes", "Hepatocytes", "Neurons",
                      "Astrocytes", "Fibroblasts", "Endothelial cells", "Epithelial cells",
                      "Myocytes"):
        assert 3 <= len(markers[cell_type]) <= 8
    genes = [g for v in markers.values() for g in v]
    assert len(genes) == len(set(genes))  # each marker under one type only
    assert all(g == g.upper() and " " not in g for g in genes)


def test_array_entry_points_match_the_tables():
    sig, bulk, _, _, _ = planted(seed=11)
    fit = fit_unexplained(sig.to_numpy(), bulk.to_numpy())
    res = unexplained_fraction(sig, bulk)
    np.testing.assert_allclose(fit.fraction, res.fraction.to_numpy())


@pytest.mark.parametrize(
    ("kwargs", "error", "keyword"),
    [
        (dict(robust="l1"), ValueError, "robust"),
        (dict(model="rank2"), ValueError, "model"),
        (dict(max_iter=0), ValueError, "max_iter"),
        (dict(tol=-1.0), ValueError, "tol"),
        (dict(genes="markers"), TypeError, "genes"),
        (dict(genes=["nope1", "nope2"]), ValueError, "genes"),
    ],
)
def test_unexplained_bad_options_name_the_keyword(kwargs, error, keyword):
    sig, bulk, _, _, _ = planted(seed=12, m=4)
    with pytest.raises(error, match=keyword):
        unexplained_fraction(sig, bulk, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "keyword"),
    [
        (dict(top=0), ValueError, "top"),
        (dict(markers=["PF4"]), TypeError, "markers"),
        (dict(markers={"X": "PF4"}), TypeError, "markers"),
        (dict(canonical="yes"), TypeError, "canonical"),
        (dict(alpha=2.0), ValueError, "alpha"),
    ],
)
def test_report_bad_options_name_the_keyword(kwargs, error, keyword):
    sig, bulk, _, P, _ = planted(seed=13, m=4)
    with pytest.raises(error, match=keyword):
        residual_report(sig, bulk, P, **kwargs)


def test_report_bad_coefficients_name_the_keyword():
    sig, bulk, _, P, _ = planted(seed=14, m=4)
    with pytest.raises(ValueError, match="proportions_or_coefficients"):
        residual_report(sig, bulk, P[:2])
    with pytest.raises(ValueError, match="proportions_or_coefficients"):
        residual_report(sig, bulk, pd.DataFrame(P.T, columns=["a", "b", "c", "d"]))
    bad = P.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="proportions_or_coefficients"):
        residual_report(sig, bulk, bad)


def test_zero_signature_column_is_refused():
    sig, bulk, _, _, _ = planted(seed=15, m=4)
    sig["T0"] = 0.0
    with pytest.raises(ValueError, match="T0"):
        unexplained_fraction(sig, bulk)


# --- through the pipeline and the command line -----------------------------------------


def test_deconvolve_unexplained_and_report():
    import fastdeconv

    sig, bulk, f, P, _ = planted(seed=2)
    res = fastdeconv.deconvolve(bulk, sig, genes="all", unexplained=True, residual_report=True)
    assert list(res.proportions.columns) == list(sig.columns) + ["unexplained"]
    np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(res.proportions["unexplained"], f, atol=0.03)
    # the types keep the method's split of the explained part
    explained = res.proportions[sig.columns].div(1 - res.proportions["unexplained"], axis=0)
    plain = fastdeconv.deconvolve(bulk, sig, genes="all").proportions
    np.testing.assert_allclose(explained.to_numpy(), plain.to_numpy(), atol=1e-9)
    assert res.options["unexplained"] == "joint"
    assert res.residual_report.suggestion == "Platelets"
    assert set(MARKERS[:3]) <= set(res.residual_report.genes.index[:10])
    with pytest.raises(ValueError, match="reports unexplained already"):
        fastdeconv.deconvolve(bulk, sig, method="simplex_le", unexplained=True)
    with pytest.raises(ValueError, match="residual_report= has no option 'tops'"):
        fastdeconv.deconvolve(bulk, sig, residual_report={"tops": 5})


def test_cli_unexplained_and_residual_report(tmp_path, capsys):
    from fastdeconv.cli import main
    from fastdeconv.io import read_table

    sig, bulk, f, _, _ = planted(seed=3)
    sig.to_csv(tmp_path / "sig.tsv", sep="\t")
    bulk.to_csv(tmp_path / "bulk.tsv", sep="\t")
    base = ["deconvolve", "--bulk", str(tmp_path / "bulk.tsv"), "--signature",
            str(tmp_path / "sig.tsv"), "--output", str(tmp_path / "p.tsv"), "--genes", "all"]
    assert main([*base, "--unexplained", "--residual-report", str(tmp_path / "rep.tsv")]) == 0
    assert "Platelets" in capsys.readouterr().out
    props = read_table(tmp_path / "p.tsv")
    np.testing.assert_allclose(props["unexplained"], f, atol=0.03)
    genes = read_table(tmp_path / "rep.tsv", numeric=False)
    assert genes.index[0] in MARKERS
    assert "Platelets" in read_table(tmp_path / "rep.candidates.tsv", numeric=False).index
    cells = ["--reference-counts", "c.tsv", "--labels", "l.tsv", "--method", "bayes"]
    assert main(["deconvolve", "--bulk", "b.tsv", *cells, "--output", str(tmp_path / "q.tsv"),
                 "--unexplained"]) == 1
    assert "--unexplained is for the regression methods" in capsys.readouterr().err
