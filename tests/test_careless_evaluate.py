"""Issue 13: ``evaluate`` never guesses: transposed tables and partial sample overlaps are refused.

A transposed estimate used to be flipped silently and reported "per type"
figures that were per sample; 10 of 33 matching samples exited 0 with a note.
Now both are errors naming the option (keyword or flag) that says what the
user means; ``-q`` prints nothing; the figure names what was evaluated.
"""

from __future__ import annotations

import re
import shlex

import numpy as np
import pandas as pd
import pytest

from fastdeconv.cli import main
from fastdeconv.errors import InputProblem
from fastdeconv.metrics import evaluate


def _run(command):
    return main(shlex.split(command))


def _error(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("fastdeconv: error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def frames():
    rng = np.random.default_rng(33)
    samples = [f"GSM{i}" for i in range(33)]
    types = ["Liver", "Brain", "Lung"]
    truth = pd.DataFrame(rng.dirichlet([1.0, 2.0, 4.0], size=33), index=samples, columns=types)
    est = (truth + rng.normal(0, 0.03, truth.shape)).clip(lower=0)
    est = est.div(est.sum(axis=1), axis=0)
    est.index.name, truth.index.name = "sample", "sample"
    return est, truth


@pytest.fixture
def files(tmp_path, frames):
    est, truth = frames
    est.to_csv(tmp_path / "est.tsv", sep="\t")
    truth.T.rename_axis("cell_type").to_csv(tmp_path / "truth.tsv", sep="\t")  # as documented
    return tmp_path / "est.tsv", tmp_path / "truth.tsv"


# --------------------------------------------------------------------------- transposed


def test_transposed_estimate_is_refused_not_flipped(frames, files, tmp_path, capsys):
    est, truth = frames
    with pytest.raises(InputProblem, match="the estimate looks transposed") as info:
        evaluate(est.T, truth)
    assert info.value.keywords() == ["transpose_estimate"]
    expected = evaluate(est, truth)
    assert evaluate(est.T, truth, transpose_estimate=True).overall == expected.overall

    est_path, truth_path = files
    flipped = tmp_path / "est_t.tsv"
    est.T.rename_axis("cell_type").to_csv(flipped, sep="\t")
    out = tmp_path / "scores.tsv"
    assert _run(f"evaluate --estimate {flipped} --truth {truth_path} --output {out}") == 1
    assert "estimate looks transposed" in (line := _error(capsys))
    assert "--transpose-estimate" in line and not out.exists()
    assert _run(f"evaluate --estimate {flipped} --truth {truth_path} --output {out} "
                "--transpose-estimate -q") == 0
    scores = pd.read_csv(out, sep="\t", index_col=0)
    assert list(scores.index) == ["Liver", "Brain", "Lung", "overall"]  # per type, not sample
    assert scores.loc["overall", "rmse"] == pytest.approx(expected.overall["rmse"])


def test_transposed_truth_is_refused_not_flipped(frames, files, tmp_path, capsys):
    est, truth = frames
    with pytest.raises(InputProblem, match="the truth looks transposed") as info:
        evaluate(est, truth.T)
    assert info.value.keywords() == ["transpose_truth"]
    est_path, _ = files
    samples_by_types = tmp_path / "truth_sxt.tsv"
    truth.to_csv(samples_by_types, sep="\t")
    assert _run(f"evaluate --estimate {est_path} --truth {samples_by_types}") == 1
    assert "--transpose-truth" in _error(capsys)
    assert _run(f"evaluate --estimate {est_path} --truth {samples_by_types} "
                "--transpose-truth -q") == 0


def test_transposed_table_that_sums_cannot_name_gives_both_flags(frames, capsys):
    est, truth = frames
    rng = np.random.default_rng(1)
    raw = est * rng.uniform(0.5, 2.0, size=(len(est), 1))  # rows no longer sum to one
    with pytest.raises(InputProblem, match="the estimate or the truth is transposed") as info:
        evaluate(raw.T, truth)
    assert sorted(info.value.keywords()) == ["transpose_estimate", "transpose_truth"]


def test_both_transposed_are_refused(frames):
    est, truth = frames
    with pytest.raises(InputProblem, match="both look transposed"):
        evaluate(est.T, truth.T)
    assert evaluate(est.T, truth.T, transpose_estimate=True,
                    transpose_truth=True).overall == evaluate(est, truth).overall


def test_correct_orientation_is_not_second_guessed(frames):
    est, truth = frames
    # a balanced design: every type has the same total across samples
    square = pd.DataFrame(np.roll(np.eye(3) * 0.6 + 0.2, 1, axis=1), columns=est.columns)
    evaluate(square, square)
    evaluate(est.iloc[:2], truth.iloc[:2])  # too small for sums to tell


# --------------------------------------------------------------------------- samples


def test_partial_sample_overlap_is_an_error_naming_counts_and_ids(frames, files, tmp_path,
                                                                   capsys):
    est, truth = frames
    part = truth.iloc[:10]
    with pytest.raises(InputProblem) as info:
        evaluate(est, part)
    text = str(info.value)
    assert "share only 10 samples" in text and "33" in text and "'GSM10'" in text
    assert "samples='common'" in text
    ev = evaluate(est, part, samples="common")
    assert len(ev.estimate) == 10 and "10 common samples" in " ".join(ev.notes)

    est_path, _ = files
    part_path = tmp_path / "truth10.tsv"
    part.T.rename_axis("cell_type").to_csv(part_path, sep="\t")
    rna = tmp_path / "rna.tsv"
    assert _run(f"evaluate --estimate {est_path} --truth {part_path}") == 1
    line = _error(capsys)
    assert "share only 10 samples" in line and "--samples common" in line
    assert _run(f"evaluate --estimate {est_path} --truth {part_path} --samples common "
                f"--fit-rna-content {rna} -q") == 0
    assert rna.exists()


# --------------------------------------------------------------------------- quiet, figure


def test_evaluate_quiet_prints_nothing(files, tmp_path, capsys):
    est, truth = files
    out = tmp_path / "scores.tsv"
    assert _run(f"evaluate --estimate {est} --truth {truth} --output {out} "
                f"--fit-rna-content {tmp_path / 'rna.tsv'} -q") == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert out.exists()
    assert _run(f"evaluate --estimate {est} --truth {truth}") == 0
    assert "overall" in capsys.readouterr().out


def test_evaluate_figure_names_the_files(files, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    titles = []
    original = Figure.savefig

    def savefig(fig, *args, **kwargs):
        titles.append(fig._suptitle.get_text() if fig._suptitle is not None else "")
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    est, truth = files
    assert _run(f"evaluate --estimate {est} --truth {truth} --plot {tmp_path / 'e.png'} -q") == 0
    assert titles == ["estimate est.tsv vs truth truth.tsv"]


def test_demo_figure_names_the_data_and_method(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    titles = []
    original = Figure.savefig

    def savefig(fig, *args, **kwargs):
        titles.append(fig._suptitle.get_text() if fig._suptitle is not None else "")
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    assert _run(f"demo --genes 200 --types 3 --samples 20 --repeats 1 --method simplex -q "
                f"--plot {tmp_path / 'd.png'}") == 0
    assert len(titles) == 1 and "200 genes" in titles[0] and "simplex" in titles[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        ("--types 1", "at least 2 cell types"),
        ("--types 3 --genes 20", "at least max(2 x 3, 50) = 50 genes"),
        ("--method wls", "--method wls needs per-gene weights"),
    ],
)
def test_demo_refuses_impossible_options_before_work(argv, message, capsys):
    assert _run(f"demo --samples 5 --repeats 1 {argv}") == 1
    assert message in _error(capsys)


# --------------------------------------------------------------------------- advice


def _help(command, capsys):
    assert main([command, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    "case, remedy",
    [
        ("transposed estimate", "--transpose-estimate"),
        ("transposed truth", "--transpose-truth"),
        ("both transposed", "--transpose-estimate and --transpose-truth"),
        ("partial overlap", "--samples common"),
        ("components", "--match best"),
    ],
)
def test_every_evaluate_advice_prints_a_flag_that_exists_and_works(frames, tmp_path, capsys,
                                                                    case, remedy):
    est, truth = frames
    if case in ("transposed estimate", "both transposed"):
        est = est.T
    if case in ("transposed truth", "both transposed"):
        truth = truth.T
    if case == "partial overlap":
        truth = truth.iloc[:10]
    if case == "components":
        est = est.set_axis([f"component_{i}" for i in range(1, 4)], axis=1)
    est.to_csv(tmp_path / "est.tsv", sep="\t")
    truth.T.to_csv(tmp_path / "truth.tsv", sep="\t")  # TRUTH files are types x samples
    base = f"evaluate --estimate {tmp_path / 'est.tsv'} --truth {tmp_path / 'truth.tsv'} -q"
    assert _run(base) == 1
    line = _error(capsys)
    assert remedy in line and "(Python only)" not in line, line
    usage = _help("evaluate", capsys)
    for flag in set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", line)):
        assert flag in usage, flag
    assert _run(f"{base} {remedy.replace(' and ', ' ')}") == 0, capsys.readouterr().err


def test_flags_tables_of_evaluate_and_demo_name_real_flags(capsys):
    import inspect

    from fastdeconv.cli import demo as cli_demo
    from fastdeconv.cli import evaluate as cli_evaluate
    from fastdeconv.simulate import run_benchmark

    for module, command, function in ((cli_evaluate, "evaluate", evaluate),
                                      (cli_demo, "demo", run_benchmark)):
        usage = _help(command, capsys)
        assert all(flag in usage for flag in module.FLAGS.values())
        assert set(module.FLAGS) <= set(inspect.signature(function).parameters)
