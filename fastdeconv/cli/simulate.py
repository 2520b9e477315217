"""``fastdeconv simulate``: pseudo-bulk samples with known fractions from single cells."""

from __future__ import annotations

import os

from fastdeconv.cli._cells import (
    CELL_FLAGS,
    add_cell_options,
    cell_keywords,
    check_cell_options,
    read_cells,
)
from fastdeconv.cli._common import (
    InputError,
    add_command,
    check_plot_path,
    check_table_path,
    info,
    input_file,
    output_file,
    positive_float,
    positive_int,
    read,
    write,
)

#: Keyword of :func:`fastdeconv.simulate.pseudobulk` -> the flag that sets it, so that an
#: :class:`fastdeconv.errors.InputProblem` names the flag to type.
FLAGS = {
    **CELL_FLAGS,
    "n_samples": "--samples",
    "fractions": "--fractions",
    "cells_per_sample": "--cells-per-sample",
    "alpha": "--alpha",
    "seed": "--seed",
    "normalize": "--normalize",
}


def add_parser(subparsers):
    """Add the ``simulate`` command to the main parser's subcommands.

    Builds the options and sets ``run`` as the command's function (the
    interface of every command module: see :mod:`fastdeconv.cli`).

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli import simulate
    >>> sub = argparse.ArgumentParser(prog="fastdeconv").add_subparsers(dest="command")
    >>> args = simulate.add_parser(sub).parse_args(
    ...     ["--counts", "c.tsv", "--samples", "5", "--output-bulk", "b.tsv",
    ...      "--output-truth", "t.tsv"]
    ... )
    >>> args.func is simulate.run, args.samples, args.cells_per_sample
    (True, 5, 500)
    """
    p = add_command(
        subparsers,
        "simulate",
        cells=True,
        help="pseudo-bulk samples with known fractions from single cells",
        description="Mix the cells of a labelled single-cell reference into pseudo-bulk samples "
        "with known fractions. Writes the bulk (genes x samples) and the true cell fractions "
        "(cell types x samples); --output-rna-truth adds the RNA fractions, which is what a "
        "per-million signature estimates when cell types differ in RNA content.",
    )
    add_cell_options(
        p, "every cell then weighs the same, so the RNA fractions equal the cell fractions"
    )
    p.add_argument(
        "--samples",
        type=positive_int,
        default=None,
        metavar="N",
        help="number of pseudo-bulk samples (random Dirichlet fractions)",
    )
    input_file(
        p,
        "--fractions",
        metavar="FILE",
        help="target cell fractions, cell types x samples (instead of random ones)",
    )
    p.add_argument(
        "--cells-per-sample",
        type=positive_int,
        default=500,
        metavar="N",
        help="cells summed into each sample",
    )
    p.add_argument(
        "--alpha",
        type=positive_float,
        default=1.0,
        help="Dirichlet concentration of the random fractions",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--normalize",
        choices=["none", "cpm"],
        default="none",
        help="scale of the written bulk: summed raw counts, or counts per million",
    )
    output_file(p, "--output-bulk", required=True, metavar="BULK", help="genes x samples")
    output_file(
        p,
        "--output-truth",
        required=True,
        metavar="TRUTH",
        help="true cell fractions, cell types x samples",
    )
    output_file(
        p, "--output-rna-truth", metavar="FILE", help="true RNA fractions, cell types x samples"
    )
    output_file(
        p,
        "--plot",
        metavar="FILE.png",
        help="stacked bars of the true cell fractions, titled with the COUNTS file",
    )
    p.set_defaults(func=run, flags=FLAGS)
    return p


def run(args):
    """Pseudo-bulk samples with known fractions from labelled single-cell counts.

    Returns the exit status 0; bad input raises (see :func:`fastdeconv.cli.main`).

    Examples
    --------
    >>> from fastdeconv.cli import build_parser
    >>> from fastdeconv.cli.simulate import run
    >>> run(build_parser().parse_args(  # doctest: +ELLIPSIS
    ...     ["simulate", "--counts", "c.tsv", "--output-bulk", "b.tsv", "--output-truth", "t.tsv"]
    ... ))
    Traceback (most recent call last):
    ...
    fastdeconv.cli._common.InputError: give --samples N (random Dirichlet fractions) or ...
    """
    check_table_path(args.output_bulk, "--output-bulk")
    check_table_path(args.output_truth, "--output-truth")
    check_table_path(args.output_rna_truth, "--output-rna-truth")
    check_plot_path(args.plot)
    if args.samples is None and args.fractions is None:
        raise InputError("give --samples N (random Dirichlet fractions) or --fractions FILE")
    if args.labels is None and args.label_key is None:
        raise InputError("give --labels (a cell id, cell type table) or, for .h5ad, --label-key")
    check_cell_options(args)
    if args.output_rna_truth and args.normalized is True:
        raise InputError(_UNKNOWN_RNA)
    counts, labels = read_cells(args)
    if labels is None:
        labels = args.label_key
    fractions = None
    if args.fractions is not None:
        fractions = read(args.fractions, "--fractions").T  # types x samples -> samples x types

    from fastdeconv.simulate import pseudobulk

    pb = pseudobulk(
        counts,
        labels,
        args.samples,
        cells_per_sample=args.cells_per_sample,
        fractions=fractions,
        alpha=args.alpha,
        seed=args.seed,
        normalize=None if args.normalize == "none" else args.normalize,
        progress=False if args.quiet else None,
        **cell_keywords(args),
    )
    if pb.normalized:
        if args.output_rna_truth:
            raise InputError(_UNKNOWN_RNA)
        info(args, "fastdeconv: note: mixed from normalised values (--normalized): every cell "
             "weighs the same, so the RNA fractions equal the cell fractions")
    if args.plot:
        from fastdeconv.plotting import plot_proportions

        plot_proportions(
            pb.cell_fractions,
            args.plot,
            title=f"true cell fractions: pseudo-bulk of {os.path.basename(args.counts)}",
        )
    write(pb.bulk, args.output_bulk, "--output-bulk", "gene")
    write(pb.cell_fractions.T, args.output_truth, "--output-truth", "cell_type")
    if args.output_rna_truth:
        write(pb.rna_fractions.T, args.output_rna_truth, "--output-rna-truth", "cell_type")
    info(
        args,
        f"wrote {pb.bulk.shape[1]} pseudo-bulk samples ({pb.bulk.shape[0]} genes, "
        f"{pb.cell_fractions.shape[1]} cell types, {args.cells_per_sample} cells each)",
    )
    return 0


_UNKNOWN_RNA = (
    "--output-rna-truth: the RNA fractions are unknown when mixing normalised values "
    "(--normalized): they need each cell's library size; give raw counts, or leave "
    "--output-rna-truth out"
)
