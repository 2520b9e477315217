"""The ``fastdeconv`` command line.

One small function per command; each reads its inputs, calls the public API
and writes the results. Heavy modules are imported inside the commands, so
``fastdeconv --help`` starts instantly. Bad input ends the program with exit
status 1 and a one-line ``fastdeconv: error: ...`` on stderr (no traceback; set
the environment variable ``FASTDECONV_DEBUG=1`` to see one); usage errors exit
with status 2.

File formats: tables are TSV (``.tsv``, ``.txt``, ``.tab``) or CSV (``.csv``),
optionally gzipped (``.gz``), with row ids in the first column and column ids
in the header. BULK is genes x samples, SIG genes x cell types, TRUTH cell types
x samples; proportions are written as samples x cell types with ``sample`` as
the first header.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

__all__ = ["main", "build_parser"]

PROG = "fastdeconv"


class InputError(ValueError):
    """A problem with the user's input detected by the command line itself."""


# ---------------------------------------------------------------------------
# small helpers (I/O and messages only; no arithmetic here)
# ---------------------------------------------------------------------------


def _info(args, message):
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def _check_table_path(path, option):
    """Fail before any work if an output table cannot be written."""
    from fastdeconv.io import _table_format

    if path is None:
        return
    try:
        _table_format(path)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None
    _check_folder(path, option)


def _check_folder(path, option):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{option}: folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise InputError(f"{option}: {path!r} is a folder, not a file name")


def _check_plot_path(path, option="--plot"):
    if path is None:
        return
    from fastdeconv.plotting._deconv import check_figure_path

    try:
        check_figure_path(path)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None
    _check_folder(path, option)


def _read(path, option, **kwargs):
    from fastdeconv.io import read_table

    try:
        return read_table(path, **kwargs)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{option}: {_message(exc)}") from None
    except ValueError as exc:
        raise InputError(f"{option}: {_message(exc)}") from None


def _read_counts(path):
    """Genes x cells table, or an AnnData object for ``.h5ad``."""
    if str(path).lower().endswith(".h5ad"):
        if not os.path.exists(path):
            raise FileNotFoundError(f"--counts: file not found: {path!r}")
        try:
            import anndata
        except ImportError:
            raise InputError(
                "--counts: reading .h5ad files needs anndata (`pip install anndata`)"
            ) from None
        return anndata.read_h5ad(path)
    return _read(path, "--counts")


def _read_labels(path):
    """Two-column table with a header: cell id, cell type -> Series indexed by cell id."""
    labels = _read_series(path, "--labels", "cell id, cell type", index_col=0, numeric=False)
    labels.index = labels.index.astype(str)
    return labels.astype(str)


def _read_series(path, option, columns, **kwargs):
    """Two-column table with a header (ids, values) -> Series indexed by the ids."""
    table = _read(path, option, **kwargs)
    if table.shape[1] != 1:
        raise InputError(
            f"{option}: {path!r} must have exactly two columns ({columns}), "
            f"found {table.shape[1] + 1}"
        )
    return table.iloc[:, 0]


def _write(df, path, option, index_label):
    from fastdeconv.io import write_table

    try:
        write_table(df, path, index_label=index_label)
    except (OSError, ValueError) as exc:
        raise InputError(f"{option}: cannot write {path!r}: {_message(exc)}") from None


def _proportions_frame(proportions):
    frame = proportions.copy()
    frame.index.name = "sample"
    return frame


def _truth_samples_by_types(truth, estimate):
    """TRUTH files are types x samples; accept samples x types when that is what matches."""
    if len(estimate.index.intersection(truth.columns)) == 0 and len(
        estimate.index.intersection(truth.index)
    ):
        return truth
    return truth.T


def _message(exc):
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------


