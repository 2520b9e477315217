"""Tests of fastdeconv.hierarchical: lineages, the lineage map, the two-level fit.

Oracles: planted mixtures (exact recovery without noise; against the flat fit
with noise), a naive silhouette, hand-computed combinations of fixed level
answers, and the flat fit that a one-type-per-lineage hierarchy must equal.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import fastdeconv
from fastdeconv.hierarchical import (
    _profile_distances,
    _silhouette,
    check_hierarchy,
    fit_hierarchical,
    lineages,
    read_hierarchy,
)

TYPES = ["T1", "T2", "B", "M", "N"]
SIBLINGS = {"T1": "T", "T2": "T", "B": "B", "M": "M", "N": "N"}
PLAIN = dict(method="nnls", robust=None, background=False)


def siblings_data(seed=0, n_genes=2000, n_samples=40, noise=0.0, sibling_sd=0.15):
    """Two near-collinear subtypes T1, T2 (Pearson r about 0.98) beside three distinct types.

    Profiles are log-normal (a few genes high, most low, as in RNA-seq), so a
    whole-transcriptome signature (marker selection applies); bulk = S @ P
    times log-normal noise of ``noise`` on the log scale.
    """
    rng = np.random.default_rng(seed)
    base = rng.lognormal(0.0, 1.5, size=(n_genes, 1)) * rng.lognormal(0.0, 0.7, size=(n_genes, 4))
    t = base[:, 0]
    sig = np.column_stack([t * rng.lognormal(0, sibling_sd, n_genes),
                           t * rng.lognormal(0, sibling_sd, n_genes), base[:, 1:]])
    props = rng.dirichlet(np.ones(len(TYPES)), size=n_samples)
    bulk = sig @ props.T
    if noise:
        bulk = bulk * rng.lognormal(0.0, noise, size=bulk.shape)
    genes = [f"g{i}" for i in range(n_genes)]
    samples = [f"s{j}" for j in range(n_samples)]
    return (pd.DataFrame(sig, index=genes, columns=TYPES),
            pd.DataFrame(bulk, index=genes, columns=samples),
            pd.DataFrame(props, index=samples, columns=TYPES))


def default_level_fit(method="nnls", *, n_markers=100, min_fold_change=2.0, **options):
    """A level fit of deconvolve calls, genes chosen by the pipeline's own rule (an oracle)."""
    from fastdeconv.regression import _choose_genes

    if "genes" in options:
        raise TypeError("default_level_fit() takes no genes=")
    options.setdefault("progress", False)

    def fit(sig, bulk, markers, genes):
        used = _choose_genes(markers, genes, n_markers, min_fold_change)
        return fastdeconv.deconvolve(bulk, sig, method, genes=used, **options).proportions

    return fit



