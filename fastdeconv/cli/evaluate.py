"""``fastdeconv evaluate``: accuracy of estimated proportions against the truth."""

from __future__ import annotations

from fastdeconv.cli._common import add_command, check_plot_path, check_table_path, read, write


def add_parser(subparsers):
    """Add the ``evaluate`` command to the main parser's subcommands.

    Builds the options and sets ``run`` as the command's function (the
    interface of every command module: see :mod:`fastdeconv.cli`).

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli import evaluate
    >>> sub = argparse.ArgumentParser(prog="fastdeconv").add_subparsers(dest="command")
    >>> args = evaluate.add_parser(sub).parse_args(["--estimate", "e.tsv", "--truth", "t.tsv"])
    >>> args.func is evaluate.run, args.match
    (True, 'names')
    """
    p = add_command(
        subparsers,
        "evaluate",
        help="accuracy of estimated proportions against the truth",
        description="Compare estimated proportions (EST, samples x cell types, as written by "
        "`deconvolve`) with the truth (TRUTH, cell types x samples): Pearson r overall and per "
        "cell type, RMSE, Lin's concordance correlation coefficient (CCC) and bias.",
    )
    p.add_argument("--estimate", required=True, metavar="EST", help="samples x cell types table")
    p.add_argument("--truth", required=True, metavar="TRUTH", help="cell types x samples table")
    p.add_argument(
        "--match",
        choices=["names", "best"],
        default="names",
        help="pair types by name, or (reference-free components) by the best "
        "one-to-one correlation matching",
    )
    p.add_argument(
        "--renormalize",
        action="store_true",
        help="rescale the evaluated estimates of each sample to sum to 1",
    )
    p.add_argument(
        "--output", metavar="FILE", help="write the per-type table (with an overall row)"
    )
    p.add_argument(
        "--fit-rna-content",
        metavar="FILE",
        help="fit the relative RNA content per cell type that maps the estimate (RNA "
        "fractions) onto the truth (cell fractions) and write it (a calibration for "
        "`deconvolve --rna-content`)",
    )
    p.add_argument("--plot", metavar="FILE.png", help="estimated vs true proportions per cell type")
    p.set_defaults(func=run)
    return p


def _truth_samples_by_types(truth, estimate):
    """TRUTH files are types x samples; accept samples x types when that is what matches."""
    if len(estimate.index.intersection(truth.columns)) == 0 and len(
        estimate.index.intersection(truth.index)
    ):
        return truth
    return truth.T


def run(args):
    """Accuracy of an estimate (samples x types) against TRUTH (types x samples).

    Returns the exit status 0; bad input raises (see :func:`fastdeconv.cli.main`).

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from fastdeconv.cli import build_parser
    >>> from fastdeconv.cli.evaluate import run
    >>> folder = tempfile.mkdtemp()
    >>> est = pd.DataFrame({"T": [0.2, 0.6, 0.5], "B": [0.8, 0.4, 0.5]},
    ...                    index=pd.Index(["s1", "s2", "s3"], name="sample"))
    >>> est.to_csv(os.path.join(folder, "est.csv"))
    >>> est.T.to_csv(os.path.join(folder, "truth.csv"))
    >>> args = build_parser().parse_args(["evaluate", "--estimate", os.path.join(folder, "est.csv"),
    ...                                   "--truth", os.path.join(folder, "truth.csv")])
    >>> run(args)  # doctest: +ELLIPSIS
    Evaluation of 3 samples x 2 cell types
    ...
    overall ... 1.0000 ...
    ...
    0
    """
    check_table_path(args.output, "--output")
    check_table_path(args.fit_rna_content, "--fit-rna-content")
    check_plot_path(args.plot)
    estimate = read(args.estimate, "--estimate")
    truth = read(args.truth, "--truth")

    from fastdeconv.fractions import fit_rna_content
    from fastdeconv.metrics import evaluate

    truth = _truth_samples_by_types(truth, estimate)
    ev = evaluate(estimate, truth, match=args.match, renormalize=args.renormalize)
    content = None
    if args.fit_rna_content:
        content = fit_rna_content(estimate, truth, match=args.match)
    if args.plot:
        ev.plot(args.plot)
    if args.output:
        write(ev.to_frame(), args.output, "--output", "cell_type")
    if content is not None:
        write(content.to_frame(), args.fit_rna_content, "--fit-rna-content", "cell_type")
    print(ev.summary())
    if content is not None:
        print(
            "relative RNA content per cell type (estimate / truth, geometric mean 1): "
            + ", ".join(f"{t} {v:.3f}" for t, v in content.items())
        )
    return 0
