"""``fastdeconv simulate``: pseudo-bulk samples with known fractions from single cells."""

from __future__ import annotations

from fastdeconv.cli._common import (
    InputError,
    add_command,
    check_plot_path,
    check_table_path,
    info,
    positive_float,
    positive_int,
    read,
    read_counts,
    read_labels,
    write,
)


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
    p.add_argument(
        "--samples",
        type=positive_int,
        default=None,
        metavar="N",
        help="number of pseudo-bulk samples (random Dirichlet fractions)",
    )
    p.add_argument(
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
    p.add_argument("--output-bulk", required=True, metavar="BULK", help="genes x samples")
    p.add_argument(
        "--output-truth",
        required=True,
        metavar="TRUTH",
        help="true cell fractions, cell types x samples",
    )
    p.add_argument(
        "--output-rna-truth", metavar="FILE", help="true RNA fractions, cell types x samples"
    )
    p.add_argument("--plot", metavar="FILE.png", help="stacked bars of the true cell fractions")
    p.set_defaults(func=run)
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
    counts = read_counts(args.counts)
    labels = read_labels(args.labels) if args.labels is not None else args.label_key
    if labels is None:
        raise InputError("give --labels (a cell id, cell type table) or, for .h5ad, --label-key")
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
    )
    if args.plot:
        from fastdeconv.plotting import plot_proportions

        plot_proportions(pb.cell_fractions, args.plot, title="true cell fractions")
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
