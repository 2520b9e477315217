"""What every ``fastdeconv`` subcommand shares: messages, reading, writing, option types.

Input/output and messages only, no arithmetic.  Every problem with the user's
input leaves as an exception whose message names the option it concerns;
:func:`fastdeconv.cli.main` turns it into one line on stderr.  Nothing heavy is
imported at module level: building the parser must stay fast.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

PROG = "fastdeconv"


class InputError(ValueError):
    """A problem with the user's input detected by the command line itself.

    Examples
    --------
    >>> from fastdeconv.cli._common import InputError
    >>> isinstance(InputError("--output: folder 'x' does not exist"), ValueError)
    True
    """


# ---------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------


def info(args, message):
    """Print ``message`` on stderr unless the command runs with ``--quiet``."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def one_line(exc):
    """The text of an exception on one line (a KeyError's key without its quotes).

    Examples
    --------
    >>> from fastdeconv.cli._common import one_line
    >>> one_line(KeyError("gene 'X'\\n  not found"))
    "gene 'X' not found"
    """
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def show_warning(message, category, filename, lineno, file=None, line=None):
    """Replacement for :func:`warnings.showwarning`: ``fastdeconv: warning: ...``, one line."""
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


# ---------------------------------------------------------------------------
# output paths, checked before any input is read
# ---------------------------------------------------------------------------


def check_table_path(path, option):
    """Fail before any work if an output table cannot be written (``None``: nothing to check).

    Examples
    --------
    >>> from fastdeconv.cli._common import check_table_path
    >>> check_table_path("proportions.xlsx", "--output")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fastdeconv.cli._common.InputError: --output: cannot tell the table format of ...
    """
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


def check_plot_path(path, option="--plot"):
    """Fail before any work if a figure cannot be saved to ``path`` (``None``: no figure)."""
    if path is None:
        return
    from fastdeconv.plotting._deconv import check_figure_path

    try:
        check_figure_path(path)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None
    _check_folder(path, option)


# ---------------------------------------------------------------------------
# reading and writing, with the option's name in every message
# ---------------------------------------------------------------------------


def read(path, option, **kwargs):
    """:func:`fastdeconv.io.read_table` with ``option`` in front of its error messages.

    Examples
    --------
    >>> from fastdeconv.cli._common import read
    >>> read("missing.tsv", "--bulk")
    Traceback (most recent call last):
    ...
    FileNotFoundError: --bulk: table file not found: 'missing.tsv'
    """
    from fastdeconv.io import read_table

    try:
        return read_table(path, **kwargs)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{option}: {one_line(exc)}") from None
    except ValueError as exc:
        raise InputError(f"{option}: {one_line(exc)}") from None


def read_counts(path):
    """``--counts``: a genes x cells table, or an AnnData object for ``.h5ad``."""
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
    return read(path, "--counts")


def read_labels(path):
    """``--labels``: two-column table with a header (cell id, cell type) -> Series by cell id."""
    labels = read_series(path, "--labels", "cell id, cell type", index_col=0, numeric=False)
    labels.index = labels.index.astype(str)
    return labels.astype(str)


def read_series(path, option, columns, **kwargs):
    """Two-column table with a header (ids, values) -> Series indexed by the ids.

    ``columns`` names the two columns for the message when the table has another shape.
    """
    table = read(path, option, **kwargs)
    if table.shape[1] != 1:
        raise InputError(
            f"{option}: {path!r} must have exactly two columns ({columns}), "
            f"found {table.shape[1] + 1}"
        )
    return table.iloc[:, 0]


def write(df, path, option, index_label):
    """:func:`fastdeconv.io.write_table` (atomic) with ``option`` in its error messages."""
    from fastdeconv.io import write_table

    try:
        write_table(df, path, index_label=index_label)
    except (OSError, ValueError) as exc:
        raise InputError(f"{option}: cannot write {path!r}: {one_line(exc)}") from None


def proportions_frame(proportions):
    """Proportions as written to OUT: samples x types, first header ``sample``."""
    frame = proportions.copy()
    frame.index.name = "sample"
    return frame


# ---------------------------------------------------------------------------
# argparse: value types, help, the options every command shares
# ---------------------------------------------------------------------------


def _positive(text, convert, what):
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive {what}, got {text!r}")
    return value


def positive_int(text):
    """``type=`` of an option taking a positive integer.

    Examples
    --------
    >>> from fastdeconv.cli._common import positive_int
    >>> positive_int("12")
    12
    """
    return _positive(text, int, "integer")


def positive_float(text):
    """``type=`` of an option taking a positive, finite number.

    Examples
    --------
    >>> from fastdeconv.cli._common import positive_float
    >>> positive_float("0.5")
    0.5
    """
    return _positive(text, float, "number")


def int_or_auto(text):
    """``type=`` of an option taking a positive integer or ``auto``.

    Examples
    --------
    >>> from fastdeconv.cli._common import int_or_auto
    >>> int_or_auto("auto"), int_or_auto("3")
    ('auto', 3)
    """
    if text == "auto":
        return "auto"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'auto', got {text!r}"
        ) from None