def flat(sig, bulk, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the siblings are nearly collinear: warned about
        options.setdefault("method", "nnls")  # the hierarchy's mechanics, on exact solves
        return fastdeconv.deconvolve(bulk, sig, progress=False, **options).proportions


def hierarchical(sig, bulk, hierarchy=SIBLINGS, options=PLAIN, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_hierarchical(sig, bulk, hierarchy, default_level_fit(**options), **kw)


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


# --- planted mixtures ----------------------------------------------------------


def test_siblings_are_near_collinear():
    sig, _, _ = siblings_data()
    assert 0.97 < np.corrcoef(sig["T1"], sig["T2"])[0, 1] < 0.99


@pytest.mark.parametrize("robust", [None, "huber"])
def test_exact_mixture_recovers_lineages_and_subtypes(robust):
    sig, bulk, props = siblings_data(n_samples=12)
    res = hierarchical(sig, bulk, options=dict(robust=robust, background=False))
    np.testing.assert_allclose(res.proportions[TYPES], props, atol=1e-6)
    np.testing.assert_allclose(res.lineage_proportions["T"], props[["T1", "T2"]].sum(axis=1),
                               atol=1e-6)
    np.testing.assert_allclose(res.lineage_proportions[["B", "M", "N"]], props[["B", "M", "N"]],
                               atol=1e-6)
    np.testing.assert_allclose(res.shares["T1"], props["T1"] / props[["T1", "T2"]].sum(axis=1),
                               atol=1e-5)
    assert list(res.proportions.columns) == TYPES


def test_lineage_means_are_exact_when_subtypes_are_mixed_equally():
    """columns='lineages' fits the mean profile: exact exactly when the siblings are equal parts."""
    sig, _, props = siblings_data(n_samples=8)
    half = props[["T1", "T2"]].mean(axis=1)
    props["T1"], props["T2"] = half, half
    bulk = pd.DataFrame(sig.to_numpy() @ props.T.to_numpy(), index=sig.index, columns=props.index)
    res = hierarchical(sig, bulk, columns="lineages")
    np.testing.assert_allclose(res.lineage_proportions["T"], props[["T1", "T2"]].sum(axis=1),
                               atol=1e-6)
    np.testing.assert_allclose(res.proportions[TYPES], props, atol=1e-6)


def test_noisy_mixtures_lineage_total_better_and_subtypes_no_worse_than_flat():
    errors = []
    for seed in range(4):
        sig, bulk, props = siblings_data(seed=seed, noise=0.3)
        f = flat(sig, bulk, **PLAIN)
        h = hierarchical(sig, bulk).proportions
        total = props[["T1", "T2"]].sum(axis=1)
        errors.append([rmse(f[["T1", "T2"]].sum(axis=1), total),
                       rmse(h[["T1", "T2"]].sum(axis=1), total),
                       rmse(f[["T1", "T2"]], props[["T1", "T2"]]),
                       rmse(h[["T1", "T2"]], props[["T1", "T2"]]),
                       rmse(f, props), rmse(h[TYPES], props)])
    flat_total, hier_total, flat_sub, hier_sub, flat_all, hier_all = np.mean(errors, axis=0)
    assert hier_total < 0.9 * flat_total
    assert hier_sub <= flat_sub
    assert hier_all <= flat_all


@pytest.mark.parametrize("columns", ["types", "lineages"])
@pytest.mark.parametrize("robust", [None, "huber"])
def test_proportions_sum_to_one(columns, robust):
    sig, bulk, _ = siblings_data(noise=0.3, n_samples=10)
    res = hierarchical(sig, bulk, options=dict(robust=robust), columns=columns)
    np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0, atol=1e-10)
    np.testing.assert_allclose(res.lineage_proportions.sum(axis=1), 1.0, atol=1e-10)
    assert (res.proportions >= 0).all().all()
    np.testing.assert_allclose(res.shares[["T1", "T2"]].sum(axis=1), 1.0)


def test_extra_columns_of_level_one_are_kept():
    sig, bulk, _ = siblings_data(noise=0.2, n_samples=6)
    res = hierarchical(sig, bulk, options=dict(method="simplex_le", robust=None))
    assert list(res.proportions.columns) == TYPES + ["unexplained"]
    np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0, atol=1e-8)


def test_one_type_per_lineage_equals_the_flat_fit():
    sig, bulk, _ = siblings_data(noise=0.3, n_samples=10)
    alone = {t: t for t in TYPES}
    for options in (PLAIN, dict(robust="huber")):
        h = hierarchical(sig, bulk, alone, options=options).proportions
        np.testing.assert_allclose(h, flat(sig, bulk, **options), atol=1e-12)


def test_all_genes_types_form_equals_the_flat_fit():
    """genes='all': the types form chooses no genes, so nothing differs from the flat fit."""
    sig, bulk, _ = siblings_data(noise=0.3, n_samples=10, n_genes=400)
    h = hierarchical(sig, bulk, genes="all").proportions
    np.testing.assert_allclose(h, flat(sig, bulk, genes="all", **PLAIN), atol=1e-10)


def test_combination_of_fixed_level_answers():
    """P[t] = P1[lineage] * q[t] / sum(q[lineage]) with hand-made level answers."""
    sig = pd.DataFrame(np.ones((4, 4)), index=list("abcd"), columns=["x", "y", "z", "w"])
    bulk = pd.DataFrame(np.ones((4, 2)), index=list("abcd"), columns=["s1", "s2"])
    level1 = pd.DataFrame([[0.1, 0.3, 0.2, 0.4], [0.5, 0.1, 0.2, 0.2]], index=bulk.columns,
                          columns=sig.columns)
    level2 = pd.DataFrame([[0.3, 0.1, 0.5, 0.1], [0.0, 0.0, 0.6, 0.4]], index=bulk.columns,
                          columns=sig.columns)
    calls = []

    def fit(s, b, markers, genes):
        calls.append((list(markers.columns), genes))
        return level1 if len(calls) == 1 else level2

    res = fit_hierarchical(sig, bulk, {"x": "A", "y": "A", "z": "z", "w": "w"}, fit)
    assert calls == [(["A", "z", "w"], "markers"), (["x", "y", "z", "w"], "auto")]
    expected = pd.DataFrame(
        [[0.4 * 0.75, 0.4 * 0.25, 0.2, 0.4],
         [0.6 * 5 / 6, 0.6 * 1 / 6, 0.2, 0.2]],  # s2: level 2 gives A nothing -> level 1's split
        index=bulk.columns, columns=sig.columns)
    np.testing.assert_allclose(res.proportions, expected)


