"""Issue 13, the single-cell commands: careless input never crashes, hangs or answers wrongly.

`fastdeconv signature` / `simulate` and the functions behind them
(:func:`fastdeconv.build_signature`, :func:`fastdeconv.simulate.pseudobulk`):
normalised values refused as raw counts (with the remedy), transposed counts
recognised from the labels, every advised option a real flag, notes printed
once, the RNA contents and gene weights written for ``deconvolve``, every file
option checked against the others, plots that name their data.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fastdeconv.cli import build_parser, main
from fastdeconv.cli import signature as cli_signature
from fastdeconv.cli import simulate as cli_simulate
from fastdeconv.errors import InputProblem
from fastdeconv.signature import build_signature
from fastdeconv.simulate import pseudobulk

PACKAGE = Path(__file__).resolve().parents[1] / "fastdeconv"


def _run(command):
    return main(shlex.split(command))


def _error(capsys):
    """The one line a failed command printed on stderr."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("fastdeconv: error: ") and "Traceback" not in captured.err
    return lines[0]


def _write(df, path, index_label):
    df.to_csv(path, sep="\t" if ".tsv" in str(path) else ",", index_label=index_label)
    return path


def planted(n_genes=150, per_type=25, seed=0):
    """Raw counts (genes x cells) of three types with 25 markers each, and their labels."""
    rng = np.random.default_rng(seed)
    types = ["T", "B", "Mono"]
    blocks, labels = [], []
    for i, t in enumerate(types):
        rate = np.full(n_genes, 1.0)
        rate[i * 25 : (i + 1) * 25] = 30.0
        depth = rng.uniform(0.5, 1.5, per_type) * (1 + i)
        blocks.append(rng.poisson(rate[:, None] * depth[None, :]))
        labels += [t] * per_type
    counts = pd.DataFrame(
        np.hstack(blocks),
        index=[f"g{i}" for i in range(n_genes)],
        columns=[f"cell{i}" for i in range(per_type * 3)],
    )
    return counts, pd.Series(labels, index=counts.columns, name="cell_type")


@pytest.fixture
def cells(tmp_path):
    counts, labels = planted()
    counts_path = _write(counts, tmp_path / "counts.tsv", "gene")
    labels_path = _write(labels.to_frame(), tmp_path / "labels.tsv", "cell")
    return counts, labels, counts_path, labels_path


def _normalised(counts):
    cpm = counts / counts.sum(axis=0) * 1e6
    return {"CPM": cpm, "log1p(CPM)": np.log1p(cpm), "log1p(counts)": np.log1p(counts)}


# ----------------------------------------------------- item 1: normalised values


@pytest.fixture(scope="module")
def hao(data_dir):
    folder = data_dir / "hao_pbmc_sc_subset"
    if not folder.is_dir():
        pytest.skip("hao_pbmc_sc_subset not in the shared data")
    counts = pd.read_csv(folder / "counts.tsv.gz", sep="\t", index_col=0)
    labels = pd.read_csv(folder / "cell_labels.tsv", sep="\t", index_col=0).iloc[:, 0]
    return counts, labels


@pytest.mark.filterwarnings("ignore:fewer than")
def test_normalised_counts_given_to_signature_are_refused_with_the_advice(hao):
    counts, labels = hao
    raw = build_signature(counts, labels)
    assert raw.rna_content_known and raw.rna_content.nunique() == raw.rna_content.size
    advice = {"CPM": "normalized=True", "log1p(CPM)": "normalized='log1p'",
              "log1p(counts)": "normalized='log1p'"}
    for name, values in _normalised(counts).items():
        with pytest.raises(InputProblem, match="not raw counts") as err:
            build_signature(values, labels)
        assert advice[name] in str(err.value), name
        assert "RNA contents" in str(err.value)
        flags = err.value.render(cli_signature.FLAGS)
        assert "--normalized" in flags and "normalized=" not in flags
    # what the remedies give: the same signature; RNA contents unknown unless counts come back
    cpm = _normalised(counts)["CPM"]
    from_cpm = build_signature(cpm, labels, normalized=True)
    pd.testing.assert_frame_equal(from_cpm.signature, raw.signature, rtol=1e-9)
    assert not from_cpm.rna_content_known and (from_cpm.rna_content == 1.0).all()
    assert any("RNA contents are unknown" in n for n in from_cpm.notes)
    assert "RNA content unknown" in from_cpm.summary()
    unlogged = build_signature(np.log1p(counts), labels, normalized="log1p")
    pd.testing.assert_frame_equal(unlogged.signature, raw.signature, rtol=1e-9)
    pd.testing.assert_series_equal(unlogged.rna_content, raw.rna_content, rtol=1e-9)
    from_log_cpm = build_signature(np.log1p(cpm), labels, normalized="log1p")
    pd.testing.assert_frame_equal(from_log_cpm.signature, raw.signature, rtol=1e-6)
    assert not from_log_cpm.rna_content_known