def regression_methods():
    """The regression registry, :data:`fastdeconv.methods.REGRESSION`, imported when called.

    Examples
    --------
    >>> from fastdeconv.cli._common import regression_methods
    >>> regression_methods().pipeline
    'regression'
    """
    from fastdeconv.methods import REGRESSION

    return REGRESSION


class MethodName:
    """``type=`` of an option naming a method of a registry (:mod:`fastdeconv.methods`).

    The registry is read when the option is given, not when the parser is
    built, so ``fastdeconv --help`` imports no method file.  An unknown name
    is a usage error worded as argparse words a wrong choice.

    Parameters
    ----------
    registry : callable
        Returns the :class:`fastdeconv.methods.Registry` (imported when called).

    Examples
    --------
    >>> from fastdeconv.cli._common import MethodName
    >>> from fastdeconv.methods import Method, Registry
    >>> toy = Registry("toy", modules=())
    >>> _ = toy.register(Method("a", "first", fit=print, normalise=True))
    >>> MethodName(lambda: toy)("a")
    'a'
    >>> MethodName(lambda: toy)("b")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: invalid choice: 'b' (choose from 'a')
    """

    def __init__(self, registry):
        self.registry = registry

    def __call__(self, text):
        names = self.registry().names()
        if text not in names:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {', '.join(map(repr, names))})"
            )
        return text


def help_when_shown(action, describe):
    """Let ``describe()`` write the help of ``action`` when the help is shown.

    For help that reads something costly (the method registry): building the
    parser reads nothing, ``COMMAND --help`` calls ``describe``.  ``action.help``
    stays as given, for tools that read the parser.

    Parameters
    ----------
    action : argparse.Action
        What ``add_argument`` returned.
    describe : callable
        Returns the help text (``%(default)s`` and the like are expanded as usual).

    Returns
    -------
    argparse.Action
        ``action``.

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli._common import HelpFormatter, help_when_shown
    >>> parser = argparse.ArgumentParser(prog="demo", formatter_class=HelpFormatter)
    >>> _ = help_when_shown(parser.add_argument("--x", help="x"), lambda: "written late")
    >>> "written late" in parser.format_help()
    True
    """
    action.describe_help = describe
    return action


@functools.lru_cache(maxsize=None)
def _terminal_width():
    import shutil

    return shutil.get_terminal_size().columns - 2  # what argparse.HelpFormatter uses


class HelpFormatter(argparse.HelpFormatter):
    """Show an option's default in its help unless it is None/False or already said.

    Help given by :func:`help_when_shown` is written here, when help is shown.

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli._common import HelpFormatter
    >>> parser = argparse.ArgumentParser(prog="demo", formatter_class=HelpFormatter)
    >>> _ = parser.add_argument("--repeats", type=int, default=3, help="timed runs")
    >>> "timed runs (default: 3)" in parser.format_help()
    True
    """

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None, **kwargs):
        # argparse makes a formatter for every add_argument; ask the terminal's width once
        if width is None:
            width = _terminal_width()
        super().__init__(prog, indent_increment, max_help_position, width, **kwargs)

    def add_argument(self, action):
        describe = getattr(action, "describe_help", None)
        if describe is not None and action.help != argparse.SUPPRESS:
            import copy

            action = copy.copy(action)
            action.help = describe()
        super().add_argument(action)

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


def add_command(subparsers, name, *, jobs=False, cells=False, **kwargs):
    """Add the subcommand ``name`` with the options it shares with the others.

    Every command takes ``-q/--quiet``; ``jobs=True`` adds ``--n-jobs``,
    ``cells=True`` the single-cell inputs ``--counts``, ``--labels`` and
    ``--label-key``.  They come first in the command's help, in that order.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers()`` returned.
    name : str
        The command.
    jobs, cells : bool
        Add the shared option groups.
    **kwargs
        ``help``, ``description`` and the like, for ``subparsers.add_parser``.

    Returns
    -------
    argparse.ArgumentParser
        The command's parser.

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli._common import add_command
    >>> sub = argparse.ArgumentParser(prog="fastdeconv").add_subparsers()
    >>> p = add_command(sub, "toy", jobs=True, help="a toy")
    >>> p.parse_args(["-q", "--n-jobs", "2"])
    Namespace(quiet=True, n_jobs=2)
    """
    p = subparsers.add_parser(name, formatter_class=HelpFormatter, **kwargs)
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar or messages on stderr (warnings and errors still show)",
    )
    if jobs:
        p.add_argument(
            "--n-jobs",
            type=positive_int,
            default=None,
            metavar="N",
            help="worker threads (default: all cores)",
        )
    if cells:
        p.add_argument(
            "--counts",
            required=True,
            metavar="COUNTS",
            help="raw counts: genes x cells table, or .h5ad",
        )
        p.add_argument(
            "--labels",
            metavar="LABELS",
            help="two-column table (cell id, cell type) with a header row",
        )
        p.add_argument(
            "--label-key",
            metavar="COLUMN",
            help=".h5ad only: the .obs column holding the cell types",
        )
    return p