def test_zero_lineage_and_nan_sample():
    sig = pd.DataFrame(np.ones((3, 3)), index=list("abc"), columns=["x", "y", "z"])
    bulk = pd.DataFrame(np.ones((3, 2)), index=list("abc"), columns=["s1", "s2"])
    answer = pd.DataFrame([[0.0, 0.0, 1.0], [np.nan] * 3], index=bulk.columns, columns=sig.columns)
    res = fit_hierarchical(sig, bulk, {"x": "A", "y": "A", "z": "z"}, lambda *a: answer)
    np.testing.assert_allclose(res.proportions.loc["s1"], [0.0, 0.0, 1.0])
    assert res.proportions.loc["s2"].isna().all()
    assert res.shares.loc["s2", ["x", "y"]].isna().all()


# --- lineages ------------------------------------------------------------------


def families(seed=0, n_genes=500):
    """Three families of 3, 2 and 2 subtypes, plus two unrelated types."""
    rng = np.random.default_rng(seed)
    cols, names = [], []
    for family, size in (("T", 3), ("B", 2), ("My", 2), ("Plt", 1), ("Ery", 1)):
        parent = rng.lognormal(0.0, 1.5, n_genes)
        for i in range(size):
            cols.append(parent * rng.lognormal(0.0, 0.3, n_genes))
            names.append(f"{family}{i}")
    return pd.DataFrame(np.column_stack(cols), index=[f"g{i}" for i in range(n_genes)],
                        columns=names)


def test_lineages_groups_obvious_siblings():
    sig = families()
    lin = lineages(sig)
    assert lin.name == "lineage" and list(lin.index) == list(sig.columns)
    assert lin.to_dict() == {"T0": "T0 + T1 + T2", "T1": "T0 + T1 + T2", "T2": "T0 + T1 + T2",
                             "B0": "B0 + B1", "B1": "B0 + B1", "My0": "My0 + My1",
                             "My1": "My0 + My1", "Plt0": "Plt0", "Ery0": "Ery0"}


def test_lineages_is_scale_free_and_order_free():
    sig = families(seed=3)
    base = lineages(sig)
    assert lineages(sig * 1000.0).equals(base)
    shuffled = sig[list(reversed(sig.columns))]
    groups = lambda s: sorted(sorted(g.index) for _, g in s.groupby(s))  # noqa: E731
    assert groups(lineages(shuffled)) == groups(base)


def test_lineages_options():
    sig = families()
    assert lineages(sig, n_lineages=2).nunique() == 2
    assert lineages(sig, n_lineages=len(sig.columns)).nunique() == len(sig.columns)
    assert lineages(sig, max_lineages=3).nunique() <= 3
    assert lineages(sig, min_correlation=0.999).nunique() == len(sig.columns)
    assert lineages(sig, min_correlation=-0.999).nunique() == 1
    assert lineages(sig[["T0"]]).tolist() == ["T0"]
    assert lineages(sig[["T0", "B0"]]).tolist() == ["T0", "B0"]
    with pytest.raises(ValueError, match="at most one"):
        lineages(sig, n_lineages=2, min_correlation=0.5)
    with pytest.raises(ValueError, match="n_lineages"):
        lineages(sig, n_lineages=20)
    with pytest.raises(ValueError, match="min_correlation"):
        lineages(sig, min_correlation=1.5)
    with pytest.raises(TypeError, match="DataFrame"):
        lineages(sig.to_numpy())


def test_silhouette_matches_naive_definition():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(9, 4))
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    labels = np.array([1, 1, 1, 2, 2, 3, 3, 3, 4])
    naive = []
    for i in range(9):
        own = (labels == labels[i]) & (np.arange(9) != i)
        if not own.any():
            naive.append(0.0)
            continue
        a = d[i, own].mean()
        b = min(d[i, labels == g].mean() for g in set(labels) if g != labels[i])
        naive.append((b - a) / max(a, b))
    assert _silhouette(d, labels) == pytest.approx(np.mean(naive))


def test_profile_distances_of_identical_profiles_are_zero():
    sig = families().assign(same=lambda s: s["B0"])
    d = _profile_distances(sig)
    cols = list(sig.columns)
    assert d[cols.index("B0"), cols.index("same")] == pytest.approx(0.0, abs=1e-12)
    assert np.allclose(d, d.T) and (d >= 0).all() and (d <= 2).all()


def test_lineages_on_lm22_groups_lineages(dataset):
    """The real LM22 signature: the types of B, CD4 T, NK and mast lineages end up together."""
    sig = dataset("newman_GSE65133")["reference"]
    lin = lineages(sig)
    assert lin["B cells naive"] == lin["B cells memory"]
    assert lin["NK cells resting"] == lin["NK cells activated"]
    assert lin["Mast cells resting"] == lin["Mast cells activated"]
    assert lin["T cells CD4 naive"] == lin["T cells CD4 memory resting"]
    assert lin["B cells naive"] != lin["T cells CD4 naive"] != lin["Monocytes"]
    assert 3 <= lin.nunique() <= 15


# --- the lineage map -------------------------------------------------------------


