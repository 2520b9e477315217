"""``fastdeconv evaluate``: accuracy of estimated proportions against the truth."""

from __future__ import annotations

import os

from fastdeconv.cli._common import (
    add_command,
    check_plot_path,
    check_table_path,
    input_file,
    output_file,
    read,
    write,
)

#: Python keyword -> this command's flag, for every remedy an evaluate run can be
#: advised (see :mod:`fastdeconv.errors`).
FLAGS = {
    "match": "--match",
    "renormalize": "--renormalize",
    "samples": "--samples",
    "transpose_estimate": "--transpose-estimate",
    "transpose_truth": "--transpose-truth",
}


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
    >>> args.func is evaluate.run, args.match, args.samples
    (True, 'names', 'all')
    """
    p = add_command(
        subparsers,
        "evaluate",
        help="accuracy of estimated proportions against the truth",
        description="Compare estimated proportions (EST, samples x cell types, as written by "
        "`deconvolve`) with the truth (TRUTH, cell types x samples): Pearson r overall and per "
        "cell type, RMSE, Lin's concordance correlation coefficient (CCC) and bias. A table "
        "whose samples and cell types look swapped is refused, never flipped silently.",
    )
    input_file(p, "--estimate", required=True, metavar="EST", help="samples x cell types table")
    input_file(p, "--truth", required=True, metavar="TRUTH", help="cell types x samples table")
    p.add_argument(
        "--transpose-estimate",
        action="store_true",
        help="EST has cell types as rows and samples as columns: transpose it",
    )
    p.add_argument(
        "--transpose-truth",
        action="store_true",
        help="TRUTH has samples as rows and cell types as columns: transpose it",
    )
    p.add_argument(
        "--samples",
        choices=["all", "common"],
        default="all",
        help="all: EST and TRUTH must hold the same samples; common: evaluate the samples "
        "found in both",
    )
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
    output_file(
        p, "--output", metavar="FILE", help="write the per-type table (with an overall row)"
    )
    output_file(
        p,
        "--fit-rna-content",
        metavar="FILE",
        help="fit the relative RNA content per cell type that maps the estimate (RNA "
        "fractions) onto the truth (cell fractions) and write it (a calibration for "
        "`deconvolve --rna-content`)",
    )
    output_file(
        p, "--plot", metavar="FILE.png", help="estimated vs true proportions per cell type"
    )
    p.set_defaults(func=run, flags=FLAGS)
    return p


def title(args):
    """The figure's title: the two input files.

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli.evaluate import title
    >>> title(argparse.Namespace(estimate="out/est.tsv", truth="data/truth.tsv", match="names"))
    'estimate est.tsv vs truth truth.tsv'
    """
    text = f"estimate {os.path.basename(args.estimate)} vs truth {os.path.basename(args.truth)}"
    if args.match == "best":
        text += " (components matched to types)"
    return text


def run(args):
    """Accuracy of an estimate (samples x types) against TRUTH (types x samples).

    With ``--quiet`` nothing is printed: only the files asked for are
    written (errors and warnings still show on stderr).

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
    # the library takes both as samples x types: TRUTH files are types x samples
    estimate = estimate.T if args.transpose_estimate else estimate
    truth = truth if args.transpose_truth else truth.T

    from fastdeconv.fractions import fit_rna_content
    from fastdeconv.metrics import evaluate

    ev = evaluate(
        estimate, truth, match=args.match, renormalize=args.renormalize, samples=args.samples
    )
    content = None
    if args.fit_rna_content:
        content = fit_rna_content(estimate, truth, match=args.match)  # on the common samples
    if args.plot:
        ev.plot(args.plot, title=title(args))
    if args.output:
        write(ev.to_frame(), args.output, "--output", "cell_type")
    if content is not None:
        write(content.to_frame(), args.fit_rna_content, "--fit-rna-content", "cell_type")
    if not args.quiet:
        print(ev.summary())
        if content is not None:
            print(
                "relative RNA content per cell type (estimate / truth, geometric mean 1): "
                + ", ".join(f"{t} {v:.3f}" for t, v in content.items())
            )
    return 0
