"""Issue 13: no command overwrites its own input, or writes two results into one file.

``fastdeconv.cli.main`` refuses, before any work, an output option naming the
same file as an input option or as another output (``_common.check_paths``),
for every option the command declares with ``input_file`` / ``output_file``.
These tests run every command with every such pair, spelled directly, through
another path to the same file, and through a symbolic link, and check that the
refusal is one line, that the input is byte-for-byte untouched and that no
output appears.
"""

from __future__ import annotations

import itertools
import os
import re

import pytest

from fastdeconv.cli import build_parser, main

# command -> (input option -> file name, output option -> file name, other arguments)
COMMANDS = {
    "deconvolve": (
        {"--bulk": "bulk.tsv", "--signature": "sig.tsv", "--weights": "weights.tsv",
         "--rna-content": "rna.tsv"},
        {"--output": "out.tsv", "--fit-output": "fit.tsv", "--plot": "p.png",
         "--plot-fit": "pf.png"},
        [],
    ),
    "evaluate": (
        {"--estimate": "est.tsv", "--truth": "truth.tsv"},
        {"--output": "out.tsv", "--fit-rna-content": "rna_out.tsv", "--plot": "p.png"},
        [],
    ),
    "signature": (
        {"--counts": "counts.tsv", "--labels": "labels.tsv"},
        {"--output": "sig_out.tsv", "--markers": "markers.tsv"},
        [],
    ),
    "simulate": (
        {"--counts": "counts.tsv", "--labels": "labels.tsv", "--fractions": "fractions.tsv"},
        {"--output-bulk": "b_out.tsv", "--output-truth": "t_out.tsv",
         "--output-rna-truth": "r_out.tsv", "--plot": "p.png"},
        [],
    ),
    "linseed": (
        {"--bulk": "bulk.tsv", "--marker-genes": "markers_in.tsv"},
        {"--output": "out.tsv", "--signature-output": "sig_out.tsv",
         "--markers-output": "markers_out.tsv", "--plot": "p.png"},
        ["--cell-types", "2"],
    ),
    "demo": ({}, {"--plot": "p.png"}, ["--genes", "50", "--samples", "5"]),
}

CONTENT = {
    "bulk.tsv": "gene\ts1\ts2\ts3\nG1\t10\t20\t30\nG2\t5\t1\t2\nG3\t7\t8\t1\n",
    "sig.tsv": "gene\tT\tB\nG1\t10\t1\nG2\t1\t10\nG3\t5\t5\n",
    "weights.tsv": "gene\tweight\nG1\t1\nG2\t1\nG3\t1\n",
    "rna.tsv": "cell_type\trna\nT\t1\nB\t2\n",
    "est.tsv": "sample\tT\tB\ns1\t0.5\t0.5\ns2\t0.2\t0.8\n",
    "truth.tsv": "cell_type\ts1\ts2\nT\t0.4\t0.3\nB\t0.6\t0.7\n",
    "counts.tsv": "gene\tc1\tc2\tc3\tc4\nG1\t5\t6\t0\t1\nG2\t0\t1\t7\t9\nG3\t2\t2\t2\t2\n",
    "labels.tsv": "cell\tcell_type\nc1\tT\nc2\tT\nc3\tB\nc4\tB\n",
    "fractions.tsv": "cell_type\ts1\ts2\nT\t0.5\t0.2\nB\t0.5\t0.8\n",
    "markers_in.tsv": "cell_type\tgene\nT\tG1\nB\tG2\n",
}

REFUSED = re.compile(r"^fastdeconv: error: (--[a-z-]+) would (overwrite|be the same file as) "
                     r"(--[a-z-]+) ")


def _inputs(folder, command):
    inputs, _, _ = COMMANDS[command]
    for option, name in inputs.items():
        (folder / name).write_text(CONTENT[name])
    return {name: (folder / name).read_bytes() for name in inputs.values()}


def _argv(folder, command, outputs):
    inputs, _, other = COMMANDS[command]
    argv = [command, "-q"]
    for option, name in inputs.items():
        argv += [option, str(folder / name)]
    for option, path in outputs.items():
        argv += [option, str(path)]
    return argv + other


def _required_outputs(command):
    parser = _command_parser(command)
    _, outputs, _ = COMMANDS[command]
    required = {a.option_strings[-1] for a in parser._actions if a.required}
    return {o: n for o, n in outputs.items() if o in required}


def _command_parser(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command]


def _run_refused(capfd, folder, command, outputs, before, first, second):
    """Run, expect the refusal naming both options, and nothing written or changed."""
    status = main(_argv(folder, command, outputs))
    out, err = capfd.readouterr()
    lines = err.splitlines()
    assert status == 1, err
    assert len(lines) == 1, err
    match = REFUSED.match(lines[0])
    assert match, err
    assert {match.group(1), match.group(3)} == {first, second}, err
    assert "Traceback" not in out + err
    for name, content in before.items():
        assert (folder / name).read_bytes() == content, f"{name} was changed"
    assert sorted(p.name for p in folder.iterdir()) == sorted(before), "an output was created"


def _output_input_pairs():
    for command, (inputs, outputs, _) in COMMANDS.items():
        for output, given in itertools.product(outputs, inputs):
            yield pytest.param(command, output, given, id=f"{command} {output}={given}")