def test_check_hierarchy_forms():
    types = ["CD4", "CD8", "B"]
    expected = ["T", "T", "B"]
    assert check_hierarchy({"CD4": "T", "CD8": "T", "B": "B"}, types).tolist() == expected
    assert check_hierarchy({"T": ["CD8", "CD4"], "B": ("B",)}, types).tolist() == expected
    series = pd.Series({"B": "B", "CD8": "T", "CD4": "T"})
    assert check_hierarchy(series, types).tolist() == expected


@pytest.mark.parametrize(
    ("hierarchy", "match"),
    [
        ({"CD4": "T", "B": "B"}, r"hierarchy= gives no lineage to 1 cell type.*'CD8'"),
        ({"CD4": "T", "CD8": "T", "B": "B", "NK": "NK"}, r"hierarchy= names 1 cell type.*'NK'"),
        ({"T": ["CD4", "CD8"], "B": ["B", "CD4"]}, r"hierarchy= puts cell type 'CD4' in two"),
        ({"T": ["CD4", "CD8"], "B": []}, r"hierarchy= gives lineage 'B' no cell type"),
        ({"T": ["CD4", "CD8"], "B": "B"}, r"hierarchy= mixes the two forms"),
        ({"CD4": "T", "CD8": "", "B": "B"}, r"hierarchy= gives cell type 'CD8' an empty"),
        ({"CD4": "T", "CD8": None, "B": "B"}, r"hierarchy= gives cell type 'CD8' an empty"),
        ({"CD4": "B", "CD8": "B", "B": "Bcells"}, r"hierarchy= names a lineage 'B' like a cell"),
    ],
)
def test_check_hierarchy_errors_name_the_keyword(hierarchy, match):
    with pytest.raises(ValueError, match=match):
        check_hierarchy(hierarchy, ["CD4", "CD8", "B"])


def test_check_hierarchy_names_the_option_it_is_given():
    with pytest.raises(ValueError, match=r"^--hierarchy gives no lineage"):
        check_hierarchy({"CD4": "T"}, ["CD4", "CD8"], option="--hierarchy")


def test_check_hierarchy_refuses_other_objects():
    with pytest.raises(TypeError, match="hierarchy= must be"):
        check_hierarchy([("CD4", "T")], ["CD4"])


def test_fit_hierarchical_checks_its_inputs():
    sig, bulk, _ = siblings_data(n_samples=3, n_genes=300)
    fit = default_level_fit(**PLAIN)
    with pytest.raises(ValueError, match="hierarchy="):
        fit_hierarchical(sig, bulk, {"T1": "T"}, fit)
    with pytest.raises(ValueError, match="columns"):
        fit_hierarchical(sig, bulk, SIBLINGS, fit, columns="means")
    with pytest.raises(ValueError, match="genes"):
        fit_hierarchical(sig, bulk, SIBLINGS, fit, genes="some")
    with pytest.raises(ValueError, match="lacks 1 gene"):
        fit_hierarchical(sig, bulk.iloc[1:], SIBLINGS, fit)
    with pytest.raises(TypeError, match="level fit must return"):
        fit_hierarchical(sig, bulk, SIBLINGS, lambda *a: np.zeros((3, 5)))
    with pytest.raises(TypeError, match="genes="):
        default_level_fit(genes="all")


def test_read_hierarchy(tmp_path):
    path = tmp_path / "lineages.tsv"
    path.write_text("cell_type\tlineage\nT1\tT\nT2\tT\nB\tB\nM\tM\nN\tN\n")
    hierarchy = read_hierarchy(path)
    assert check_hierarchy(hierarchy, TYPES).to_dict() == SIBLINGS
    path.write_text("cell_type\tlineage\nT1\tT\nT1\tB\n")
    with pytest.raises(ValueError, match="listed twice"):
        read_hierarchy(path)


def test_deconvolve_hierarchy_is_fit_hierarchical_with_the_pipeline_levels():
    sig, bulk, truth = siblings_data(n_samples=4, n_genes=300)
    for options in (PLAIN, {"method": "nnls"}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fastdeconv.deconvolve(bulk, sig, hierarchy=SIBLINGS, progress=False, **options)
        expected = hierarchical(sig, bulk, options=options)
        np.testing.assert_allclose(res.proportions.to_numpy(), expected.proportions.to_numpy(),
                                   atol=1e-10)
        assert res.lineages.to_dict() == SIBLINGS and res.options["hierarchy"] == "given"
        assert list(res.fit.index) == list(bulk.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = fastdeconv.deconvolve(bulk, sig, hierarchy="auto", progress=False, method="nnls")
    assert auto.lineages.to_dict() == lineages(sig).to_dict()
    with pytest.raises(ValueError, match="hierarchy="):
        fastdeconv.deconvolve(bulk, sig, hierarchy={"T1": "T"})
