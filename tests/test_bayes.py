"""Issue 10: the probabilistic method (``method="bayes"``), its API, its command line.

A small synthetic single-cell reference (three types with different library
sizes, Poisson counts) and bulks of known RNA fractions with 1e7 reads check
that the multinomial mixture recovers what it should; then the genes left out,
the refused options of the API and of ``fastdeconv deconvolve``, and one run
on the shared real data (Newman PBMC mixtures with the Hao single cells),
exactly as the issue's judge runs it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import fastdeconv
from fastdeconv.cli import main
from fastdeconv.errors import InputProblem
from fastdeconv.metrics import evaluate, group_types

TYPES = ["T", "B", "Mono"]
#: mean reads per cell of each type: the cell and RNA fractions differ
LIBRARY = np.array([3000.0, 8000.0, 15000.0])
N_CELLS = 40
N_GENES = 200
READS = 1e7


def _error(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("fastdeconv: error: ") and "Traceback" not in err
    return lines[0]


def _read(path):
    return pd.read_csv(path, sep="\t", index_col=0)


@pytest.fixture(scope="module")
def synth():
    """Reference counts (genes x cells), labels, a bulk of known RNA fractions, the truth."""
    rng = np.random.default_rng(1)
    genes = [f"g{i}" for i in range(N_GENES - 2)] + ["RPL3", "MT-CO1"]
    prof = rng.gamma(0.6, 1.0, (N_GENES, len(TYPES)))
    prof[-2:] = prof[:-2].mean() * 20  # abundant, as ribosomal and mitochondrial genes are
    prof /= prof.sum(axis=0)
    blocks, labels = [], []
    for k, t in enumerate(TYPES):
        sizes = rng.gamma(20.0, LIBRARY[k] / 20.0, N_CELLS)
        blocks.append(rng.poisson(prof[:, [k]] * sizes))
        labels += [t] * N_CELLS
    cells = [f"cell{i}" for i in range(len(labels))]
    counts = pd.DataFrame(np.hstack(blocks), index=genes, columns=cells)
    F = rng.dirichlet(np.full(len(TYPES), 2.0), 6).T
    samples = [f"s{i}" for i in range(F.shape[1])]
    bulk = pd.DataFrame(rng.poisson(prof @ F * READS).astype(float), index=genes, columns=samples)
    truth = pd.DataFrame(F.T, index=samples, columns=TYPES)
    return {"counts": counts, "labels": labels, "bulk": bulk, "rna": truth, "cells": cells}


def _fit(synth, **kwargs):
    return fastdeconv.deconvolve(synth["bulk"], synth["counts"], labels=synth["labels"],
                                 method="bayes", **kwargs)


@pytest.fixture(scope="module")
def rna_result(synth):
    return _fit(synth, fractions="rna", update_reference=False)


# --------------------------------------------------------------------------- the API


def test_recovers_rna_fractions_without_update(synth, rna_result):
    """fractions="rna", update_reference=False recovers the known RNA fractions to 0.01."""
    res = rna_result
    assert isinstance(res, fastdeconv.bayes.MixtureResult)
    assert list(res.proportions.columns) == TYPES
    assert list(res.proportions.index) == list(synth["bulk"].columns)
    np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0, atol=1e-10)
    assert np.abs(res.proportions - synth["rna"]).to_numpy().max() <= 0.01
    pd.testing.assert_frame_equal(res.proportions, res.rna_fractions)
    assert res.options["fractions"] == "rna" and res.options["update_reference"] is None
    assert res.reference_shift is None
    assert res.fit["converged"].astype(bool).all()


def test_cell_fractions_are_rna_fractions_over_rna_per_cell(synth, rna_result):
    """fractions="cells" is the RNA fractions divided by each type's reads per cell, normalised."""
    cells = _fit(synth, fractions="cells", update_reference=False)
    assert cells.options["fractions"] == "cells"
    w = rna_result.rna_fractions / rna_result.rna_per_cell
    expected = w.div(w.sum(axis=1), axis=0)
    np.testing.assert_allclose(cells.proportions.to_numpy(), expected.to_numpy(), atol=1e-10)
    pd.testing.assert_frame_equal(cells.proportions, cells.cell_fractions)
    # the reads per cell are the reference's on the genes used (two abundant genes left out)
    used_share = 1.0 - synth["counts"].loc[["RPL3", "MT-CO1"]].sum() / synth["counts"].sum()
    per_type = synth["counts"].loc[rna_result.genes_used].sum().groupby(synth["labels"]).mean()
    np.testing.assert_allclose(rna_result.rna_per_cell[TYPES], per_type[TYPES], rtol=1e-10)
    assert (rna_result.rna_per_cell[TYPES] < LIBRARY * 1.15).all()
    assert (rna_result.rna_per_cell[TYPES] > LIBRARY * used_share.min() * 0.85).all()
    # and the cells differ from the RNA: the types have different library sizes
    assert np.abs(cells.proportions - rna_result.proportions).to_numpy().max() > 0.05