def _output_pairs():
    for command, (_, outputs, _) in COMMANDS.items():
        for first, second in itertools.combinations(outputs, 2):
            yield pytest.param(command, first, second, id=f"{command} {first}={second}")


@pytest.mark.parametrize(("command", "output", "given"), list(_output_input_pairs()))
def test_output_equal_to_an_input_is_refused_and_the_input_untouched(
    tmp_path, capfd, command, output, given
):
    before = _inputs(tmp_path, command)
    inputs, _, _ = COMMANDS[command]
    outputs = dict(_required_outputs(command))
    outputs = {o: tmp_path / n for o, n in outputs.items()}
    outputs[output] = tmp_path / inputs[given]
    _run_refused(capfd, tmp_path, command, outputs, before, output, given)


@pytest.mark.parametrize(("command", "first", "second"), list(_output_pairs()))
def test_two_outputs_naming_one_file_are_refused(tmp_path, capfd, command, first, second):
    before = _inputs(tmp_path, command)
    _, all_outputs, _ = COMMANDS[command]
    outputs = {o: tmp_path / n for o, n in _required_outputs(command).items()}
    outputs[first] = tmp_path / all_outputs[first]
    outputs[second] = tmp_path / all_outputs[first]
    _run_refused(capfd, tmp_path, command, outputs, before, first, second)


@pytest.mark.parametrize("command", [c for c, (i, _, _) in COMMANDS.items() if i])
def test_output_through_a_symlink_to_the_input_is_refused(tmp_path, capfd, command):
    if not hasattr(os, "symlink"):
        pytest.skip("no symbolic links")
    before = _inputs(tmp_path, command)
    inputs, _, _ = COMMANDS[command]
    given, name = next(iter(inputs.items()))
    link = tmp_path / ("link_" + name)
    link.symlink_to(tmp_path / name)
    outputs = {o: tmp_path / n for o, n in _required_outputs(command).items()}
    output = next(iter(outputs or COMMANDS[command][1]))
    outputs[output] = link
    _run_refused(capfd, tmp_path, command, outputs, {**before, link.name: before[name]},
                 output, given)
    assert link.is_symlink() and link.resolve() == (tmp_path / name).resolve()


@pytest.mark.parametrize("command", [c for c, (i, _, _) in COMMANDS.items() if i])
def test_output_spelled_as_another_path_to_the_input_is_refused(
    tmp_path, capfd, command, monkeypatch
):
    before = _inputs(tmp_path, command)
    inputs, _, _ = COMMANDS[command]
    given, name = next(iter(inputs.items()))
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    outputs = {o: tmp_path / n for o, n in _required_outputs(command).items()}
    output = next(iter(outputs or COMMANDS[command][1]))
    outputs[output] = os.path.join("..", ".", name)  # relative, through another folder
    before_all = {**before}
    status = main(_argv(tmp_path, command, outputs))
    err = capfd.readouterr().err
    assert status == 1 and REFUSED.match(err), err
    for file, content in before_all.items():
        assert (tmp_path / file).read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "sub"])


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_file_option_is_declared_as_input_or_output(command):
    """Every table and figure option of every command is known to ``check_paths``
    (``--plot`` paths are outputs too)."""
    parser = _command_parser(command)
    inputs, outputs, _ = COMMANDS[command]
    declared_in = set(parser.get_default("io_inputs") or ())
    declared_out = set(parser.get_default("io_outputs") or ())
    dest = {a.option_strings[-1]: a.dest for a in parser._actions if a.option_strings}
    assert {dest[o] for o in inputs} <= declared_in, declared_in
    assert {dest[o] for o in outputs} <= declared_out, declared_out
    # options added later that write files must be declared too
    for action in parser._actions:
        if re.search(r"(^|_)output($|_)|^plot|^markers$", action.dest):
            assert action.dest in declared_out, f"{command} {action.option_strings} not declared"
    assert not declared_in & declared_out


def test_demo_plot_is_an_output(tmp_path, capfd):
    parser = _command_parser("demo")
    assert "plot" in (parser.get_default("io_outputs") or ())


def _input_pairs():
    for command, (inputs, _, _) in COMMANDS.items():
        for first, second in itertools.combinations(inputs, 2):
            yield pytest.param(command, first, second, id=f"{command} {first}={second}")


@pytest.mark.parametrize(("command", "first", "second"), list(_input_pairs()))
def test_one_file_given_for_two_inputs_is_refused(tmp_path, capfd, command, first, second):
    """``deconvolve --bulk x --signature x`` answered (proportions of x in x) with exit 0."""
    before = _inputs(tmp_path, command)
    inputs, _, other = COMMANDS[command]
    outputs = {o: tmp_path / n for o, n in _required_outputs(command).items()}
    argv = [command, "-q"]
    for option, name in inputs.items():
        argv += [option, str(tmp_path / inputs[first] if option == second else tmp_path / name)]
    for option, path in outputs.items():
        argv += [option, str(path)]
    status = main(argv + other)
    out, err = capfd.readouterr()
    lines = err.splitlines()
    assert status == 1 and len(lines) == 1, err
    assert lines[0].startswith(f"fastdeconv: error: {second} names the same file as {first} ")
    for name, content in before.items():
        assert (tmp_path / name).read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)