def cmd_deconvolve(args):
    """Reference-based deconvolution of BULK with SIG -> proportions table."""
    _check_table_path(args.output, "--output")
    _check_table_path(args.fit_output, "--fit-output")
    _check_plot_path(args.plot)
    _check_plot_path(args.plot_fit, "--plot-fit")
    if args.method == "wls" and not args.weights:
        raise InputError("--method wls needs --weights FILE (a two-column table: gene, weight)")
    bulk = _read(args.bulk, "--bulk")
    signature = _read(args.signature, "--signature")

    import fastdeconv

    kwargs = {"n_jobs": args.n_jobs, "progress": False if args.quiet else None}
    for option in ("method", "genes", "scale"):
        if getattr(args, option) is not None:
            kwargs[option] = getattr(args, option)
    if args.robust is not None:
        kwargs["robust"] = None if args.robust == "none" else args.robust
    content = None
    if args.rna_content:
        content = _read_series(args.rna_content, "--rna-content", "cell type, RNA content")
    if args.weights:
        kwargs["weights"] = _read_series(args.weights, "--weights", "gene, weight")
    result = fastdeconv.deconvolve(bulk, signature, **kwargs)
    proportions = result.proportions
    if content is not None:
        try:
            proportions = result.to_cell_fractions(content)
        except ValueError as exc:
            raise InputError(f"--rna-content: {_message(exc)}") from None
    # figures first: if one fails, no table is written either
    if args.plot:
        from fastdeconv.plotting import plot_proportions

        plot_proportions(proportions, path=args.plot)  # what OUT holds (cell fractions if asked)
    if args.plot_fit:
        result.plot_fit(args.plot_fit)
    _write(_proportions_frame(proportions), args.output, "--output", "sample")
    if args.fit_output:
        _write(result.fit, args.fit_output, "--fit-output", "sample")
    if not args.quiet:
        print(result.summary())
        if content is not None:
            print(f"{args.output}: cell fractions (RNA fractions divided by --rna-content)")
    return 0


def cmd_evaluate(args):
    """Accuracy of an estimate (samples x types) against TRUTH (types x samples)."""
    _check_table_path(args.output, "--output")
    _check_table_path(args.fit_rna_content, "--fit-rna-content")
    _check_plot_path(args.plot)
    estimate = _read(args.estimate, "--estimate")
    truth = _read(args.truth, "--truth")

    from fastdeconv.metrics import evaluate, fit_rna_content

    truth = _truth_samples_by_types(truth, estimate)
    ev = evaluate(estimate, truth, match=args.match, renormalize=args.renormalize)
    content = None
    if args.fit_rna_content:
        content = fit_rna_content(estimate, truth, match=args.match)
    if args.plot:
        ev.plot(args.plot)
    if args.output:
        _write(ev.to_frame(), args.output, "--output", "cell_type")
    if content is not None:
        _write(content.to_frame(), args.fit_rna_content, "--fit-rna-content", "cell_type")
    print(ev.summary())
    if content is not None:
        print("relative RNA content per cell type (estimate / truth, geometric mean 1): "
              + ", ".join(f"{t} {v:.3f}" for t, v in content.items()))
    return 0


def cmd_demo(args):
    """Synthetic benchmark: accuracy and speed against a scipy.optimize.nnls loop."""
    _check_plot_path(args.plot)
    from fastdeconv.simulate import run_benchmark, synthetic

    _info(
        args, f"simulating {args.genes} genes x {args.samples} samples, {args.types} cell types ..."
    )
    data = synthetic(n_genes=args.genes, n_types=args.types, n_samples=args.samples, seed=args.seed)
    _info(args, "deconvolving and timing ...")
    report = run_benchmark(data, method=args.method, repeats=args.repeats, n_jobs=args.n_jobs)
    print(report.summary())
    if args.plot:
        report.evaluation.plot(args.plot)
    return 0


def cmd_signature(args):
    """Signature matrix (and marker table) from labelled single-cell counts."""
    _check_table_path(args.output, "--output")
    _check_table_path(args.markers, "--markers")
    if args.labels is None and args.label_key is None and args.clusters is None:
        raise InputError(
            "give --labels (a cell id, cell type table), --label-key (.h5ad) or --clusters N"
        )
    counts = _read_counts(args.counts)
    labels = _read_labels(args.labels) if args.labels is not None else None

    import fastdeconv

    kwargs = {"method": args.method, "seed": args.seed}
    if args.label_key is not None:
        kwargs["label_key"] = args.label_key
    if args.n_markers is not None:
        kwargs["n_markers"] = args.n_markers
    if args.clusters is not None:
        kwargs["n_clusters"] = args.clusters
    result = fastdeconv.build_signature(counts, labels, **kwargs)
    result.write(args.output, markers_path=args.markers)
    if not args.quiet:
        print(result.summary())
    return 0


