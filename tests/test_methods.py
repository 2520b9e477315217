"""The regression method registry: every method is reachable, documented, and one more fits in.

Every method of :data:`fastdeconv.methods.REGRESSION` must be reachable from
the API (``fastdeconv.deconvolve(method=...)``) and from the command line
(``fastdeconv deconvolve --method``), and be documented in ``docs/guide.md``;
a method registered later runs through the pipeline without any change to it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fastdeconv
from fastdeconv import blockwise
from fastdeconv.methods import REGRESSION, Method, show_methods
from fastdeconv.methods._problem import MethodFit, RegressionProblem

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"
TYPES = ["T cells", "B cells", "Monocytes"]
TOY = "toy_lstsq"


def planted(n_genes=120, n_samples=6, seed=0):
    """Bulk = signature @ proportions exactly, with marker structure."""
    rng = np.random.default_rng(seed)
    sig = rng.gamma(0.8, 50.0, size=(n_genes, len(TYPES))) + 1.0
    for t in range(len(TYPES)):
        sig[t * 20:(t + 1) * 20, t] *= 20.0
    props = rng.dirichlet(np.ones(len(TYPES)), size=n_samples)
    genes = [f"G{i}" for i in range(n_genes)]
    samples = [f"S{j}" for j in range(n_samples)]
    return (
        pd.DataFrame(sig @ props.T, index=genes, columns=samples),
        pd.DataFrame(sig, index=genes, columns=TYPES),
        pd.DataFrame(props, index=samples, columns=TYPES),
    )


def _weights_for(record, signature):
    if record.weights == "required":
        return np.random.default_rng(1).uniform(0.5, 2.0, size=len(signature))
    return None


# --- a fifth method, registered only inside the tests that use it ---------------------


def _fit_toy(problem):
    """Unconstrained (weighted) least squares, clipped at 0: a direct method."""
    sw = 1.0 if problem.weights is None else np.sqrt(problem.weights)[:, None]
    X = np.linalg.lstsq(problem.S * sw, problem.B * sw, rcond=None)[0]
    return MethodFit.exact(np.clip(X, 0.0, None), extra={"leftover": np.zeros(problem.m)})


@pytest.fixture
def toy_method():
    REGRESSION.names()  # load the registered methods first
    record = REGRESSION.register(
        Method(
            TOY, "least squares clipped at 0 (a test method)", fit=_fit_toy, normalise=True,
            losses=("squared",), extra_columns=("leftover",),
        )
    )
    try:
        yield record
    finally:
        REGRESSION._methods.pop(TOY, None)


# --- (a) the API ----------------------------------------------------------------------


def planted_cells(seed=0, cells_per_type=60):
    """Single-cell counts of the planted types and a bulk of known RNA fractions."""
    rng = np.random.default_rng(seed)
    _, sig, props = planted()
    genes = list(sig.index)
    profile = sig.to_numpy() / sig.to_numpy().sum(axis=0)
    counts = np.column_stack([
        rng.poisson(profile[:, t] * 3000.0, size=(cells_per_type, len(genes))).T
        for t in range(len(TYPES))
    ])
    labels = np.repeat(TYPES, cells_per_type)
    cells = pd.DataFrame(counts, index=genes, columns=[f"c{i}" for i in range(counts.shape[1])])
    bulk = pd.DataFrame(rng.poisson(1e8 * profile @ props.T.to_numpy()).astype(float),
                        index=genes, columns=props.index)
    return bulk, cells, labels, props


@pytest.mark.parametrize("name", REGRESSION.names())
def test_every_method_is_reachable_from_the_api(name):
    bulk, sig, props = planted()
    record = REGRESSION.get(name)
    if record.reference == "counts":  # fitted to single cells: RNA fractions recovered
        bulk, cells, labels, props = planted_cells()
        res = fastdeconv.deconvolve(bulk, cells, method=name, labels=labels, fractions="rna",
                                    exclude=())
        assert res.method == name
        np.testing.assert_allclose(res.proportions[TYPES].to_numpy(), props.to_numpy(),
                                   atol=0.01)
        assert res.fit["converged"].all()
        return
    if record.uses("cells"):  # fitted to single cells (from donors, when it uses them)
        bulk, cells, labels, props = planted_cells()
        donors = {"subjects": np.tile(["d1", "d2", "d3"], cells.shape[1] // 3)} if (
            record.uses("subjects")) else {}
        res = fastdeconv.deconvolve(bulk, cells, method=name, labels=labels, **donors)
    else:
        res = fastdeconv.deconvolve(bulk, sig, method=name, weights=_weights_for(record, sig))
    assert res.method == name
    assert sorted(res.proportions.columns) == sorted(TYPES + list(record.extra_columns))
    assert res.fit["converged"].all()
    # the fit statistics judge the method's own reconstruction (rescaled bulks, cell fractions)
    assert (res.fit["r2"] > 0.95).all() and (res.fit["pearson_r"] > 0.99).all(), res.fit
    if record.cell_fractions:  # corrected for RNA per cell by the method's own rule
        np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0, atol=1e-9)
        est = res.proportions[TYPES].to_numpy().ravel()
        # (bisque shrinks toward the donors' mean composition: identical donors here)
        assert np.corrcoef(est, props[TYPES].to_numpy().ravel())[0, 1] > 0.75
        return
    np.testing.assert_allclose(res.proportions[TYPES].to_numpy(), props.to_numpy(), atol=1e-8)


@pytest.mark.parametrize("name", REGRESSION.names())
def test_records_are_complete(name):
    record = REGRESSION.get(name)
    assert callable(record.fit) and record.summary
    assert set(record.losses) <= {"squared", "huber", "likelihood"} and record.losses
    assert record.reference in ("signature", "counts")
    assert record.references, f"{name}: cite the method's paper"


def test_show_methods_lists_the_registry():
    assert tuple(show_methods()["method"]) == REGRESSION.names()


def test_the_pipeline_names_no_method():
    # what deconvolve does with a method comes from its record, never from its name:
    # no method name appears as a string in the body of any function of the pipeline
    tree = ast.parse((ROOT / "fastdeconv" / "regression.py").read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            for stmt in body:
                for leaf in ast.walk(stmt):
                    if isinstance(leaf, ast.Constant) and leaf.value in REGRESSION.names():
                        found.append((node.name, leaf.value, leaf.lineno))
    assert not found, f"fastdeconv/regression.py names methods: {found}"


def test_method_options_are_checked_against_the_record():
    bulk, sig, _ = planted()
    with pytest.raises(ValueError, match="method must be one of 'nnls'"):
        fastdeconv.deconvolve(bulk, sig, method="svr")
    with pytest.raises(ValueError, match="method='wls' needs per-gene weights"):
        fastdeconv.deconvolve(bulk, sig, method="wls")
    with pytest.raises(ValueError, match="background=True needs method 'nnls' or 'wls'"):
        fastdeconv.deconvolve(bulk, sig, method="simplex_le", background=True)


# --- (b) the command line ---------------------------------------------------------------


def _deconvolve_parser():
    import argparse

    from fastdeconv.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = commands.choices["deconvolve"]
    method = next(a for a in sub._actions if "--method" in a.option_strings)
    return parser, sub, method


def _cli_method_names():
    """The names ``fastdeconv deconvolve --method`` accepts (its choices, or what it parses)."""
    parser, _, action = _deconvolve_parser()
    if action.choices is not None:
        return tuple(action.choices)
    base = ["deconvolve", "--bulk", "b.tsv", "--signature", "s.tsv", "--output", "o.tsv"]
    accepted = []
    for name in dict.fromkeys((*REGRESSION.names(), TOY, "not-a-method")):
        try:
            args = parser.parse_args([*base, "--method", name])
        except SystemExit:
            continue
        assert args.method == name
        accepted.append(name)
    return tuple(accepted)


def test_cli_method_choices_are_the_registry(capsys):
    assert _cli_method_names() == REGRESSION.names()
    capsys.readouterr()  # argparse's usage errors for the names it refused
    _, sub, _ = _deconvolve_parser()
    text = sub.format_help()
    missing = [name for name in REGRESSION.names() if name not in text]
    assert not missing, f"`fastdeconv deconvolve --help` does not list {missing}"


def test_cli_reaches_a_newly_registered_method(toy_method, tmp_path, capsys):
    from fastdeconv.cli import main

    assert _cli_method_names() == REGRESSION.names()  # the toy is among them now
    capsys.readouterr()
    bulk, sig, props = planted()
    fastdeconv.write_table(bulk, tmp_path / "bulk.tsv", index_label="gene")
    fastdeconv.write_table(sig, tmp_path / "sig.tsv", index_label="gene")
    out = tmp_path / "p.tsv"
    code = main(["deconvolve", "--bulk", str(tmp_path / "bulk.tsv"), "--signature",
                 str(tmp_path / "sig.tsv"), "--output", str(out), "--method", TOY,
                 "--robust", "none", "-q"])
    assert code == 0
    got = fastdeconv.read_table(out)
    np.testing.assert_allclose(got[TYPES].to_numpy(), props.to_numpy(), atol=1e-8)


# --- (c) the documentation ------------------------------------------------------------


def _guide_methods_table():
    """Rows of the methods table in docs/guide.md: name -> the cells, as text."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("## 4. Methods"):]
    section = section[: section.index("\n## ", 1)]
    rows = {}
    for line in section.splitlines():
        match = re.match(r'^\| `"(\w+)"`', line)
        if match:
            # the last three cells hold no "|" (earlier cells may hold escaped ones)
            cells = [c.strip() for c in line.strip().strip("|").rsplit("|", 3)]
            rows[match.group(1)] = cells
    return rows


