"""``fastdeconv demo``: a self-contained benchmark, accuracy and speed against SciPy."""

from __future__ import annotations

from fastdeconv.cli._common import (
    InputError,
    MethodName,
    add_command,
    check_plot_path,
    help_when_shown,
    info,
    output_file,
    positive_int,
    regression_methods,
)

#: Python keyword -> this command's flag, for every remedy a demo run can be advised
#: (see :mod:`fastdeconv.errors`); the run checks its options first, so that the
#: benchmark meets no other.
FLAGS = {"method": "--method", "n_jobs": "--n-jobs"}


def add_parser(subparsers):
    """Add the ``demo`` command to the main parser's subcommands.

    Builds the options and sets ``run`` as the command's function (the
    interface of every command module: see :mod:`fastdeconv.cli`).

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli import demo
    >>> sub = argparse.ArgumentParser(prog="fastdeconv").add_subparsers(dest="command")
    >>> args = demo.add_parser(sub).parse_args(["--samples", "50"])
    >>> args.func is demo.run, args.samples, args.genes
    (True, 50, 5000)
    """
    p = add_command(
        subparsers,
        "demo",
        jobs=True,
        help="self-contained benchmark: accuracy and speed against scipy",
        description="Generate a realistic synthetic benchmark with known proportions "
        "(log-normal expression, marker genes, Dirichlet proportions, negative-binomial counts), "
        "deconvolve it, print the accuracy and the speed against a scipy.optimize.nnls loop on "
        "the same data.",
    )
    p.add_argument(
        "--genes",
        type=positive_int,
        default=5000,
        help="number of genes (at least max(2 x types, 50))",
    )
    p.add_argument(
        "--types", type=positive_int, default=8, help="number of cell types (at least 2)"
    )
    p.add_argument("--samples", type=positive_int, default=1000, help="number of bulk samples")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    help_when_shown(
        p.add_argument(
            "--method",
            type=MethodName(regression_methods),
            default=None,
            help="deconvolution method (default: auto)",
        ),
        lambda: "deconvolution method: "
        + ", ".join(m.name for m in regression_methods() if m.weights != "required")
        + "; auto: the library's default for a signature, nnls (default: auto)",
    )
    p.add_argument("--repeats", type=positive_int, default=3, help="timed runs (median reported)")
    output_file(
        p, "--plot", metavar="FILE.png", help="estimated vs true proportions per cell type"
    )
    p.set_defaults(func=run, flags=FLAGS)
    return p


def run(args):
    """Synthetic benchmark: accuracy and speed against a scipy.optimize.nnls loop.

    Returns the exit status 0; bad input raises (see :func:`fastdeconv.cli.main`).

    Examples
    --------
    The figure's path is checked before the benchmark starts:

    >>> from fastdeconv.cli import build_parser
    >>> from fastdeconv.cli.demo import run
    >>> run(build_parser().parse_args(["demo", "--plot", "demo.docx"]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fastdeconv.cli._common.InputError: --plot: ...
    """
    check_plot_path(args.plot)
    if args.types < 2:
        raise InputError("--types: a deconvolution needs at least 2 cell types")
    if args.genes < max(2 * args.types, 50):
        raise InputError(
            f"--genes: {args.types} cell types need at least max(2 x {args.types}, 50) = "
            f"{max(2 * args.types, 50)} genes, got {args.genes}"
        )
    if args.method is not None and regression_methods().get(args.method).weights == "required":
        raise InputError(
            f"--method {args.method} needs per-gene weights, which the demo has none of; "
            "choose another method"
        )
    from fastdeconv.simulate import run_benchmark, synthetic

    info(
        args, f"simulating {args.genes} genes x {args.samples} samples, {args.types} cell types ..."
    )
    data = synthetic(n_genes=args.genes, n_types=args.types, n_samples=args.samples, seed=args.seed)
    info(args, "deconvolving and timing ...")
    report = run_benchmark(data, method=args.method, repeats=args.repeats, n_jobs=args.n_jobs)
    print(report.summary())
    if args.plot:
        report.evaluation.plot(
            args.plot,
            title=f"demo: synthetic {args.genes} genes x {args.samples} samples, {args.types} "
            f"cell types (seed {args.seed}, method {args.method or 'nnls'})",
        )
    return 0