def cmd_simulate(args):
    """Pseudo-bulk samples with known fractions from labelled single-cell counts."""
    _check_table_path(args.output_bulk, "--output-bulk")
    _check_table_path(args.output_truth, "--output-truth")
    _check_table_path(args.output_rna_truth, "--output-rna-truth")
    _check_plot_path(args.plot)
    if args.samples is None and args.fractions is None:
        raise InputError("give --samples N (random Dirichlet fractions) or --fractions FILE")
    counts = _read_counts(args.counts)
    labels = _read_labels(args.labels) if args.labels is not None else args.label_key
    if labels is None:
        raise InputError("give --labels (a cell id, cell type table) or, for .h5ad, --label-key")
    fractions = None
    if args.fractions is not None:
        fractions = _read(args.fractions, "--fractions").T  # types x samples -> samples x types

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
    _write(pb.bulk, args.output_bulk, "--output-bulk", "gene")
    _write(pb.cell_fractions.T, args.output_truth, "--output-truth", "cell_type")
    if args.output_rna_truth:
        _write(pb.rna_fractions.T, args.output_rna_truth, "--output-rna-truth", "cell_type")
    _info(
        args,
        f"wrote {pb.bulk.shape[1]} pseudo-bulk samples ({pb.bulk.shape[0]} genes, "
        f"{pb.cell_fractions.shape[1]} cell types, {args.cells_per_sample} cells each)",
    )
    return 0


def cmd_linseed(args):
    """Reference-free deconvolution (LinSeed) of BULK into K components."""
    _check_table_path(args.output, "--output")
    _check_table_path(args.signature_output, "--signature-output")
    _check_table_path(args.markers_output, "--markers-output")
    _check_plot_path(args.plot)
    bulk = _read(args.bulk, "--bulk")

    import fastdeconv

    kwargs = {"seed": args.seed}
    if args.top_genes is not None:
        kwargs["top_genes"] = args.top_genes
    if args.min_mean is not None:
        kwargs["min_mean"] = args.min_mean
    if args.permutations is not None:
        kwargs["n_permutations"] = args.permutations
    if args.n_jobs is not None:
        kwargs["n_jobs"] = args.n_jobs
    if args.scale is not None:
        kwargs["scale"] = args.scale
    if args.marker_genes is not None:
        kwargs["marker_genes"] = _read_marker_lists(args.marker_genes)
    result = fastdeconv.linseed(bulk, args.cell_types, **kwargs)
    if args.plot:
        result.plot(args.plot)
    _write(_proportions_frame(result.proportions), args.output, "--output", "sample")
    if args.signature_output:
        _write(result.signature, args.signature_output, "--signature-output", "gene")
    if args.markers_output:
        _write(_markers_long(result.markers), args.markers_output, "--markers-output", None)
    if not args.quiet:
        print(result.summary())
    return 0


def _read_marker_lists(path):
    """Two-column table (cell type, gene) with a header -> {cell type: [genes]}."""
    table = _read(path, "--marker-genes", index_col=None, numeric=False)
    if table.shape[1] != 2:
        raise InputError(
            f"--marker-genes: {path!r} must have two columns (cell type, gene), "
            f"found {table.shape[1]}"
        )
    table = table.dropna().astype(str)
    return {t: list(g) for t, g in table.groupby(table.columns[0], sort=False)[table.columns[1]]}


def _markers_long(markers):
    """Turn {component: genes} into a two-column table (component, gene)."""
    import pandas as pd

    rows = [(component, gene) for component, genes in markers.items() for gene in genes]
    return pd.DataFrame(rows, columns=["component", "gene"]).set_index("component")


# ---------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _int_or_auto(text):
    if text == "auto":
        return "auto"
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'auto', got {text!r}"
        ) from None