def test_every_method_is_documented_in_the_guide():
    text = GUIDE.read_text(encoding="utf-8")
    missing = [name for name in REGRESSION.names() if f'"{name}"' not in text]
    assert not missing, f"docs/guide.md does not mention {missing}"


def test_guide_methods_table_is_the_registry():
    rows = _guide_methods_table()
    assert tuple(rows) == REGRESSION.names()
    for name, (first, weights, background, robust) in rows.items():
        record = REGRESSION.get(name)
        assert weights == record.weights, name
        assert background.startswith("yes" if record.background else "no"), name
        assert robust == ("yes" if "huber" in record.losses else "no"), name
        for column in record.extra_columns:
            assert f'"{column}"' in first, f"{name}: the table does not name column {column!r}"


# --- (d) a fifth method needs no change to the pipeline --------------------------------


def test_a_new_method_runs_through_the_pipeline_unchanged(toy_method):
    bulk, sig, props = planted()
    res = fastdeconv.deconvolve(bulk, sig, method=TOY, robust=None)
    assert res.method == TOY and res.options["method"] == TOY
    np.testing.assert_allclose(res.proportions[TYPES].to_numpy(), props.to_numpy(), atol=1e-8)
    assert (res.proportions["leftover"] == 0).all()
    assert res.fit["converged"].all() and (res.fit["background"] == 0).all()
    # weights reach the method; its record decides what else is allowed
    w = np.random.default_rng(2).uniform(0.5, 2.0, size=len(sig))
    weighted = fastdeconv.deconvolve(bulk, sig, method=TOY, robust=None, weights=w)
    np.testing.assert_allclose(weighted.proportions[TYPES].to_numpy(), props.to_numpy(), atol=1e-8)
    with pytest.raises(ValueError, match="does not support robust='huber'"):
        fastdeconv.deconvolve(bulk, sig, method=TOY, robust="huber")
    # robust="auto" (the default) is the record's own loss
    auto = fastdeconv.deconvolve(bulk, sig, method=TOY)
    np.testing.assert_allclose(auto.proportions[TYPES].to_numpy(), props.to_numpy(), atol=1e-8)
    with pytest.raises(ValueError, match="background=True needs method"):
        fastdeconv.deconvolve(bulk, sig, method=TOY, robust=None, background=True)