@pytest.mark.parametrize("mode", ["map", "mle", True])
def test_reference_update_recovers_same_platform_bulk(synth, mode):
    """update_reference="map"/"mle" (True = "map") still recovers a same-platform bulk to 0.02."""
    res = _fit(synth, fractions="rna", update_reference=mode)
    assert res.options["update_reference"] == ("map" if mode is True else mode)
    assert np.abs(res.proportions - synth["rna"]).to_numpy().max() <= 0.02
    assert res.reference_shift is not None
    assert res.reference_shift.shape == (len(res.genes_used), len(TYPES))
    np.testing.assert_allclose(res.profiles.sum(axis=0), 1.0, atol=1e-10)
    assert res.fit["converged"].astype(bool).all()


def test_states_sum_into_types(synth):
    """states= splits a type in two; type fractions are its states' sums and recover."""
    states = [("a" if i % 2 else "b") if t == "T" else t for i, t in enumerate(synth["labels"])]
    res = _fit(synth, states=states, fractions="rna", update_reference=False)
    assert list(res.state_fractions.columns) == ["T: a", "T: b", "B", "Mono"]
    summed = res.state_fractions.T.groupby(["T", "T", "B", "Mono"]).sum().T[TYPES]
    np.testing.assert_allclose(res.rna_fractions.to_numpy(), summed.to_numpy(), atol=1e-10)
    assert list(res.proportions.columns) == TYPES
    assert np.abs(res.proportions - synth["rna"]).to_numpy().max() <= 0.01
    # a Series by cell id gives the same fit
    by_id = pd.Series(states, index=synth["cells"])[::-1]
    res2 = _fit(synth, states=by_id, fractions="rna", update_reference=False)
    np.testing.assert_allclose(res2.state_fractions.to_numpy(), res.state_fractions.to_numpy(),
                               atol=1e-8)
    # with the update, the final fit is per type and still recovers
    upd = _fit(synth, states=states, fractions="rna")
    assert np.abs(upd.proportions - synth["rna"]).to_numpy().max() <= 0.02


def test_expression_adds_up_to_the_bulk(synth, rna_result, tmp_path):
    """The types' expected expression Z sums to the bulk on the genes used; one file per type."""
    res = rna_result
    total = sum(res.expression(t) for t in TYPES)
    bulk = synth["bulk"].loc[res.genes_used]
    np.testing.assert_allclose(total.to_numpy(), bulk.to_numpy(), rtol=1e-8)
    z = res.expression("B")
    assert (z.to_numpy() >= 0).all() and (z.to_numpy() <= bulk.to_numpy() + 1e-9).all()
    # each type's share of the reads is its RNA fraction (up to the profile noise)
    share = z.sum() / bulk.sum()
    np.testing.assert_allclose(share, synth["rna"]["B"], atol=0.02)
    with pytest.raises(ValueError, match="cell_type"):
        res.expression("nope")
    written = res.write_expression(tmp_path / "z")
    assert sorted(p.name for p in written) == sorted(f"{t}.tsv.gz" for t in TYPES)
    assert sorted(p.name for p in (tmp_path / "z").iterdir()) == sorted(p.name for p in written)
    back = pd.read_csv(tmp_path / "z" / "B.tsv.gz", sep="\t", index_col=0)
    assert back.shape == (len(res.genes_used), synth["bulk"].shape[1])
    np.testing.assert_allclose(back.to_numpy(), z.to_numpy(), rtol=1e-6)