class _Formatter(argparse.HelpFormatter):
    """Show an option's default in its help unless it is None/False or already said."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            default is not None
            and default is not False
            and default != argparse.SUPPRESS
            and "default" not in text
        ):
            text += " (default: %(default)s)"
        return text


def build_parser():
    """Return the :class:`argparse.ArgumentParser` of the ``fastdeconv`` command.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> from fastdeconv.cli import build_parser
    >>> args = build_parser().parse_args(["demo", "--samples", "50"])
    >>> args.command, args.samples
    ('demo', 50)
    """
    from fastdeconv import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar or messages on stderr (warnings and errors still show)",
    )
    jobs = argparse.ArgumentParser(add_help=False)
    jobs.add_argument(
        "--n-jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="worker threads (default: all cores)",
    )

    cells = argparse.ArgumentParser(add_help=False)
    cells.add_argument(
        "--counts",
        required=True,
        metavar="COUNTS",
        help="raw counts: genes x cells table, or .h5ad",
    )
    cells.add_argument(
        "--labels", metavar="LABELS", help="two-column table (cell id, cell type) with a header row"
    )
    cells.add_argument(
        "--label-key", metavar="COLUMN", help=".h5ad only: the .obs column holding the cell types"
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Exact, fast cellular deconvolution of bulk expression data.",
        epilog="Tables: TSV (.tsv/.txt) or CSV (.csv), optionally .gz; row ids in the first "
        "column, "
        "column ids in the header. Run `fastdeconv demo` for a self-contained example.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "deconvolve",
        parents=[common, jobs],
        formatter_class=_Formatter,
        help="estimate cell-type proportions of bulk samples with a signature",
        description="Estimate the cell-type proportions of bulk samples (BULK, genes x samples, "
        "linear scale) with a signature (SIG, genes x cell types). Writes OUT as samples x "
        "cell types.",
    )
    p.add_argument("--bulk", required=True, metavar="BULK", help="genes x samples table")
    p.add_argument("--signature", required=True, metavar="SIG", help="genes x cell types table")
    p.add_argument(
        "--output", required=True, metavar="OUT", help="proportions, samples x cell types"
    )
    p.add_argument(
        "--method",
        default=None,
        help="nnls (scale-free, normalised to sum 1), simplex (exact sum-to-one, "
        "same scale), wls, simplex_le (sum <= 1, with an 'unexplained' column); "
        "default: the library's, nnls",
    )
    p.add_argument(
        "--genes",
        choices=["auto", "markers", "all"],
        default=None,
        help="genes used in the fit (default: the library's, auto)",
    )
    p.add_argument(
        "--robust",
        choices=["huber", "none"],
        default=None,
        help="Huber re-weighting of badly fitting genes, or plain least squares "
        "(default: the library's, huber)",
    )
    p.add_argument(
        "--scale",
        choices=["auto", "linear", "log2", "log2p1"],
        default=None,
        help="scale of the bulk: auto refuses log-looking data; log2/log2p1 un-log "
        "with 2**x / 2**x - 1 (default: auto)",
    )
    p.add_argument("--fit-output", metavar="FILE", help="per-sample fit diagnostics table")
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="two-column table (gene, weight): per-gene weights of the least-squares fit "
        "(required by --method wls, accepted by every method; genes without a weight get 0)",
    )
    p.add_argument(
        "--rna-content",
        metavar="FILE",
        help="two-column table (cell type, RNA per cell): write cell fractions instead of "
        "RNA fractions (e.g. the table `evaluate --fit-rna-content` writes)",
    )
    p.add_argument("--plot", metavar="FILE.png", help="stacked bars of the proportions")
    p.add_argument("--plot-fit", metavar="FILE.png", help="per-sample fit quality")
    p.set_defaults(func=cmd_deconvolve)

    p = sub.add_parser(
        "evaluate",
        parents=[common],
        formatter_class=_Formatter,
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
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "demo",
        parents=[common, jobs],
        formatter_class=_Formatter,
        help="self-contained benchmark: accuracy and speed against scipy",
        description="Generate a realistic synthetic benchmark with known proportions "
        "(log-normal expression, marker genes, Dirichlet proportions, negative-binomial counts), "
        "deconvolve it, print the accuracy and the speed against a scipy.optimize.nnls loop on "
        "the same data.",
    )
    p.add_argument("--genes", type=_positive_int, default=5000, help="number of genes")
    p.add_argument("--types", type=_positive_int, default=8, help="number of cell types")
    p.add_argument("--samples", type=_positive_int, default=1000, help="number of bulk samples")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--method", default=None, help="deconvolution method (default: the library's)")
    p.add_argument("--repeats", type=_positive_int, default=3, help="timed runs (median reported)")
    p.add_argument("--plot", metavar="FILE.png", help="estimated vs true proportions per cell type")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "signature",
        parents=[common, cells],
        formatter_class=_Formatter,
        help="build a signature matrix from labelled single-cell counts",
        description="Build a signature (genes x cell types) and a marker table from raw "
        "single-cell counts: COUNTS is a genes x cells table or an .h5ad file (cells x genes); "
        "LABELS a two-column table (cell id, cell type) with a header row.",
    )
    p.add_argument("--output", required=True, metavar="SIG", help="signature, genes x cell types")
    p.add_argument("--markers", metavar="MARKERS_OUT", help="marker table")
    p.add_argument("--method", default="t-test", help="marker test: t-test, poisson or nb")
    p.add_argument(
        "--n-markers",
        type=_int_or_auto,
        default=None,
        metavar="N",
        help="markers per cell type, or 'auto' (default: the library's)",
    )
    p.add_argument(
        "--clusters",
        type=_positive_int,
        default=None,
        metavar="N",
        help="no labels: cluster the cells into N groups (names are arbitrary)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(func=cmd_signature)

    p = sub.add_parser(
        "simulate",
        parents=[common, cells],
        formatter_class=_Formatter,
        help="pseudo-bulk samples with known fractions from single cells",
        description="Mix the cells of a labelled single-cell reference into pseudo-bulk samples "
        "with known fractions. Writes the bulk (genes x samples) and the true cell fractions "
        "(cell types x samples); --output-rna-truth adds the RNA fractions, which is what a "
        "per-million signature estimates when cell types differ in RNA content.",
    )
    p.add_argument(
        "--samples",
        type=_positive_int,
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
        type=_positive_int,
        default=500,
        metavar="N",
        help="cells summed into each sample",
    )
    p.add_argument(
        "--alpha",
        type=_positive_float,
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
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "linseed",
        parents=[common, jobs],
        formatter_class=_Formatter,
        help="reference-free deconvolution (LinSeed)",
        description="Reference-free deconvolution of BULK (genes x samples, linear scale) by "
        "LinSeed's mutual-linearity simplex method. Writes OUT as samples x components "
        "(component_1..K) in the same format as `deconvolve`.",
    )
    p.add_argument("--bulk", required=True, metavar="BULK", help="genes x samples table")
    p.add_argument(
        "--cell-types",
        required=True,
        type=_int_or_auto,
        metavar="K",
        help="number of components, or 'auto' to estimate it",
    )
    p.add_argument(
        "--output", required=True, metavar="OUT", help="proportions, samples x components"
    )
    p.add_argument(
        "--signature-output", metavar="SIG", help="estimated signature, genes x components"
    )
    p.add_argument("--markers-output", metavar="MARKERS", help="marker genes of each component")
    p.add_argument(
        "--top-genes",
        type=_positive_int,
        default=None,
        metavar="N",
        help="most expressed genes analysed (default: the library's)",
    )
    p.add_argument(
        "--min-mean",
        type=float,
        default=None,
        metavar="X",
        help="drop genes whose mean is below X (default: 10 for count data, none otherwise)",
    )
    p.add_argument(
        "--permutations",
        type=_positive_int,
        default=None,
        metavar="N",
        help="permutations of the linearity null (default: the library's)",
    )
    p.add_argument(
        "--marker-genes",
        metavar="FILE",
        help="known markers, a two-column table (cell type, gene): name the components "
        "after the cell types whose markers they carry",
    )
    p.add_argument(
        "--scale",
        choices=["auto", "linear", "log2"],
        default=None,
        help="auto refuses log-looking data; linear asserts linear scale; log2 un-logs "
        "with 2**x first (default: the library's, auto)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--plot", metavar="FILE.png", help="LinSeed diagnostic plots")
    p.set_defaults(func=cmd_linseed)
    return parser


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------

_INPUT_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, OSError, ImportError)


def main(argv=None):
    """Run the ``fastdeconv`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 1 for bad input (a one-line message on
        stderr), 2 for usage errors, 130 when interrupted.

    Examples
    --------
    >>> from fastdeconv.cli import main
    >>> main(["evaluate", "--estimate", "missing.tsv", "--truth", "missing.tsv"])
    1
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 2
    debug = os.environ.get("FASTDECONV_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except MemoryError:
            if debug:
                raise
            print(
                f"{PROG}: error: out of memory; use fewer samples or genes at a time",
                file=sys.stderr,
            )
            return 1
        except _INPUT_ERRORS as exc:
            if debug:
                raise
            print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
            return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