def test_the_problem_a_method_receives(toy_method):
    seen = []

    def spy(problem):
        seen.append(problem)
        return _fit_toy(problem)

    object.__setattr__(toy_method, "fit", spy)
    bulk, sig, _ = planted()
    bulk["zero"] = 0.0
    with pytest.warns(UserWarning, match="zero on all"):
        res = fastdeconv.deconvolve(bulk, sig, method=TOY, robust=None, n_jobs=2)
    (problem,) = seen
    assert isinstance(problem, RegressionProblem)
    assert problem.S.flags.c_contiguous and problem.S.dtype == np.float64
    assert problem.B.shape == (len(sig), 6)  # the all-zero sample is not handed over
    assert problem.weights is None and problem.loss == "squared" and problem.n_jobs == 2
    assert res.proportions.loc["zero"].isna().all()


# --- the method's own options, single cells and donors ------------------------------


@pytest.fixture
def options_method():
    """A method with its own options that needs single cells and donors, and sees all samples."""
    REGRESSION.names()
    seen = []

    def fit(problem):
        seen.append(problem)
        X = _fit_toy(problem).coefficients * problem.options["scale"]
        return MethodFit.exact(X)

    record = REGRESSION.register(Method(
        "toy_cells", "needs cells (a test method)", fit=fit, normalise=True,
        options={"scale": 1.0, "grid": (0.25, 0.5)},
        option_docs={"scale": "multiplies the coefficients", "grid": "unused"},
        needs=("cells", "subjects"), batch_dependent=True,
    ))
    try:
        yield record, seen
    finally:
        REGRESSION._methods.pop("toy_cells", None)