def test_normalised_counts_given_to_simulate_are_refused_with_the_advice(hao):
    counts, labels = hao
    pb = pseudobulk(counts, labels, 3, seed=0)
    assert not pb.normalized
    for values in _normalised(counts).values():
        with pytest.raises(InputProblem, match="pseudo-bulk samples are sums of raw counts"):
            pseudobulk(values, labels, 3, seed=0)
    from_cpm = pseudobulk(_normalised(counts)["CPM"], labels, 3, seed=0, normalized=True)
    assert from_cpm.normalized
    pd.testing.assert_frame_equal(from_cpm.rna_fractions, from_cpm.cell_fractions)
    again = pseudobulk(np.log1p(counts), labels, 3, seed=0, normalized="log1p")
    pd.testing.assert_frame_equal(again.bulk, pb.bulk)


def test_normalised_tables_are_refused_on_the_command_line(cells, tmp_path, capsys):
    counts, _, _, labels_path = cells
    for values in _normalised(counts).values():
        path = _write(values, tmp_path / "norm.tsv", "gene")
        out = tmp_path / "sig.tsv"
        assert _run(f"signature --counts {path} --labels {labels_path} --output {out}") == 1
        line = _error(capsys)
        assert "not raw counts" in line and "--normalized" in line and "normalized=" not in line
        assert not out.exists()
        assert _run(
            f"simulate --counts {path} --labels {labels_path} --samples 2 --output-bulk "
            f"{tmp_path / 'b.tsv'} --output-truth {tmp_path / 't.tsv'}"
        ) == 1
        assert "--normalized" in _error(capsys)
    cpm = _write(_normalised(counts)["CPM"], tmp_path / "cpm.tsv", "gene")
    assert _run(f"signature --counts {cpm} --labels {labels_path} --output {tmp_path / 's.tsv'} "
                "--normalized") == 0
    err = capsys.readouterr().err
    assert "fastdeconv: note: built from normalised values (--normalized)" in err
    # the RNA contents cannot be written: refused before any work
    assert _run(f"signature --counts {cpm} --labels {labels_path} --output {tmp_path / 's2.tsv'} "
                f"--normalized --rna-content-output {tmp_path / 'rna.tsv'}") == 1
    assert "--rna-content-output: the RNA contents are unknown" in _error(capsys)
    assert not (tmp_path / "s2.tsv").exists() and not (tmp_path / "rna.tsv").exists()
    assert _run(f"simulate --counts {cpm} --labels {labels_path} --samples 2 --normalized "
                f"--output-bulk {tmp_path / 'b.tsv'} --output-truth {tmp_path / 't.tsv'} "
                f"--output-rna-truth {tmp_path / 'r.tsv'}") == 1
    assert "--output-rna-truth: the RNA fractions are unknown" in _error(capsys)
    # log1p of counts, un-logged: the counts again, RNA contents known
    logged = _write(np.log1p(counts), tmp_path / "log.tsv", "gene")
    rna = tmp_path / "rna.tsv"
    assert _run(f"signature --counts {logged} --labels {labels_path} --output {tmp_path / 's3.tsv'}"
                f" --normalized log1p --rna-content-output {rna} -q") == 0
    content = pd.read_csv(rna, sep="\t", index_col=0)["rna_content"]
    np.testing.assert_allclose(content.loc[["T", "B", "Mono"]],
                               counts.sum().groupby(cells[1]).mean().loc[["T", "B", "Mono"]])


@pytest.mark.parametrize("method", ["poisson", "nb"])
def test_likelihood_ratio_tests_on_normalised_values_name_the_t_test(cells, method):
    counts, labels, _, _ = cells
    with pytest.raises(InputProblem) as err:
        build_signature(counts / counts.sum() * 1e6, labels, method=method, normalized=True)
    assert err.value.render(cli_signature.FLAGS).startswith(f"--method {method} is a likelihood")
    assert "--method t-test" in err.value.render(cli_signature.FLAGS)


