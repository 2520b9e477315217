"""``fastdeconv linseed``: reference-free deconvolution (LinSeed) of BULK into K components."""

from __future__ import annotations

import os

from fastdeconv.cli._common import (
    InputError,
    add_command,
    check_plot_path,
    check_table_path,
    input_file,
    number_type,
    output_file,
    proportions_frame,
    read,
    write,
)

#: Keyword of :func:`fastdeconv.reference_free.linseed` -> the flag that sets it, so that
#: an :class:`fastdeconv.errors.InputProblem` names the flag to type.
FLAGS = {
    "n_types": "--cell-types",
    "method": "--method",
    "k_rule": "--k-rule",
    "null": "--null",
    "component_scale": "--component-scale",
    "n_restarts": "--restarts",
    "hinge_weight": "--hinge-weight",
    "top_genes": "--top-genes",
    "min_mean": "--min-mean",
    "n_permutations": "--permutations",
    "pvalue": "--pvalue",
    "n_markers": "--n-markers",
    "scale": "--scale",
    "transpose": "--transpose",
    "duplicates": "--duplicates",
    "missing": "--missing",
    "case_insensitive": "--case-insensitive",
    "strip_version": "--strip-version",
    "seed": "--seed",
    "n_jobs": "--n-jobs",
}

#: The library's defaults, spelled here so that building the parser imports no NumPy
#: (a test checks them against :class:`fastdeconv.reference_free.LinseedOptions`).
DEFAULTS = {
    "method": "simplex",
    "k_rule": "spectrum",
    "null": "saddlepoint",
    "component_scale": "totals",
    "n_restarts": "auto",
    "hinge_weight": 1000.0,
    "top_genes": 10000,
    "min_mean": "auto",
    "n_permutations": 100,
    "pvalue": 0.01,
    "n_markers": 100,
    "scale": "auto",
    "duplicates": "raise",
    "missing": "raise",
    "seed": 0,
}


#: The choices of the library (:mod:`fastdeconv.reference_free`), spelled here for the same
#: reason (a test checks them against ``METHODS``, ``K_RULES``, ``NULLS``, ``COMPONENT_SCALES``).
CHOICES = {
    "method": ("simplex", "dualsimplex", "nmf", "ica", "anchors"),
    "k_rule": ("spectrum", "mdl", "bcv"),
    "null": ("saddlepoint", "permutation"),
    "component_scale": ("totals", "sum_to_one"),
}

#: ``type=`` of ``--cell-types``: ``auto`` or an integer of at least 2.
cell_types = number_type(int, lambda v: v >= 2, "'auto' or an integer of at least 2", auto=True)
_min_mean = number_type(float, lambda v: v >= 0, "'auto' or a number >= 0", auto=True)
_pvalue = number_type(float, lambda v: 0 < v <= 1, "a p-value above 0 and at most 1")
_restarts = number_type(int, lambda v: v >= 0, "'auto' or an integer >= 0", auto=True)
_hinge = number_type(float, lambda v: v > 0, "a number above 0")


def _int_at_least(low):
    return number_type(int, lambda v: v >= low, f"an integer of at least {low}")


def plot_title(n_types, bulk):
    """The title of the ``--plot`` figure: the method, the components and BULK's file name.

    Examples
    --------
    >>> from fastdeconv.cli.linseed import plot_title
    >>> plot_title(3, "data/GSE19830.tsv.gz")
    'LinSeed: 3 components of GSE19830.tsv.gz'
    """
    return f"LinSeed: {n_types} components of {os.path.basename(bulk)}"


