"""Tests of the fastdeconv command line (fastdeconv.cli.main)."""

from __future__ import annotations

import argparse
import gzip
import importlib
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fastdeconv
import fastdeconv.cli
from fastdeconv.cli import build_parser, main
from fastdeconv.metrics import evaluate
from fastdeconv.simulate import synthetic


def _needs(name):
    """Skip a test whose command relies on a public function that has not landed."""
    try:
        getattr(fastdeconv, name)
    except (AttributeError, ImportError):
        pytest.skip(f"fastdeconv.{name} is not available in this build")


def _run(command):
    """Run ``fastdeconv COMMAND`` (a string, split like a shell does) and return the status."""
    return main(shlex.split(command))


def _one_line_error(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("fastdeconv: error: ")
    assert "Traceback" not in err
    return lines[0]


def _write(df, path, index_label):
    df.to_csv(path, sep="\t" if ".tsv" in str(path) else ",", index_label=index_label)
    return path


@pytest.fixture(scope="module")
def small():
    return synthetic(n_genes=400, n_types=4, n_samples=30, seed=3)


@pytest.fixture
def files(tmp_path, small):
    bulk = _write(small.bulk, tmp_path / "bulk.tsv", "gene")
    sig = _write(small.signature, tmp_path / "sig.csv", "gene")
    truth = _write(small.proportions.T, tmp_path / "truth.tsv", "cell_type")
    return bulk, sig, truth


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


# --------------------------------------------------------------------------- usage


def test_help_and_version(capsys):
    assert _run("--help") == 0
    out = capsys.readouterr().out
    for command in ("deconvolve", "evaluate", "demo", "signature", "simulate", "linseed"):
        assert command in out
    assert _run("--version") == 0
    assert fastdeconv.__version__ in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["deconvolve", "--bulk", "b.tsv"],
        ["demo", "--samples", "0"],
        ["demo", "--samples", "ten"],
        ["linseed", "--bulk", "b.tsv", "--cell-types", "many", "--output", "o.tsv"],
        ["evaluate", "--estimate", "e.tsv", "--truth", "t.tsv", "--match", "fuzzy"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage: fastdeconv" in capsys.readouterr().err


def test_python_dash_m_and_fast_import():
    out = subprocess.run(
        [sys.executable, "-m", "fastdeconv", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"fastdeconv {fastdeconv.__version__}"
    code = (
        "import sys, fastdeconv.cli; fastdeconv.cli.build_parser();"
        "heavy = ('numpy', 'pandas', 'numba', 'scipy', 'matplotlib', 'fastdeconv.methods');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- evaluate


def test_evaluate_prints_metrics(tmp_path, small, capsys):
    truth = _write(small.proportions.T, tmp_path / "truth.tsv", "cell_type")
    rng = np.random.default_rng(0)
    est = (small.proportions + rng.normal(0, 0.02, small.proportions.shape)).clip(lower=0)
    est_path = _write(est, tmp_path / "est.csv", "sample")
    table = tmp_path / "scores.tsv"
    assert _run(f"evaluate --estimate {est_path} --truth {truth} --output {table}") == 0
    out = capsys.readouterr().out
    ev = evaluate(est, small.proportions)
    overall = next(line for line in out.splitlines() if line.startswith("overall"))
    assert f"{ev.overall['pearson_r']:.4f}" in overall
    assert f"{ev.overall['rmse']:.4f}" in overall
    assert f"{ev.overall['ccc']:.4f}" in overall
    for t in small.proportions.columns:
        assert any(line.startswith(t) for line in out.splitlines())
    scores = pd.read_csv(table, sep="\t", index_col=0)
    assert scores.index.name == "cell_type"
    assert scores.loc["overall", "rmse"] == pytest.approx(ev.overall["rmse"])
    assert scores.loc["type_1", "pearson_r"] == pytest.approx(
        ev.per_type.loc["type_1", "pearson_r"]
    )


def test_evaluate_best_match_and_samples_by_types_truth(tmp_path, small, capsys):
    comps = small.proportions.iloc[:, [2, 0, 3, 1]].copy()
    comps.columns = [f"component_{i}" for i in range(1, 5)]
    est = _write(comps, tmp_path / "comps.tsv", "sample")
    # truth stored samples x types: refused (never flipped silently), --transpose-truth reads it
    truth = _write(small.proportions, tmp_path / "truth_sxt.tsv", "sample")
    assert _run(f"evaluate --estimate {est} --truth {truth} --match best") == 1
    assert "--transpose-truth" in _one_line_error(capsys)
    assert _run(f"evaluate --estimate {est} --truth {truth} --match best --transpose-truth") == 0
    out = capsys.readouterr().out
    assert "component_1 -> type_3" in out
    overall = next(line for line in out.splitlines() if line.startswith("overall"))
    assert "1.0000" in overall


def test_evaluate_plot(tmp_path, small, capsys):
    pytest.importorskip("matplotlib")
    truth = _write(small.proportions.T, tmp_path / "truth.tsv", "cell_type")
    est = _write(small.proportions, tmp_path / "est.tsv", "sample")
    png = tmp_path / "scatter.png"
    assert _run(f"evaluate --estimate {est} --truth {truth} --plot {png}") == 0
    assert png.stat().st_size > 1000


def test_evaluate_bad_inputs_one_line(tmp_path, small, capsys):
    truth = _write(small.proportions.T, tmp_path / "truth.tsv", "cell_type")
    assert _run(f"evaluate --estimate {tmp_path / 'nope.tsv'} --truth {truth}") == 1
    assert "not found" in _one_line_error(capsys)

    bad = small.proportions.astype(object)
    bad.iloc[2, 1] = "abc"
    est = _write(bad, tmp_path / "bad.tsv", "sample")
    assert _run(f"evaluate --estimate {est} --truth {truth}") == 1
    assert "non-numeric" in _one_line_error(capsys)

    other = _write(small.proportions.add_prefix("x"), tmp_path / "other.tsv", "sample")
    assert _run(f"evaluate --estimate {other} --truth {truth}") == 1
    assert "share no cell type names" in _one_line_error(capsys)

    assert (
        _run(f"evaluate --estimate {other} --truth {truth} --output {tmp_path / 'scores.xlsx'}")
        == 1
    )
    assert "--output" in _one_line_error(capsys)


# --------------------------------------------------------------------------- deconvolve


def test_deconvolve_writes_proportions(files, tmp_path, small, capsys):
    _needs("deconvolve")
    bulk, sig, _ = files
    out = tmp_path / "props.tsv"
    fit = tmp_path / "fit.csv"
    assert (
        _run(
            f"deconvolve --bulk {bulk} --signature {sig} --output {out} --fit-output {fit} --quiet"
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert out.read_text().split("\t", 1)[0] == "sample"
    props = pd.read_csv(out, sep="\t", index_col=0)
    assert props.shape == (30, 4)
    assert list(props.index) == list(small.proportions.index)
    np.testing.assert_allclose(props.sum(axis=1), 1.0, atol=1e-9)
    assert evaluate(props, small.proportions).overall["pearson_r"] > 0.9
    assert pd.read_csv(fit, index_col=0).shape[0] == 30
    assert _leftovers(tmp_path) == []


def test_deconvolve_gz_csv_output_and_method(files, tmp_path, capsys):
    _needs("deconvolve")
    bulk, sig, _ = files
    out = tmp_path / "props.csv.gz"
    assert (
        _run(f"deconvolve --bulk {bulk} --signature {sig} --output {out} --method nnls --n-jobs 1")
        == 0
    )
    with gzip.open(out, "rt") as handle:
        header = handle.readline()
    assert header.startswith("sample,type_1,")
    assert capsys.readouterr().out.strip() != ""  # a summary is printed without --quiet

    # the options reach fastdeconv.deconvolve: the same numbers as the API gives
    plain = tmp_path / "plain.tsv"
    assert (
        _run(
            f"deconvolve --bulk {bulk} --signature {sig} --output {plain} --method simplex "
            "--robust none --genes all --scale linear -q"
        )
        == 0
    )
    api = fastdeconv.deconvolve(
        pd.read_csv(bulk, sep="\t", index_col=0),
        pd.read_csv(sig, index_col=0),
        method="simplex",
        robust=None,
        genes="all",
        progress=False,
    )
    np.testing.assert_allclose(
        pd.read_csv(plain, sep="\t", index_col=0).to_numpy(),
        api.proportions.to_numpy(),
        rtol=1e-12,
        atol=1e-15,
    )


def test_deconvolve_plots(files, tmp_path, capsys):
    _needs("deconvolve")
    pytest.importorskip("matplotlib")
    bulk, sig, _ = files
    props_png, fit_png = tmp_path / "p.png", tmp_path / "f.png"
    assert (
        _run(
            f"deconvolve --bulk {bulk} --signature {sig} --output {tmp_path / 'p.tsv'} "
            f"--plot {props_png} --plot-fit {fit_png} -q"
        )
        == 0
    )
    assert props_png.stat().st_size > 1000 and fit_png.stat().st_size > 1000


def test_deconvolve_failure_keeps_existing_output(files, tmp_path, small, capsys):
    _needs("deconvolve")
    bulk, _, _ = files
    out = tmp_path / "props.tsv"
    out.write_text("previous result\n")
    # a signature sharing no genes with the bulk
    sig = _write(small.signature.rename(index=lambda g: "X" + g), tmp_path / "sig2.tsv", "gene")
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --output {out}") == 1
    _one_line_error(capsys)
    assert out.read_text() == "previous result\n"
    assert _leftovers(tmp_path) == []


def test_deconvolve_checks_outputs_before_reading(tmp_path, capsys):
    # the output folder is checked first: no input is read (they do not even exist)
    assert (
        _run(
            "deconvolve --bulk missing.tsv --signature missing.tsv --output "
            f"{tmp_path / 'no' / 'props.tsv'}"
        )
        == 1
    )
    assert "does not exist" in _one_line_error(capsys)
    assert (
        _run(
            "deconvolve --bulk missing.tsv --signature missing.tsv --output "
            f"{tmp_path / 'props.parquet'}"
        )
        == 1
    )
    assert "--output" in _one_line_error(capsys)


def test_deconvolve_negative_bulk_is_one_line_error(files, tmp_path, small, capsys):
    _needs("deconvolve")
    _, sig, _ = files
    neg = small.bulk.copy()
    neg.iloc[3, 2] = -5.0
    bulk = _write(neg, tmp_path / "neg.tsv", "gene")
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --output {tmp_path / 'o.tsv'}") == 1
    assert "negative" in _one_line_error(capsys).lower()
    assert not (tmp_path / "o.tsv").exists()


# --------------------------------------------------------------------------- demo


def test_demo_small(capsys, tmp_path):
    _needs("deconvolve")
    pytest.importorskip("matplotlib")
    png = tmp_path / "demo.png"
    assert _run(f"demo --genes 300 --types 4 --samples 40 --repeats 1 --quiet --plot {png}") == 0
    out = capsys.readouterr().out
    assert "300 genes x 40 samples, 4 cell types" in out
    assert "scipy.optimize.nnls loop" in out and "faster" in out
    overall = next(line for line in out.splitlines() if line.startswith("overall"))
    r = float(overall.split()[1])
    assert r > 0.9
    assert png.stat().st_size > 1000


# --------------------------------------------------------------------------- single cells


def _cells(tmp_path, n_genes=60, per_type=20, seed=0):
    """Three well separated cell types with raw counts; genes x cells table and labels."""
    rng = np.random.default_rng(seed)
    types = ["T", "B", "Mono"]
    blocks, labels = [], []
    for i, t in enumerate(types):
        rate = np.full(n_genes, 1.0)
        rate[i * 10 : (i + 1) * 10] = 30.0  # ten strong markers per type
        blocks.append(rng.poisson(rate[:, None] * (1 + i), size=(n_genes, per_type)))
        labels += [t] * per_type
    counts = pd.DataFrame(
        np.hstack(blocks),
        index=[f"g{i}" for i in range(n_genes)],
        columns=[f"cell{i}" for i in range(per_type * 3)],
    )
    counts_path = _write(counts, tmp_path / "counts.tsv.gz", "gene")
    lab = pd.DataFrame({"cell": counts.columns, "cell_type": labels})
    labels_path = tmp_path / "labels.csv"
    lab.to_csv(labels_path, index=False)
    return counts, lab, counts_path, labels_path


def test_simulate_writes_bulk_and_truths(tmp_path, capsys):
    counts, lab, counts_path, labels_path = _cells(tmp_path)
    bulk, truth, rna = tmp_path / "pb.tsv", tmp_path / "truth.tsv", tmp_path / "rna.csv"
    assert (
        _run(
            f"simulate --counts {counts_path} --labels {labels_path} --samples 7 "
            f"--cells-per-sample 100 --seed 4 --output-bulk {bulk} --output-truth {truth} "
            f"--output-rna-truth {rna}"
        )
        == 0
    )
    assert "wrote 7 pseudo-bulk samples" in capsys.readouterr().err
    b = pd.read_csv(bulk, sep="\t", index_col=0)
    t = pd.read_csv(truth, sep="\t", index_col=0)
    r = pd.read_csv(rna, index_col=0)
    assert b.shape == (60, 7) and b.index.name == "gene"
    assert t.shape == (3, 7) and t.index.name == "cell_type"
    assert list(t.columns) == list(b.columns)
    np.testing.assert_allclose(t.sum(axis=0), 1.0)
    np.testing.assert_allclose(r.sum(axis=0), 1.0)
    # Mono cells carry 3x the RNA of T cells: the RNA share exceeds the cell share
    assert (r.loc["Mono"] >= t.loc["Mono"] - 1e-12).all()
    # the truth file feeds `evaluate` directly (itself as the estimate: perfect scores)
    est = _write(t.T, tmp_path / "est.tsv", "sample")
    assert _run(f"evaluate --estimate {est} --truth {truth}") == 0


def test_simulate_given_fractions_and_errors(tmp_path, capsys):
    _, _, counts_path, labels_path = _cells(tmp_path)
    fractions = pd.DataFrame(
        {"m1": [0.5, 0.5, 0.0], "m2": [0.0, 0.2, 0.8]}, index=["T", "B", "Mono"]
    )
    frac_path = _write(fractions, tmp_path / "target.tsv", "cell_type")
    truth = tmp_path / "truth.tsv"
    assert (
        _run(
            f"simulate --counts {counts_path} --labels {labels_path} --fractions "
            f"{frac_path} --cells-per-sample 1000 -q --output-bulk {tmp_path / 'pb.tsv'} "
            f"--output-truth {truth}"
        )
        == 0
    )
    t = pd.read_csv(truth, sep="\t", index_col=0)
    assert list(t.columns) == ["m1", "m2"]
    assert t.loc["Mono", "m1"] == 0.0
    assert abs(t.loc["Mono", "m2"] - 0.8) < 0.06

    # an unknown cell type in the target fractions: one-line error, outputs untouched
    truth.write_text("old\n")
    bad = _write(fractions.rename(index={"Mono": "DC"}), tmp_path / "bad.tsv", "cell_type")
    assert (
        _run(
            f"simulate --counts {counts_path} --labels {labels_path} --fractions {bad} "
            f"--output-bulk {tmp_path / 'pb2.tsv'} --output-truth {truth}"
        )
        == 1
    )
    assert "DC" in _one_line_error(capsys)
    assert truth.read_text() == "old\n" and not (tmp_path / "pb2.tsv").exists()

    # labels for other cells, and neither --samples nor --fractions
    other = tmp_path / "other_labels.tsv"
    other.write_text("cell\tcell_type\nzzz\tT\n")
    assert (
        _run(
            f"simulate --counts {counts_path} --labels {other} --samples 2 --output-bulk "
            f"{tmp_path / 'x.tsv'} --output-truth {tmp_path / 'y.tsv'}"
        )
        == 1
    )
    _one_line_error(capsys)
    assert (
        _run(
            f"simulate --counts {counts_path} --labels {labels_path} --output-bulk "
            f"{tmp_path / 'x.tsv'} --output-truth {tmp_path / 'y.tsv'}"
        )
        == 1
    )
    assert "--samples" in _one_line_error(capsys)
    assert _leftovers(tmp_path) == []


def test_simulate_h5ad_with_label_key(tmp_path, capsys):
    anndata = pytest.importorskip("anndata")
    counts, lab, _, _ = _cells(tmp_path)
    adata = anndata.AnnData(
        X=counts.T.to_numpy().astype(np.float32),
        obs=pd.DataFrame({"cell_type": lab["cell_type"].to_numpy()}, index=counts.columns),
        var=pd.DataFrame(index=counts.index),
    )
    h5ad = tmp_path / "cells.h5ad"
    adata.write_h5ad(h5ad)
    assert (
        _run(
            f"simulate --counts {h5ad} --label-key cell_type --samples 3 --output-bulk "
            f"{tmp_path / 'pb.tsv'} --output-truth {tmp_path / 't.tsv'} -q"
        )
        == 0
    )
    assert pd.read_csv(tmp_path / "pb.tsv", sep="\t", index_col=0).index[0] == "g0"


def test_signature_command(tmp_path, capsys):
    _needs("build_signature")
    _, _, counts_path, labels_path = _cells(tmp_path)
    sig, markers = tmp_path / "sig.tsv", tmp_path / "markers.tsv"
    assert (
        _run(
            f"signature --counts {counts_path} --labels {labels_path} --output {sig} "
            f"--markers {markers} --n-markers 5"
        )
        == 0
    )
    s = pd.read_csv(sig, sep="\t", index_col=0)
    assert sorted(s.columns) == ["B", "Mono", "T"]
    assert s.index.name == "gene"
    m = pd.read_csv(markers, sep="\t")
    assert {"gene", "cell_type"} <= set(m.columns)
    # the markers found are the planted ones: T -> g0..g9, B -> g10..g19, Mono -> g20..g29
    planted = {"T": range(0, 10), "B": range(10, 20), "Mono": range(20, 30)}
    for _, row in m.iterrows():
        assert int(row["gene"][1:]) in planted[row["cell_type"]]
    assert "Signature:" in capsys.readouterr().out

    assert _run(f"signature --counts {counts_path} --output {sig}") == 1
    assert "--labels" in _one_line_error(capsys)


# --------------------------------------------------------------------------- linseed


def test_linseed_command(tmp_path, capsys):
    _needs("linseed")
    data = synthetic(n_genes=1500, n_types=3, n_samples=40, seed=1, alpha=0.5)
    bulk = _write(data.bulk, tmp_path / "bulk.tsv", "gene")
    out, sig, markers = tmp_path / "p.tsv", tmp_path / "s.tsv", tmp_path / "m.tsv"
    assert (
        _run(
            f"linseed --bulk {bulk} --cell-types 3 --output {out} --signature-output {sig} "
            f"--markers-output {markers} --seed 0 --min-mean 0 -q"
        )
        == 0
    )
    props = pd.read_csv(out, sep="\t", index_col=0)
    assert props.index.name == "sample"
    assert list(props.columns) == ["component_1", "component_2", "component_3"]
    np.testing.assert_allclose(props.sum(axis=1), 1.0, atol=1e-9)
    assert pd.read_csv(sig, sep="\t", index_col=0).shape[1] == 3
    assert pd.read_csv(markers, sep="\t").shape[0] > 0
    ev = evaluate(props, data.proportions, match="best")
    assert ev.overall["pearson_r"] > 0.8


def test_linseed_marker_names_and_plot(tmp_path, capsys):
    _needs("linseed")
    data = synthetic(n_genes=1500, n_types=3, n_samples=40, seed=1, alpha=0.5)
    bulk = _write(data.bulk, tmp_path / "bulk.tsv", "gene")
    rows = [(t, g) for t, genes in data.markers.items() for g in genes]
    known = tmp_path / "known.csv"
    pd.DataFrame(rows, columns=["cell_type", "gene"]).to_csv(known, index=False)
    out, png = tmp_path / "p.tsv", tmp_path / "linseed.png"
    argv = [
        "linseed",
        "--bulk",
        str(bulk),
        "--cell-types",
        "auto",
        "--output",
        str(out),
        "--marker-genes",
        str(known),
        "-q",
    ]
    plotting = importlib.util.find_spec("fastdeconv.plotting._linseed") is not None
    if plotting:
        argv += ["--plot", str(png)]
    assert main(argv) == 0
    props = pd.read_csv(out, sep="\t", index_col=0)
    assert sorted(props.columns) == ["type_1", "type_2", "type_3"]
    assert evaluate(props, data.proportions).overall["pearson_r"] > 0.8
    if plotting:
        assert png.stat().st_size > 1000


def test_linseed_bad_input(tmp_path, capsys):
    _needs("linseed")
    bulk = _write(
        np.log2(1 + synthetic(n_genes=300, n_types=3, n_samples=10).bulk),
        tmp_path / "log.tsv",
        "gene",
    )
    out = tmp_path / "p.tsv"
    assert _run(f"linseed --bulk {bulk} --cell-types 3 --output {out}") == 1
    assert "log" in _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.slow
def test_end_to_end_single_cell_rna_vs_cell_fractions(data_dir, tmp_path, capsys):
    """simulate -> signature -> deconvolve -> evaluate on the Hao PBMC cells.

    A CPM signature estimates RNA fractions: scored against them the estimate is
    accurate; against cell fractions it is visibly biased (plasma cells and
    monocytes carry more RNA than lymphocytes, platelets far less).
    """
    _needs("build_signature")
    _needs("deconvolve")
    folder = data_dir / "hao_pbmc_sc_subset"
    if not folder.is_dir():
        pytest.skip("hao_pbmc_sc_subset not in the shared data")
    counts, labels = str(folder / "counts.tsv.gz"), str(folder / "cell_labels.tsv")
    bulk, cells, rna = tmp_path / "pb.tsv.gz", tmp_path / "cells.tsv", tmp_path / "rna.tsv"
    sig, est = tmp_path / "sig.tsv", tmp_path / "est.tsv"
    assert (
        _run(
            f"simulate --counts {counts} --labels {labels} --samples 40 --output-bulk "
            f"{bulk} --output-truth {cells} --output-rna-truth {rna} -q"
        )
        == 0
    )
    assert _run(f"signature --counts {counts} --labels {labels} --output {sig} -q") == 0
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --output {est} -q") == 0
    capsys.readouterr()
    scores = {}
    for name, truth in (("rna", rna), ("cells", cells)):
        out = tmp_path / f"scores_{name}.tsv"
        assert _run(f"evaluate --estimate {est} --truth {truth} --output {out}") == 0
        scores[name] = pd.read_csv(out, sep="\t", index_col=0)
    assert scores["rna"].loc["overall", "pearson_r"] > 0.95
    assert scores["rna"].loc["overall", "rmse"] < 0.04
    assert scores["cells"].loc["overall", "rmse"] > 2 * scores["rna"].loc["overall", "rmse"]


def test_library_warnings_are_one_line(files, tmp_path, small, capsys):
    _needs("deconvolve")
    _, sig, _ = files
    zero = small.bulk.copy()
    zero.iloc[:, 0] = 0.0  # an all-zero sample: proportions NaN, with a warning
    bulk = _write(zero, tmp_path / "zero.tsv", "gene")
    out = tmp_path / "p.tsv"
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --output {out} -q") == 0
    err = capsys.readouterr().err
    warning_lines = [line for line in err.splitlines() if line.strip()]
    assert warning_lines and all(line.startswith("fastdeconv: warning: ") for line in warning_lines)
    assert ".py:" not in err  # no file:line prefix from the warnings module
    assert out.exists()


def test_deconvolve_weights_and_wls(files, tmp_path, small, capsys):
    bulk, sig, _ = files
    rng = np.random.default_rng(8)
    weights = pd.Series(rng.uniform(0.2, 2.0, len(small.signature)), index=small.signature.index,
                        name="weight")
    wpath = _write(weights.to_frame(), tmp_path / "weights.tsv", "gene")
    out = tmp_path / "wls.tsv"
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --output {out} --method wls "
                f"--weights {wpath} --quiet") == 0
    expected = fastdeconv.deconvolve(small.bulk, small.signature, method="wls", weights=weights,
                                     progress=False).proportions
    got = pd.read_csv(out, sep="\t", index_col=0)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-12)
    # without --weights, wls is a one-line usage error before anything is read
    assert _run(f"deconvolve --bulk missing.tsv --signature {sig} --output {out} "
                "--method wls") == 1
    assert "--method wls needs --weights" in _one_line_error(capsys)
    three = tmp_path / "three.tsv"
    three.write_text("gene\ta\tb\ng1\t1\t2\n")
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --output {out} "
                f"--weights {three}") == 1
    assert "exactly two columns (gene, weight)" in _one_line_error(capsys)


# --------------------------------------------------------------------------- structure

COMMANDS = ("deconvolve", "evaluate", "demo", "signature", "simulate", "linseed", "methods")
DOCS_CLI = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _subcommands(parser):
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def _options(parser):
    return [
        (tuple(a.option_strings), a.dest, a.default, a.required, a.metavar, a.help, a.choices)
        for a in parser._actions
    ]


def test_every_command_has_its_module():
    assert list(_subcommands(build_parser())) == list(COMMANDS)
    modules = [m.__name__ for m in fastdeconv.cli.COMMANDS]
    assert modules == [f"fastdeconv.cli.{c}" for c in COMMANDS]


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_module_builds_its_parser_next_to_run(name):
    module = importlib.import_module(f"fastdeconv.cli.{name}")
    assert callable(module.add_parser) and callable(module.run)
    main_parser = _subcommands(build_parser())[name]
    assert main_parser.get_default("func") is module.run
    # the module alone builds exactly that command, with the same options
    subparsers = argparse.ArgumentParser(prog="fastdeconv").add_subparsers(dest="command")
    built = module.add_parser(subparsers)
    assert list(subparsers.choices) == [name] and subparsers.choices[name] is built
    assert _options(built) == _options(main_parser)


def _squeeze(text):
    return re.sub(r"\s+", "", text)


def test_method_choices_and_help_come_from_the_registry(capsys):
    from fastdeconv.methods import REGRESSION

    parser = build_parser()
    base = ["deconvolve", "--bulk", "b.tsv", "--signature", "s.tsv", "--output", "o.tsv"]
    for method in REGRESSION:
        assert parser.parse_args([*base, "--method", method.name]).method == method.name
        assert parser.parse_args(["demo", "--method", method.name]).method == method.name
    assert main([*base, "--method", "lasso"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'lasso'" in err and all(m.name in err for m in REGRESSION)

    assert main(["deconvolve", "--help"]) == 0
    out = _squeeze(capsys.readouterr().out)  # argparse wraps lines, at hyphens too
    for method in REGRESSION:
        assert _squeeze(f"{method.name}: {method.summary}") in out
    required = [m.name for m in REGRESSION if m.weights == "required"]
    for name in required:
        assert _squeeze(f"required by --method {name}") in out
    assert main(["demo", "--help"]) == 0
    unweighted = [m.name for m in REGRESSION if m.weights != "required"]  # the demo has none
    assert _squeeze(", ".join(unweighted)) in _squeeze(capsys.readouterr().out)


def test_methods_requiring_weights_are_refused_without_them(tmp_path, capsys):
    from fastdeconv.methods import REGRESSION

    required = [m.name for m in REGRESSION if m.weights == "required"]
    assert required  # wls
    for name in required:
        argv = f"deconvolve --bulk missing.tsv --signature missing.tsv --output {tmp_path / 'o'}"
        assert _run(f"{argv}.tsv --method {name}") == 1
        assert f"--method {name} needs --weights FILE" in _one_line_error(capsys)


def test_docs_list_every_option_and_method():
    from fastdeconv.methods import REGRESSION

    text = DOCS_CLI.read_text()
    sections = {
        s.split("`", 2)[1].split()[-1]: s
        for s in re.split(r"^## ", text, flags=re.M)
        if s.startswith("`fastdeconv ")
    }
    shared = {"--help", "--quiet", "--n-jobs"}  # "Behaviour common to all commands"
    missing = {}
    for name, parser in _subcommands(build_parser()).items():
        options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
        absent = sorted(o for o in options - shared if o not in sections.get(name, ""))
        if absent:
            missing[name] = absent
    for option in shared - {"--help"}:
        if option not in text:
            missing.setdefault("common", []).append(option)
    assert missing == {}
    assert [m for m in REGRESSION.names() if f"`{m}`" not in sections["deconvolve"]] == []


def test_library_keywords_in_plain_errors_are_spelled_as_flags(tmp_path, capsys):
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(60)]
    sig = pd.DataFrame(rng.gamma(1.0, 100.0, (60, 3)), index=genes, columns=["A", "B", "C"])
    bulk = pd.DataFrame(sig.to_numpy() @ rng.dirichlet(np.ones(3), 4).T, index=genes,
                        columns=[f"s{j}" for j in range(4)])
    sig.to_csv(tmp_path / "sig.tsv", sep="\t")
    bulk.to_csv(tmp_path / "bulk.tsv", sep="\t")
    base = ["deconvolve", "--bulk", str(tmp_path / "bulk.tsv"), "--signature",
            str(tmp_path / "sig.tsv"), "--output", str(tmp_path / "o.tsv"), "-q"]
    assert main([*base, "--method", "nusvr", "--method-option", "nu=2"]) == 1
    err = capsys.readouterr().err
    assert "--method-option nu=... must be" in err and "method_options" not in err
    assert main([*base, "--method", "simplex_le", "--unexplained"]) == 1
    err = capsys.readouterr().err
    assert "drop --unexplained" in err and "unexplained=" not in err