def test_normalized_true_refuses_log_values_and_log1p_refuses_raw_counts(cells):
    counts, labels, _, _ = cells
    with pytest.raises(InputProblem, match="normalized='log1p' to un-log"):
        build_signature(np.log1p(counts), labels, normalized=True)
    with pytest.raises(InputProblem, match="these are not log values"):
        build_signature(counts, labels, normalized="log1p")
    with pytest.raises(ValueError, match="normalized must be"):
        build_signature(counts, labels, normalized="cpm")


def test_raw_counts_in_every_layout_still_pass(cells):
    counts, labels, _, _ = cells
    ref = build_signature(counts, labels, n_markers=5)
    for layout in (counts.to_numpy(dtype=float), sp.csr_array(counts.to_numpy()),
                   sp.csc_array(counts.to_numpy(dtype=np.float32))):
        res = build_signature(layout, labels.to_numpy(), gene_names=counts.index, n_markers=5)
        pd.testing.assert_frame_equal(res.signature, ref.signature, rtol=1e-6,
                                      check_dtype=False)


# ----------------------------------------- item 2: every remedy is a real flag


def _fix_keywords(path):
    """The keywords of every Fix(...) written in a module."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Fix" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant):
                found.add(first.value)
            else:  # Fix(keyword, ...) with a variable: the values it takes
                found.update({"labels", "label_key"})
    return found


@pytest.mark.parametrize(
    ("command", "modules"),
    [
        (cli_signature, ["inputs/counts.py", "signature.py"]),
        (cli_simulate, ["inputs/counts.py", "simulate.py"]),
    ],
)
def test_every_remedy_of_signature_and_simulate_is_a_flag_of_the_command(command, modules):
    keywords = set().union(*(_fix_keywords(PACKAGE / m) for m in modules))
    assert keywords - set(command.FLAGS) == set()
    parser = build_parser()
    name = command.__name__.rsplit(".", 1)[1]
    sub = next(a for a in parser._actions if hasattr(a, "choices") and a.choices)
    options = {o for a in sub.choices[name]._actions for o in a.option_strings}
    assert set(command.FLAGS.values()) <= options
    assert sub.choices[name].get_default("flags") is command.FLAGS


def test_marker_thresholds_are_flags_with_the_library_defaults(cells, tmp_path):
    import inspect

    defaults = inspect.signature(build_signature).parameters
    args = build_parser().parse_args(["signature", "--counts", "c", "--labels", "l",
                                      "--output", "o.tsv"])
    for keyword in ("fdr", "min_log_fc", "min_frac", "method"):
        assert getattr(args, keyword) == defaults[keyword].default
    assert cli_signature.METHODS == __import__("fastdeconv.signature").signature._METHODS
    counts, labels, counts_path, labels_path = cells
    out = tmp_path / "sig.tsv"
    assert _run(f"signature --counts {counts_path} --labels {labels_path} --output {out} "
                "--fdr 0.2 --min-log-fc 0.5 --min-frac 0.3 --n-markers 8 -q") == 0
    expected = build_signature(counts, labels, fdr=0.2, min_log_fc=0.5, min_frac=0.3,
                               n_markers=8)
    got = pd.read_csv(out, sep="\t", index_col=0)
    pd.testing.assert_frame_equal(got, expected.signature, check_names=False, rtol=1e-12)


@pytest.mark.parametrize("argv", ["--fdr 1.5", "--min-frac -0.1", "--min-log-fc nan",
                                  "--method wilcoxon", "--normalized cpm"])
def test_bad_threshold_values_are_usage_errors(argv, tmp_path, capsys):
    assert _run(f"signature --counts c.tsv --labels l.tsv --output {tmp_path / 'o.tsv'} "
                f"{argv}") == 2
    assert "Traceback" not in capsys.readouterr().err


def test_too_many_markers_names_the_flag(cells, tmp_path, capsys):
    _, _, counts_path, labels_path = cells
    assert _run(f"signature --counts {counts_path} --labels {labels_path} --output "
                f"{tmp_path / 's.tsv'} --n-markers 151") == 1
    line = _error(capsys)
    assert "--n-markers 151 asks for more markers" in line and "--n-markers 150 or fewer" in line


def test_too_many_clusters_names_the_flag(cells, tmp_path, capsys):
    _, _, counts_path, _ = cells
    out = tmp_path / "s.tsv"
    assert _run(f"signature --counts {counts_path} --clusters 50 --output {out}") == 1
    line = _error(capsys)
    assert "--clusters 50 is too many clusters for 75 cells" in line
    assert "--clusters 37 or fewer" in line


def test_no_marker_at_all_names_the_threshold_flags(cells, tmp_path, capsys):
    _, _, counts_path, labels_path = cells
    assert _run(f"signature --counts {counts_path} --labels {labels_path} --output "
                f"{tmp_path / 's.tsv'} --min-log-fc 20") == 1
    line = _error(capsys)
    assert "--fdr 0.05, --min-log-fc 20.0, --min-frac 0.1" in line
    assert "min_log_fc=" not in line


@pytest.mark.filterwarnings("ignore:fewer than")
def test_duplicated_genes_in_counts_name_the_duplicates_flag(cells, tmp_path, capsys):
    counts, labels, _, labels_path = cells
    dup = counts.rename(index={"g1": "g0"})
    path = _write(dup, tmp_path / "dup.tsv", "gene")
    out = tmp_path / "s.tsv"
    assert _run(f"signature --counts {path} --labels {labels_path} --output {out}") == 1
    assert "pass --duplicates sum to add their counts up" in _error(capsys)
    assert _run(f"signature --counts {path} --labels {labels_path} --output {out} "
                "--duplicates sum -q") == 0
    summed = dup.groupby(level=0, sort=False).sum()
    expected = build_signature(summed, labels)
    got = pd.read_csv(out, sep="\t", index_col=0)
    pd.testing.assert_frame_equal(got, expected.signature, check_names=False, rtol=1e-12)
    # sparse counts stay sparse when duplicates are summed (no genes x genes matrix)
    from fastdeconv.inputs.counts import as_counts

    c = as_counts(sp.csr_array(dup.to_numpy()), gene_names=list(dup.index), duplicates="sum")
    assert c.sparse and c.n_genes == dup.shape[0] - 1


def test_fraction_and_sample_messages_speak_to_the_command_line(cells, tmp_path, capsys):
    _, _, counts_path, labels_path = cells
    fractions = pd.DataFrame({"m1": [0.5, 0.3, 0.1], "m2": [0.2, 0.2, 0.6]},
                             index=["T", "B", "Mono"])
    path = _write(fractions, tmp_path / "f.tsv", "cell_type")
    outputs = f"--output-bulk {tmp_path / 'b.tsv'} --output-truth {tmp_path / 't.tsv'}"
    assert _run(f"simulate --counts {counts_path} --labels {labels_path} --fractions {path} "
                f"{outputs}") == 1
    line = _error(capsys)
    assert "sample 'm1' sum to 0.9" in line and "df.div" not in line
    good = _write(fractions.div(fractions.sum()), tmp_path / "g.tsv", "cell_type")
    assert _run(f"simulate --counts {counts_path} --labels {labels_path} --fractions {good} "
                f"--samples 3 {outputs}") == 1
    assert "--samples 3 does not match the 2 samples of fractions" in _error(capsys)


def test_layer_flag_reads_the_raw_counts_of_an_h5ad(cells, tmp_path, capsys):
    anndata = pytest.importorskip("anndata")
    counts, labels, _, _ = cells
    cpm = counts / counts.sum() * 1e6
    adata = anndata.AnnData(
        X=np.log1p(cpm.T.to_numpy()),
        obs=pd.DataFrame({"cell_type": labels.to_numpy()}, index=counts.columns),
        var=pd.DataFrame(index=counts.index),
        layers={"counts": counts.T.to_numpy().astype(np.float32)},
    )
    h5ad = tmp_path / "cells.h5ad"
    adata.write_h5ad(h5ad)
    out = tmp_path / "s.tsv"
    assert _run(f"signature --counts {h5ad} --label-key cell_type --output {out}") == 1
    line = _error(capsys)
    assert "this AnnData has a layer 'counts': pass --layer counts" in line
    assert _run(f"signature --counts {h5ad} --label-key cell_type --output {out} "
                "--layer counts -q") == 0
    assert _run(f"signature --counts {h5ad} --label-key cell_type --output {out} "
                "--layer raw") == 1
    assert "pass --layer counts" in _error(capsys)
    assert _run(f"signature --counts {h5ad} --label-key celltype --output {out} "
                "--layer counts") == 1
    assert "--label-key celltype is not a column of .obs" in _error(capsys)
    assert _run(f"signature --counts {h5ad} --label-key cell_type --output {out} "
                "--transpose-counts") == 1
    assert "--transpose-counts is for tables" in _error(capsys)


def test_table_only_and_h5ad_only_options_are_refused_before_reading(tmp_path, capsys):
    out = tmp_path / "s.tsv"
    assert _run(f"signature --counts missing.tsv --labels l.tsv --layer counts "
                f"--output {out}") == 1
    assert "--layer is for .h5ad counts only" in _error(capsys)
    assert _run(f"signature --counts missing.tsv --label-key cell_type --output {out}") == 1
    assert "--label-key is for .h5ad counts only" in _error(capsys)
    assert _run(f"signature --counts missing.tsv --labels l.tsv --clusters 3 --output {out}") == 1
    assert "not both" in _error(capsys)


# ------------------------------------------------------- item 3: notes once


def test_signature_note_prints_once_on_stderr(cells, tmp_path, capsys):
    _, _, counts_path, labels_path = cells
    out = tmp_path / "s.tsv"
    command = f"signature --counts {counts_path} --labels {labels_path} --output {out}"
    assert _run(f"{command} --n-markers 30") == 0  # only 25 planted markers per type
    captured = capsys.readouterr()
    assert "note:" not in captured.out and "fewer than 30" not in captured.out
    assert "Signature:" in captured.out
    warned = [line for line in captured.err.splitlines() if "fewer than 30" in line]
    assert len(warned) == 1 and warned[0].startswith("fastdeconv: warning: ")
    assert "--fdr 0.05, --min-log-fc 1.0, --min-frac 0.1" in warned[0]
    assert re.search(r"relax --(fdr|min-log-fc|min-frac) ", warned[0])
    assert "fdr=" not in warned[0] and "min_frac" not in warned[0]
    # -q: no summary, the warning still shows, once
    assert _run(f"{command} --n-markers 30 -q") == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len([line for line in captured.err.splitlines() if "fewer than 30" in line]) == 1


def test_python_notes_keep_their_keywords(cells):
    counts, labels, _, _ = cells
    with pytest.warns(UserWarning, match=r"relax (fdr|min_log_fc|min_frac)="):
        res = build_signature(counts, labels, n_markers=30)
    assert res.notes and res.notes[0].warning
    assert "min_frac=0.1" in res.notes[0] and "--min-frac" in res.notes[0].render(
        cli_signature.FLAGS)
    import pickle

    assert pickle.loads(pickle.dumps(res.notes[0])).render({}) == res.notes[0].render({})


# ------------------------------------- item 4: RNA contents and weights for deconvolve


def test_rna_content_and_weights_outputs_round_trip_to_deconvolve(cells, tmp_path, capsys):
    import fastdeconv

    counts, labels, counts_path, labels_path = cells
    sig, rna, weights = tmp_path / "sig.tsv", tmp_path / "rna.tsv", tmp_path / "w.csv"
    assert _run(f"signature --counts {counts_path} --labels {labels_path} --output {sig} "
                f"--rna-content-output {rna} --weights-output {weights} -q") == 0
    assert rna.read_text().splitlines()[0] == "cell_type\trna_content"
    assert weights.read_text().splitlines()[0] == "gene,weight"
    pb = pseudobulk(counts, labels, 6, cells_per_sample=60, seed=2)
    bulk = _write(pb.bulk, tmp_path / "bulk.tsv", "gene")
    est = tmp_path / "cells.tsv"
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --weights {weights} "
                f"--rna-content {rna} --output {est} -q") == 0
    # the README's Python route gives the same cell fractions
    res = build_signature(counts, labels)
    fit = fastdeconv.deconvolve(pb.bulk, res.signature, weights=res.gene_weights)
    expected = fit.to_cell_fractions(res)
    got = pd.read_csv(est, sep="\t", index_col=0)
    pd.testing.assert_frame_equal(got, expected[got.columns], check_names=False, rtol=1e-8,
                                  atol=1e-10)


# ------------------------------------------------------- item 5: orientation


def test_counts_given_cells_by_genes_are_refused_as_transposed(cells, tmp_path, capsys):
    counts, labels, counts_path, labels_path = cells
    flipped = _write(counts.T, tmp_path / "flipped.tsv", "cell")
    out = tmp_path / "s.tsv"
    for command in (
        f"signature --counts {flipped} --labels {labels_path} --output {out}",
        (f"simulate --counts {flipped} --labels {labels_path} --samples 2 --output-bulk "
         f"{tmp_path / 'b.tsv'} --output-truth {tmp_path / 't.tsv'}"),
    ):
        assert _run(command) == 1
        line = _error(capsys)
        assert "counts look transposed" in line and "pass --transpose-counts" in line
    assert _run(f"signature --counts {flipped} --labels {labels_path} --output {out} "
                "--transpose-counts -q") == 0
    pd.testing.assert_frame_equal(pd.read_csv(out, sep="\t", index_col=0),
                                  build_signature(counts, labels).signature,
                                  check_names=False, rtol=1e-12)
    # transposed once too often
    assert _run(f"signature --counts {counts_path} --labels {labels_path} --output {out} "
                "--transpose-counts") == 1
    assert "leave --transpose-counts out" in _error(capsys)
    # labels without ids, as many as the rows: the same diagnosis in Python
    with pytest.raises(InputProblem, match="transpose=True"):
        build_signature(counts.T.to_numpy(), list(labels))


def test_transposed_counts_without_labels_are_recognised_by_their_barcodes(tmp_path, capsys):
    rng = np.random.default_rng(1)
    barcodes = ["".join(rng.choice(list("ACGT"), 16)) + "-1" for _ in range(40)]
    counts = pd.DataFrame(rng.poisson(2.0, (30, 40)), index=[f"GENE{i}" for i in range(30)],
                          columns=barcodes)
    flipped = _write(counts.T, tmp_path / "flipped.tsv", "cell")
    out = tmp_path / "s.tsv"
    assert _run(f"signature --counts {flipped} --clusters 2 --output {out}") == 1
    line = _error(capsys)
    assert "look like cell barcodes" in line and "--transpose-counts" in line
    from fastdeconv.signature import cluster_cells

    with pytest.raises(InputProblem, match="transpose=True"):
        cluster_cells(counts.T, 2)
    assert cluster_cells(counts, 2).size == 40  # the right way round: clustered
    assert cluster_cells(counts.T, 2, transpose=True).size == 40


def test_transposed_counts_never_form_a_cells_by_cells_matrix(cells):
    """Reading transposed counts is a view; nothing squares the number of cells or genes."""
    from fastdeconv.inputs.counts import as_counts

    counts, _, _, _ = cells
    x = np.ascontiguousarray(counts.T.to_numpy(dtype=float))
    c = as_counts(x, transpose=True)
    assert c.matrix.base is x or np.shares_memory(c.matrix, x)
    assert (c.n_genes, c.n_cells) == counts.shape


# ---------------------------------------------- item 6: file options checked


@pytest.mark.parametrize(
    ("command", "inputs", "outputs"),
    [
        ("signature", {"counts", "labels"},
         {"output", "markers", "rna_content_output", "weights_output"}),
        ("simulate", {"counts", "labels", "fractions"},
         {"output_bulk", "output_truth", "output_rna_truth", "plot"}),
    ],
)
def test_every_file_option_is_declared_for_the_path_checks(command, inputs, outputs):
    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and a.choices)
    p = sub.choices[command]
    assert set(p.get_default("io_inputs")) == inputs
    assert set(p.get_default("io_outputs")) == outputs


def test_an_output_equal_to_the_counts_is_refused(cells, tmp_path, capsys):
    _, _, counts_path, labels_path = cells
    before = Path(counts_path).read_bytes()
    assert _run(f"signature --counts {counts_path} --labels {labels_path} --output "
                f"{tmp_path / 's.tsv'} --weights-output {counts_path}") == 1
    assert "--weights-output would overwrite --counts" in _error(capsys)
    assert _run(f"simulate --counts {counts_path} --labels {labels_path} --samples 2 "
                f"--output-bulk {tmp_path / 'b.tsv'} --output-truth {tmp_path / 'b.tsv'}") == 1
    assert "--output-truth would be the same file as --output-bulk" in _error(capsys)
    assert Path(counts_path).read_bytes() == before


# ------------------------------------------------- item 7: plots name their data


def test_simulate_plot_title_names_the_counts_file(cells, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import fastdeconv.plotting

    titles = []
    original = fastdeconv.plotting.plot_proportions

    def spy(*args, **kwargs):
        titles.append(kwargs.get("title"))
        return original(*args, **kwargs)

    monkeypatch.setattr(fastdeconv.plotting, "plot_proportions", spy)
    _, _, counts_path, labels_path = cells
    png = tmp_path / "truth.png"
    assert _run(f"simulate --counts {counts_path} --labels {labels_path} --samples 3 "
                f"--output-bulk {tmp_path / 'b.tsv'} --output-truth {tmp_path / 't.tsv'} "
                f"--plot {png} -q") == 0
    assert titles == ["true cell fractions: pseudo-bulk of counts.tsv"]
    assert png.stat().st_size > 1000