def test_uncertainty_and_fit_table(synth, rna_result, tmp_path):
    """uncertainty has the proportions' shape, finite positive values; every sample converged."""
    res = rna_result
    se = res.uncertainty
    assert se is not None and se.shape == res.proportions.shape
    assert list(se.columns) == TYPES and list(se.index) == list(res.proportions.index)
    assert np.isfinite(se.to_numpy()).all() and (se.to_numpy() > 0).all()
    # a few times the true sampling error of 1e7 reads, not of order one
    assert se.to_numpy().max() < 0.01
    assert res.fit["converged"].astype(bool).all()
    assert {"loglik", "pearson_r", "dispersion", "converged", "total"} <= set(res.fit.columns)
    assert (res.fit["pearson_r"] > 0.99).all()
    assert fastdeconv.deconvolve(synth["bulk"], synth["counts"], labels=synth["labels"],
                                 method="bayes", uncertainty=False).uncertainty is None
    res.write(tmp_path / "p.tsv", fit_path=tmp_path / "fit.tsv",
              uncertainty_path=tmp_path / "se.tsv")
    np.testing.assert_allclose(_read(tmp_path / "se.tsv").to_numpy(), se.to_numpy(), rtol=1e-6)
    assert _read(tmp_path / "fit.tsv").shape[0] == len(res.proportions)


# --------------------------------------------------------------------------- genes


def test_ribosomal_and_mitochondrial_genes_left_out(synth, rna_result):
    """RPL3/MT-CO1 are left out by default and listed; exclude=() keeps them; exclude_genes drops"""
    res = rna_result
    assert res.genes_excluded["ribosomal"] == ["RPL3"]
    assert res.genes_excluded["mitochondrial"] == ["MT-CO1"]
    assert "RPL3" not in res.genes_used and "MT-CO1" not in res.genes_used
    assert len(res.genes_used) == N_GENES - 2
    kept = _fit(synth, fractions="rna", update_reference=False, exclude=())
    assert {"RPL3", "MT-CO1"} <= set(kept.genes_used) and len(kept.genes_used) == N_GENES
    assert not any(kept.genes_excluded.values())
    dropped = _fit(synth, fractions="rna", update_reference=False, exclude_genes=["g1"])
    assert "g1" not in dropped.genes_used and "RPL3" not in dropped.genes_used
    assert dropped.genes_excluded["given"] == ["g1"]
    assert len(dropped.genes_used) == N_GENES - 3
    only_mt = _fit(synth, fractions="rna", update_reference=False, exclude=["mitochondrial"])
    assert "RPL3" in only_mt.genes_used and "MT-CO1" not in only_mt.genes_used
    with pytest.raises(ValueError, match="exclude"):
        _fit(synth, exclude=["ribosomal", "ribosome"])


# --------------------------------------------------------------------------- refused input


def test_bad_api_input_is_refused(synth):
    """Missing labels, least-squares options and bad bayes options raise ValueErrors naming them."""
    bulk, counts, labels = synth["bulk"], synth["counts"], synth["labels"]
    with pytest.raises(InputProblem, match="labels") as info:
        fastdeconv.deconvolve(bulk, counts, method="bayes")
    assert isinstance(info.value, ValueError) and "labels" in info.value.keywords()
    with pytest.raises(ValueError, match="robust"):
        _fit(synth, robust="huber")
    with pytest.raises(ValueError, match="weights"):
        _fit(synth, weights=np.ones(N_GENES))
    with pytest.raises(ValueError, match="alpha"):
        _fit(synth, alpha=0.5)
    with pytest.raises(ValueError, match="fractions"):
        _fit(synth, fractions="both")
    with pytest.raises(ValueError, match="update_reference"):
        _fit(synth, update_reference="yes")
    with pytest.raises(ValueError, match="at least two"):
        fastdeconv.deconvolve(bulk, counts, labels=["T"] * len(labels), method="bayes")
    # alpha=1 and above are accepted
    assert _fit(synth, alpha=2.0, update_reference=False).fit["converged"].astype(bool).all()