def add_parser(subparsers):
    """Add the ``linseed`` command to the main parser's subcommands.

    Builds the options and sets ``run`` as the command's function (the
    interface of every command module: see :mod:`fastdeconv.cli`).

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli import linseed
    >>> sub = argparse.ArgumentParser(prog="fastdeconv").add_subparsers(dest="command")
    >>> parser = linseed.add_parser(sub)
    >>> args = parser.parse_args(["--bulk", "b.tsv", "--cell-types", "auto", "--output", "o.tsv"])
    >>> args.func is linseed.run, args.cell_types, args.flags["n_types"]
    (True, 'auto', '--cell-types')
    """
    p = add_command(
        subparsers,
        "linseed",
        jobs=True,
        help="reference-free deconvolution (LinSeed)",
        description="Reference-free deconvolution of BULK (genes x samples, linear scale) by "
        "LinSeed's mutual-linearity simplex method. Writes OUT as samples x components "
        "(component_1..K) in the same format as `deconvolve`. BULK is read as `deconvolve` "
        "reads it: missing values, negative values and duplicated gene names are refused "
        "(see --missing and --duplicates).",
    )
    input_file(p, "--bulk", required=True, metavar="BULK",
               help="genes x samples table (samples x genes with --transpose)")
    p.add_argument(
        "--cell-types",
        required=True,
        type=cell_types,
        metavar="K",
        help="number of components (2 or more, fewer than the samples), or 'auto' to "
        "estimate it",
    )
    output_file(p, "--output", required=True, metavar="OUT",
                help="proportions, samples x components")
    output_file(p, "--signature-output", metavar="SIG",
                help="estimated signature, genes x components")
    output_file(p, "--markers-output", metavar="MARKERS", help="marker genes of each component")
    p.add_argument(
        "--transpose",
        action="store_true",
        help="BULK is samples x genes (samples as rows): read it transposed",
    )
    p.add_argument(
        "--scale",
        choices=["auto", "linear", "log2", "log2p1", "log1p"],
        default=DEFAULTS["scale"],
        help="scale of BULK: auto refuses log-looking data; linear asserts the linear scale; "
        "log2/log2p1/log1p un-log with 2**x / 2**x - 1 / exp(x) - 1 first",
    )
    p.add_argument(
        "--duplicates",
        choices=["raise", "sum"],
        default=DEFAULTS["duplicates"],
        help="duplicated gene names in BULK: refuse them, or add their rows up",
    )
    p.add_argument(
        "--missing",
        choices=["raise", "drop"],
        default=DEFAULTS["missing"],
        help="genes of BULK with missing (NaN) values: refuse them, or leave them out",
    )
    p.add_argument(
        "--case-insensitive",
        action="store_true",
        help="upper-case the gene names of BULK and --marker-genes (Cd4 and CD4 are one gene)",
    )
    p.add_argument(
        "--strip-version",
        action="store_true",
        help="drop Ensembl version suffixes (ENSG00000010610.12 -> ENSG00000010610) from "
        "the gene names of BULK and --marker-genes",
    )
    p.add_argument(
        "--top-genes",
        type=_int_at_least(3),
        default=DEFAULTS["top_genes"],
        metavar="N",
        help="most expressed genes analysed",
    )
    p.add_argument(
        "--min-mean",
        type=_min_mean,
        default=DEFAULTS["min_mean"],
        metavar="X",
        help="drop genes whose mean is below X; auto: 10 for count data (integers), no "
        "filter otherwise (default: auto)",
    )
    p.add_argument(
        "--method",
        choices=CHOICES["method"],
        default=DEFAULTS["method"],
        help="how the components are found: LinSeed's minimum-volume simplex, the "
        "Sinkhorn-scaled dual simplex, NMF started from the simplex, ICA (needs "
        "scikit-learn), or anchor genes (default: %(default)s)",
    )
    p.add_argument(
        "--k-rule",
        choices=CHOICES["k_rule"],
        default=DEFAULTS["k_rule"],
        help="rule for --cell-types auto: singular-value spectrum with a noise guard, "
        "minimum description length (debCAM), or bi-cross-validation (default: %(default)s)",
    )
    p.add_argument(
        "--null",
        choices=CHOICES["null"],
        default=DEFAULTS["null"],
        help="null of the linearity test: computed by the saddlepoint method (the same "
        "genes for every seed) or sampled by --permutations (default: %(default)s)",
    )
    p.add_argument(
        "--component-scale",
        choices=CHOICES["component_scale"],
        default=DEFAULTS["component_scale"],
        help="model of each component's scale: pure profiles of equal total expression, "
        "or proportions that sum to 1 (default: %(default)s)",
    )
    p.add_argument(
        "--restarts",
        type=_restarts,
        default=DEFAULTS["n_restarts"],
        metavar="N",
        help="restarts of the corner search or NMF; auto: until the best objective "
        "repeats (default: auto)",
    )
    p.add_argument(
        "--hinge-weight",
        type=_hinge,
        default=DEFAULTS["hinge_weight"],
        metavar="W",
        help="weight of the penalty on genes outside the simplex (default: %(default)s)",
    )
    p.add_argument(
        "--permutations",
        type=_int_at_least(1),
        default=DEFAULTS["n_permutations"],
        metavar="N",
        help="permutations of the linearity null with --null permutation (the smallest "
        "p-value is then 1/(N+1))",
    )
    p.add_argument(
        "--pvalue",
        type=_pvalue,
        default=DEFAULTS["pvalue"],
        metavar="P",
        help="keep the genes whose linearity p-value is below P",
    )
    p.add_argument(
        "--n-markers",
        type=_int_at_least(1),
        default=DEFAULTS["n_markers"],
        metavar="N",
        help="marker genes reported per component (--markers-output)",
    )
    input_file(
        p,
        "--marker-genes",
        metavar="FILE",
        help="known markers, a two-column table (cell type, gene): name the components "
        "after the cell types whose markers they carry",
    )
    p.add_argument("--seed", type=_int_at_least(0), default=DEFAULTS["seed"], metavar="N",
                   help="random seed")
    output_file(p, "--plot", metavar="FILE.png",
                help="LinSeed diagnostic plots, titled with BULK's file name")
    p.set_defaults(func=run, flags=FLAGS)
    return p