def test_method_options_reach_the_method_and_unknown_keys_are_refused(options_method):
    record, seen = options_method
    assert record.resolve_options() == {"scale": 1.0, "grid": (0.25, 0.5)}
    assert record.resolve_options({"scale": "2", "grid": "0.1, 0.2"}) == {
        "scale": 2.0, "grid": (0.1, 0.2)}
    with pytest.raises(ValueError, match=r"no option 'sclae' in method_options= \(its options: "
                       r"'scale', 'grid'\)"):
        record.resolve_options({"sclae": 2})
    with pytest.raises(TypeError, match="method_options must be a dict"):
        record.resolve_options([("scale", 2)])
    bulk, sig, _ = planted()
    with pytest.raises(ValueError, match="method='nnls' has no option 'nu'"):
        fastdeconv.deconvolve(bulk, sig, method="nnls", method_options={"nu": 0.5})
    assert show_methods().set_index("method").loc["toy_cells", "options"] == (
        "scale=1.0, grid=(0.25, 0.5)")


def test_a_method_that_needs_cells_gets_them_per_donor(options_method):
    from fastdeconv.errors import InputProblem

    record, seen = options_method
    bulk, cells, labels, props = planted_cells(cells_per_type=40)
    donors = np.tile(["d1", "d2"], cells.shape[1] // 2)
    bulk = pd.concat([bulk] * 1, axis=1)
    with pytest.raises(InputProblem, match="needs a single-cell reference.*labels="):
        fastdeconv.deconvolve(bulk, planted()[1], method="toy_cells")
    with pytest.raises(InputProblem, match="donor.*subjects="):
        fastdeconv.deconvolve(bulk, cells, method="toy_cells", labels=labels)
    with pytest.raises(ValueError, match="subjects= is used only by .*'toy_cells'.* not by "
                       "method='nnls'"):
        fastdeconv.deconvolve(bulk, cells, method="nnls", labels=labels, subjects=donors)
    with pytest.raises(ValueError, match="subjects"):
        fastdeconv.deconvolve(bulk, cells, method="toy_cells", labels=labels,
                              subjects=donors[:10])
    res = fastdeconv.deconvolve(bulk, cells, method="toy_cells", labels=labels, subjects=donors,
                                method_options={"scale": 3.0}, fractions="rna")
    (problem,) = seen
    assert problem.options == {"scale": 3.0, "grid": (0.25, 0.5)}
    ctx = problem.cells
    assert ctx.subjects == ("d1", "d2") and problem.cell_types == tuple(sorted(TYPES))
    assert ctx.subject_profiles.shape == (problem.n, 3, 2) and ctx.pseudobulk.shape == (problem.n, 2)
    # the context is on the problem's genes: the mean over donors is the signature / 1e6 (CPM)
    np.testing.assert_allclose(ctx.subject_profiles.mean(axis=2) * 1e6, problem.S, rtol=1e-9)
    # the donors' cells: 20 of each type in each
    assert ctx.subject_cells.tolist() == [[20, 20]] * 3
    np.testing.assert_allclose(ctx.rna_content,
                               cells.sum().groupby(labels).mean()[list(problem.cell_types)])
    # a naive pseudo-bulk of donor d1 on the problem's genes
    genes = res.genes_used
    d1 = cells.loc[:, donors == "d1"]
    np.testing.assert_allclose(ctx.pseudobulk[:, 0], d1.loc[genes].sum(axis=1) / d1.to_numpy().sum())
    np.testing.assert_allclose(res.proportions[TYPES].to_numpy(), props.to_numpy(), atol=0.02)


def test_a_batch_dependent_method_gets_every_sample_at_once(options_method, monkeypatch):
    import fastdeconv.regression as regression

    record, seen = options_method
    monkeypatch.setattr(blockwise, "_BLOCK", 2)  # blocks of two samples for the others
    bulk, cells, labels, _ = planted_cells(cells_per_type=20)
    donors = np.tile(["d1", "d2"], cells.shape[1] // 2)
    fastdeconv.deconvolve(bulk, cells, method="toy_cells", labels=labels, subjects=donors)
    assert [p.m for p in seen] == [bulk.shape[1]]


def test_cli_method_options_and_subjects(options_method, tmp_path, capsys):
    from fastdeconv.cli import main

    bulk, cells, labels, _ = planted_cells(cells_per_type=20)
    paths = {name: tmp_path / f"{name}.tsv" for name in ("bulk", "cells", "labels", "donors")}
    bulk.to_csv(paths["bulk"], sep="\t")
    cells.to_csv(paths["cells"], sep="\t")
    pd.Series(labels, index=cells.columns, name="type").to_csv(paths["labels"], sep="\t")
    donors = pd.Series(np.tile(["d1", "d2"], cells.shape[1] // 2), index=cells.columns,
                       name="donor")
    donors.to_csv(paths["donors"], sep="\t")
    base = ["deconvolve", "--bulk", str(paths["bulk"]), "--reference-counts",
            str(paths["cells"]), "--labels", str(paths["labels"]), "--output",
            str(tmp_path / "out.tsv"), "--method", "toy_cells", "-q"]
    assert main([*base, "--method-option", "sclae=2", "--subjects", str(paths["donors"])]) == 1
    err = capsys.readouterr().err
    assert "--method-option sclae: --method toy_cells has no such option" in err
    assert main([*base]) == 1
    assert "--subjects" in capsys.readouterr().err
    assert main([*base, "--method-option", "scale=2", "--subjects", str(paths["donors"]),
                 "--fractions", "rna"]) == 0
    _, seen = options_method
    assert seen[-1].options["scale"] == 2.0 and seen[-1].cells.subjects == ("d1", "d2")