def test_regression_method_with_single_cells(synth):
    """deconvolve(bulk, counts, labels=...) with nnls returns cell fractions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = fastdeconv.deconvolve(synth["bulk"], synth["counts"], labels=synth["labels"],
                                    method="nnls")
    assert res.method == "nnls" and res.options["fractions"] == "cells"
    assert sorted(res.proportions.columns) == sorted(TYPES)
    np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0, atol=1e-10)
    # close to the likelihood method's cell fractions (both correct RNA per cell)
    bayes = _fit(synth, fractions="cells", update_reference=False).proportions
    diff = (res.proportions[TYPES] - bayes[TYPES]).abs().to_numpy().max()
    assert diff < 0.05, diff


# --------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def files(synth, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bayes_cli")
    paths = {name: folder / f"{name}.tsv" for name in ("bulk", "counts", "labels", "states", "sig")}
    synth["bulk"].to_csv(paths["bulk"], sep="\t", index_label="gene")
    synth["counts"].to_csv(paths["counts"], sep="\t", index_label="gene")
    pd.DataFrame({"cell": synth["cells"], "cell_type": synth["labels"]}).to_csv(
        paths["labels"], sep="\t", index=False)
    states = [("a" if i % 2 else "b") if t == "T" else t for i, t in enumerate(synth["labels"])]
    pd.DataFrame({"cell": synth["cells"], "state": states}).to_csv(
        paths["states"], sep="\t", index=False)
    sig = synth["counts"].T.groupby(synth["labels"]).mean().T
    sig.to_csv(paths["sig"], sep="\t", index_label="gene")
    return paths


def test_cli_bayes_writes_all_outputs(files, synth, tmp_path, capsys):
    """--method bayes writes proportions, standard errors, fit and one Z file per type."""
    out, se, fit, zdir = (tmp_path / "p.tsv", tmp_path / "se.tsv", tmp_path / "fit.tsv",
                          tmp_path / "z")
    argv = ["deconvolve", "--bulk", str(files["bulk"]), "--reference-counts",
            str(files["counts"]), "--labels", str(files["labels"]), "--method", "bayes",
            "--output", str(out), "--uncertainty-output", str(se), "--expression-output",
            str(zdir), "--fit-output", str(fit), "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    assert out.read_text().split("\t", 1)[0] == "sample"
    props = _read(out)
    assert props.shape == (synth["bulk"].shape[1], len(TYPES))
    assert sorted(props.columns) == sorted(TYPES)
    np.testing.assert_allclose(props.sum(axis=1), 1.0, atol=1e-6)
    errors = _read(se)
    assert errors.shape == props.shape and list(errors.columns) == list(props.columns)
    assert np.isfinite(errors.to_numpy()).all() and (errors.to_numpy() > 0).all()
    assert _read(fit)["converged"].astype(bool).all()
    assert sorted(p.name for p in zdir.iterdir()) == sorted(f"{t}.tsv.gz" for t in TYPES)
    # the default is cell fractions, as the API's
    api = _fit(synth).proportions
    np.testing.assert_allclose(props[TYPES].to_numpy(), api[TYPES].to_numpy(), atol=1e-6)


def test_cli_rna_fractions_and_states(files, synth, tmp_path, capsys):
    """--fractions rna writes the API's RNA fractions; --states FILE fits states."""
    out = tmp_path / "rna.tsv"
    base = ["deconvolve", "--bulk", str(files["bulk"]), "--reference-counts",
            str(files["counts"]), "--labels", str(files["labels"]), "--method", "bayes", "-q"]
    assert main(base + ["--fractions", "rna", "--output", str(out)]) == 0, capsys.readouterr().err
    api = _fit(synth, fractions="rna").proportions
    np.testing.assert_allclose(_read(out)[TYPES].to_numpy(), api[TYPES].to_numpy(), atol=1e-6)
    out2 = tmp_path / "none.tsv"
    assert main(base + ["--fractions", "rna", "--update-reference", "none",
                        "--output", str(out2)]) == 0
    api2 = _fit(synth, fractions="rna", update_reference=False).proportions
    np.testing.assert_allclose(_read(out2)[TYPES].to_numpy(), api2[TYPES].to_numpy(), atol=1e-6)
    out3 = tmp_path / "states.tsv"
    assert main(base + ["--fractions", "rna", "--update-reference", "none", "--states",
                        str(files["states"]), "--output", str(out3)]) == 0
    states = [("a" if i % 2 else "b") if t == "T" else t for i, t in enumerate(synth["labels"])]
    api3 = _fit(synth, fractions="rna", update_reference=False, states=states).proportions
    got = _read(out3)
    assert sorted(got.columns) == sorted(TYPES)
    np.testing.assert_allclose(got[TYPES].to_numpy(), api3[TYPES].to_numpy(), atol=1e-6)
    assert np.abs(got[TYPES] - synth["rna"]).to_numpy().max() <= 0.01