def run(args):
    """Reference-free deconvolution (LinSeed) of BULK into K components.

    Returns the exit status 0; bad input raises (see :func:`fastdeconv.cli.main`).

    Examples
    --------
    >>> from fastdeconv.cli import build_parser
    >>> from fastdeconv.cli.linseed import run
    >>> run(build_parser().parse_args(
    ...     ["linseed", "--bulk", "missing.tsv", "--cell-types", "3", "--output", "p.tsv"]
    ... ))
    Traceback (most recent call last):
    ...
    FileNotFoundError: --bulk: table file not found: 'missing.tsv'
    """
    check_table_path(args.output, "--output")
    check_table_path(args.signature_output, "--signature-output")
    check_table_path(args.markers_output, "--markers-output")
    check_plot_path(args.plot)
    bulk = read(args.bulk, "--bulk")
    markers = _read_marker_lists(args.marker_genes) if args.marker_genes else None

    from fastdeconv.reference_free import linseed

    result = linseed(
        bulk,
        args.cell_types,
        method=args.method,
        k_rule=args.k_rule,
        null=args.null,
        component_scale=args.component_scale,
        n_restarts=args.restarts,
        hinge_weight=args.hinge_weight,
        top_genes=args.top_genes,
        min_mean=args.min_mean,
        n_permutations=args.permutations,
        pvalue=args.pvalue,
        n_markers=args.n_markers,
        marker_genes=markers,
        scale=args.scale,
        transpose=args.transpose,
        duplicates=args.duplicates,
        missing=args.missing,
        case_insensitive=args.case_insensitive,
        strip_version=args.strip_version,
        seed=args.seed,
        n_jobs=args.n_jobs,
        progress=False if args.quiet else None,
    )
    if args.plot:
        result.plot(args.plot, title=plot_title(result.n_types, args.bulk))
    write(proportions_frame(result.proportions), args.output, "--output", "sample")
    if args.signature_output:
        write(result.signature, args.signature_output, "--signature-output", "gene")
    if args.markers_output:
        markers = result.markers_frame().set_index("component")  # as LinseedResult.write does
        write(markers, args.markers_output, "--markers-output", None)
    if not args.quiet:
        print(result.summary())
    return 0


def _read_marker_lists(path):
    """Two-column table (cell type, gene) with a header -> {cell type: [genes]}."""
    table = read(path, "--marker-genes", index_col=None, numeric=False)
    if table.shape[1] != 2:
        raise InputError(
            f"--marker-genes: {path!r} must have two columns (cell type, gene), "
            f"found {table.shape[1]}"
        )
    table = table.dropna().astype(str)
    if table.empty:
        raise InputError(f"--marker-genes: {path!r} lists no (cell type, gene) pair")
    return {t: list(g) for t, g in table.groupby(table.columns[0], sort=False)[table.columns[1]]}