def test_cli_regression_method_with_single_cells(files, synth, tmp_path, capsys):
    """--reference-counts with the default method writes cell fractions summing to one."""
    out = tmp_path / "p.tsv"
    argv = ["deconvolve", "--bulk", str(files["bulk"]), "--reference-counts",
            str(files["counts"]), "--labels", str(files["labels"]), "--output", str(out), "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    np.testing.assert_allclose(_read(out).sum(axis=1), 1.0, atol=1e-6)


BAD_COMBINATIONS = {
    "no reference": (["--bulk", "{bulk}"], "--reference-counts"),
    "both references": (["--bulk", "{bulk}", "--signature", "{sig}", "--reference-counts",
                         "{counts}", "--labels", "{labels}"], "--signature"),
    "counts without labels": (["--bulk", "{bulk}", "--reference-counts", "{counts}"],
                              "--labels"),
    "labels with signature": (["--bulk", "{bulk}", "--signature", "{sig}", "--labels",
                               "{labels}"], "--labels"),
    "bayes with signature and states": (["--bulk", "{bulk}", "--signature", "{sig}",
                                         "--method", "bayes", "--states", "{states}"],
                                        "--states"),
    "states without bayes": (["--bulk", "{bulk}", "--reference-counts", "{counts}", "--labels",
                              "{labels}", "--states", "{states}", "--method", "nnls"],
                             "--states"),
    "expression with nnls": (["--bulk", "{bulk}", "--reference-counts", "{counts}", "--labels",
                              "{labels}", "--method", "nnls", "--expression-output",
                              "{tmp}/expr"], "--expression-output"),
    "label key with a table": (["--bulk", "{bulk}", "--reference-counts", "{counts}",
                                "--label-key", "cell_type", "--method", "bayes"], "--label-key"),
    "expression output is a file": (["--bulk", "{bulk}", "--reference-counts", "{counts}",
                                     "--labels", "{labels}", "--method", "bayes",
                                     "--expression-output", "{tmp}/zfile"],
                                    "--expression-output"),
    "rna content with counts": (["--bulk", "{bulk}", "--reference-counts", "{counts}",
                                 "--labels", "{labels}", "--rna-content", "{tmp}/content.tsv"],
                                "--rna-content"),
}


@pytest.mark.parametrize("case", list(BAD_COMBINATIONS))
def test_cli_bad_combinations(case, files, tmp_path, capsys):
    """Reference options that do not fit together: status 1, one line naming the flag, no output."""
    args, flag = BAD_COMBINATIONS[case]
    (tmp_path / "zfile").write_text("keep me\n")
    pd.Series({t: 1.0 for t in TYPES}, name="content").to_csv(
        tmp_path / "content.tsv", sep="\t", index_label="cell_type")
    names = {k: str(v) for k, v in files.items()}
    argv = ["deconvolve"] + [a.format(tmp=tmp_path, **names) for a in args]
    out = tmp_path / "out.tsv"
    assert main(argv + ["--output", str(out), "-q"]) == 1
    assert flag in _error(capsys)
    assert not out.exists() and not (tmp_path / "se.tsv").exists()
    assert (tmp_path / "zfile").read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content.tsv", "zfile"]


def test_cli_default_run_prints_no_warning(files, tmp_path, capsys):
    """A plain --method bayes run (no --uncertainty-output, no -q) prints no warning."""
    argv = ["deconvolve", "--bulk", str(files["bulk"]), "--reference-counts",
            str(files["counts"]), "--labels", str(files["labels"]), "--method", "bayes",
            "--output", str(tmp_path / "p.tsv")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning" not in err, err


# --------------------------------------------------------------------------- real data

# hao cell types and Newman's flow-cytometry subsets summed into five coarse groups
HAO_GROUPS = {"B": ["B cells", "Plasma cells"], "CD4 T": ["T cells CD4 conv", "Tregs"],
              "CD8 T": ["T cells CD8"], "NK": ["NK cells"], "Monocytes": ["Monocytes"]}
NEWMAN_GROUPS = {"B": ["B cells naive", "B cells memory"],
                 "CD4 T": ["T cells CD4 naive", "T cells CD4 memory resting",
                           "T cells CD4 memory activated"],
                 "CD8 T": ["T cells CD8"], "NK": ["NK cells resting"], "Monocytes": ["Monocytes"]}


@pytest.mark.slow
def test_newman_with_hao_cells_cli(data_dir, dataset, tmp_path, capsys):
    """The judge's CLI run on Newman PBMC mixtures: pooled r >= 0.80 over five coarse groups."""
    hao, newman = data_dir / "hao_pbmc_sc_subset", data_dir / "newman_GSE65133"
    for folder in (hao, newman):
        if not folder.is_dir():
            pytest.skip(f"{folder.name} not found in {data_dir}")
    out = tmp_path / "newman_bayes.tsv"
    argv = ["deconvolve", "--bulk", str(newman / "mixture.tsv.gz"), "--reference-counts",
            str(hao / "counts.tsv.gz"), "--labels", str(hao / "cell_labels.tsv"), "--method",
            "bayes", "--fractions", "cells", "--output", str(out), "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    props = _read(out)
    np.testing.assert_allclose(props.sum(axis=1), 1.0, atol=1e-6)
    truth = dataset("newman_GSE65133")["truth"]
    est = group_types(props, HAO_GROUPS)
    true = group_types(truth.T, NEWMAN_GROUPS)
    ev = evaluate(est, true.loc[est.index, est.columns])
    # measured 0.85 when written; the target is 0.80
    assert ev.overall["pearson_r"] >= 0.80, ev.overall


def test_bayes_with_a_signature(synth):
    """A signature's columns are the profiles: RNA fractions recovered, cells == RNA fractions."""
    counts = synth["counts"]
    sig = counts.T.groupby(np.asarray(synth["labels"])).sum().T[TYPES] / 7.0  # any scale
    res = fastdeconv.deconvolve(synth["bulk"], sig, method="bayes", update_reference=False)
    np.testing.assert_allclose(res.proportions.to_numpy(), res.rna_fractions.to_numpy())
    np.testing.assert_allclose(res.proportions[TYPES].to_numpy(), synth["rna"][TYPES].to_numpy(),
                               atol=0.01)
    assert res.options["fractions"] == "rna"


def test_bayes_refuses_single_cells_without_labels(synth):
    """Whole-number tables with over 100 columns are single cells: labels= is asked for."""
    with pytest.raises(InputProblem, match="labels") as info:
        fastdeconv.deconvolve(synth["bulk"], synth["counts"], method="bayes")
    assert "labels" in info.value.keywords()


def test_single_cells_default_to_the_likelihood_method(synth):
    """method="auto" (the default) is bayes with single cells and dwls with a signature."""
    res = fastdeconv.deconvolve(synth["bulk"], synth["counts"], labels=synth["labels"])
    assert res.method == "bayes"
    sig = synth["counts"].T.groupby(np.asarray(synth["labels"])).sum().T[TYPES]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert fastdeconv.deconvolve(synth["bulk"], sig).method == "dwls"


def test_exclude_groups_match_the_library():
    """The CLI's --exclude groups are the library's gene groups."""
    from fastdeconv.bayes import GENE_GROUPS
    from fastdeconv.cli.deconvolve import EXCLUDE_GROUPS

    assert tuple(GENE_GROUPS) == EXCLUDE_GROUPS


# --- the review's findings, each a regression test ------------------------------------------


def test_gene_name_options_reach_the_reference(synth):
    """case_insensitive= matches a reference whose names differ in case from the bulk's."""
    counts = synth["counts"].rename(index=str.upper)  # G0, G1, ... vs g0, g1 in the bulk
    with pytest.raises(ValueError):
        fastdeconv.deconvolve(synth["bulk"], counts, labels=synth["labels"], method="bayes")
    res = fastdeconv.deconvolve(synth["bulk"], counts, labels=synth["labels"], method="bayes",
                                case_insensitive=True, fractions="rna", update_reference=False)
    np.testing.assert_allclose(res.proportions[TYPES].to_numpy(),
                               synth["rna"][TYPES].to_numpy(), atol=0.01)


def test_expression_adds_up_with_states(synth):
    """With several states per type and no update, Z still adds up to the bulk."""
    states = [("a" if i % 2 else "b") if t == "T" else t for i, t in enumerate(synth["labels"])]
    res = _fit(synth, states=states, update_reference=False)
    total = sum(res.expression(t) for t in TYPES)
    np.testing.assert_allclose(total.to_numpy(), synth["bulk"].loc[res.genes_used].to_numpy(),
                               rtol=1e-8)


def test_unexplained_column_keeps_rna_fractions(synth):
    """simplex_le with single cells reports RNA fractions (its remainder has no RNA per cell)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = fastdeconv.deconvolve(synth["bulk"], synth["counts"], labels=synth["labels"],
                                    method="simplex_le")
        assert res.options["fractions"] == "rna"
        np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0, atol=1e-8)
        with pytest.raises(ValueError, match="fractions='rna'"):
            fastdeconv.deconvolve(synth["bulk"], synth["counts"], labels=synth["labels"],
                                  method="simplex_le", fractions="cells")


def test_likelihood_options_refused_by_least_squares(synth):
    """Options of bayes given to nnls, and marker options given to bayes, are refused."""
    args = (synth["bulk"], synth["counts"])
    with pytest.raises(ValueError, match="update_reference="):
        fastdeconv.deconvolve(*args, labels=synth["labels"], method="nnls", update_reference="mle")
    with pytest.raises(ValueError, match="states="):
        fastdeconv.deconvolve(*args, labels=synth["labels"], method="nnls", states=synth["labels"])
    with pytest.raises(ValueError, match="n_markers="):
        fastdeconv.deconvolve(*args, labels=synth["labels"], method="bayes", n_markers=50)


def test_transposed_reference_advice_names_the_keyword(synth):
    """A cells x genes reference is refused naming transpose_signature (not the reader's name)."""
    with pytest.raises(InputProblem) as info:
        fastdeconv.deconvolve(synth["bulk"], synth["counts"].T, labels=synth["labels"],
                              method="bayes")
    assert "transpose_signature" in info.value.keywords()


def test_state_type_order_is_by_name(synth):
    """A MixtureReference whose state_type lists the states in another order is read by name."""
    from fastdeconv.bayes import mixture_reference, run
    from fastdeconv.methods import REGRESSION

    ref = mixture_reference(synth["counts"], synth["labels"])
    shuffled = type(ref)(ref.counts, ref.state_type.iloc[::-1], ref.n_cells, ref.normalized)
    a = run(REGRESSION.get("bayes"), synth["bulk"], ref, fractions="rna", update_reference=None)
    b = run(REGRESSION.get("bayes"), synth["bulk"], shuffled, fractions="rna",
            update_reference=None)
    np.testing.assert_allclose(a.proportions[TYPES].to_numpy(), b.proportions[TYPES].to_numpy(),
                               atol=1e-10)


def test_write_expression_never_overwrites_a_type(synth, tmp_path):
    """Type names that sanitise to one file name get distinct files."""
    res = _fit(synth, update_reference=False)
    res.rna_fractions.columns = ["T cells", "T/cells", "Mono"]
    paths = res.write_expression(tmp_path)
    assert len({p.name for p in paths}) == 3


@pytest.mark.parametrize("extra, flag", [
    (["--robust", "huber"], "--robust"),
    (["--n-markers", "20"], "--n-markers"),
    (["--exclude", "bogus"], "--exclude"),
])
def test_cli_refuses_least_squares_options_for_bayes(files, tmp_path, capsys, extra, flag):
    """Least-squares options and unknown --exclude groups are refused with the flag's name."""
    argv = ["deconvolve", "--bulk", str(files["bulk"]), "--reference-counts",
            str(files["counts"]), "--labels", str(files["labels"]), "--method", "bayes",
            "--output", str(tmp_path / "p.tsv"), "-q", *extra]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0]
    assert not (tmp_path / "p.tsv").exists()


def test_cli_normalized_takes_a_log_scale(files, synth, tmp_path):
    """--normalized log1p un-logs a log1p reference: whole numbers again, so cell fractions."""
    logged = np.log1p(synth["counts"])
    path = tmp_path / "log.tsv"
    logged.to_csv(path, sep="\t", index_label="gene")
    out = tmp_path / "p.tsv"
    argv = ["deconvolve", "--bulk", str(files["bulk"]), "--reference-counts", str(path),
            "--labels", str(files["labels"]), "--normalized", "log1p", "--output", str(out), "-q"]
    assert main(argv) == 0
    expected = _fit(synth)
    np.testing.assert_allclose(_read(out)[TYPES].to_numpy(),
                               expected.proportions[TYPES].to_numpy(), atol=1e-6)
