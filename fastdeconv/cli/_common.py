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


def show_warning(message, category, filename, lineno, file=None, line=None, *, flags=None):
    """Replacement for :func:`warnings.showwarning`: ``fastdeconv: warning: ...``, one line.

    With ``flags`` (the command's keyword -> flag table), a warning whose text
    can spell its remedies as flags (an object with ``render(flags)``, such as
    :class:`fastdeconv.errors.InputProblem` or a signature note, given to
    :func:`warnings.warn`) is shown with the flags; :func:`fastdeconv.cli.main`
    passes them.

    Examples
    --------
    >>> from fastdeconv.cli._common import show_warning
    >>> from fastdeconv.errors import Fix, InputProblem
    >>> import sys; sys.stderr = sys.stdout  # for the example
    >>> note = InputProblem("few markers;   relax {0}", Fix("min_frac", 0.05))
    >>> show_warning(UserWarning(note), UserWarning, "x.py", 1, flags={"min_frac": "--min-frac"})
    fastdeconv: warning: few markers; relax --min-frac 0.05
    >>> sys.stderr = sys.__stderr__
    """
    text = message
    if flags is not None:
        for candidate in (message, *getattr(message, "args", ())[:1]):
            if callable(getattr(candidate, "render", None)):
                try:
                    text = candidate.render(flags)
                except Exception:  # noqa: BLE001 - fall back to the plain text
                    text = message
                break
    print(f"{PROG}: warning: {' '.join(str(text).split())}", file=sys.stderr)


def spell_flags(text, flags):
    """A library message's keywords (``drop unexplained=``) spelled as this command's flags.

    The library names its remedies as keywords; a message that is not an
    :class:`fastdeconv.errors.InputProblem` (which renders its own remedies)
    still names them bare, ``keyword=`` followed by a space or punctuation,
    and a method's option as ``method_options={'key': ...}``.  Both are
    rewritten with ``flags`` (keyword -> flag); anything else is left as it is.

    Examples
    --------
    >>> from fastdeconv.cli._common import spell_flags
    >>> flags = {"unexplained": "--unexplained", "method_options": "--method-option"}
    >>> spell_flags("method='x' reports it already: drop unexplained= (or ...)", flags)
    "method='x' reports it already: drop --unexplained (or ...)"
    >>> spell_flags("method_options={'nu': ...} must be <= 1, got 2.0", flags)
    '--method-option nu=... must be <= 1, got 2.0'
    """
    import re

    if "method_options" in flags:
        text = re.sub(r"method_options=\{'(\w+)': \.\.\.\}",
                      lambda mo: f"{flags['method_options']} {mo.group(1)}=...", text)
    for keyword, flag in flags.items():
        text = re.sub(rf"(?<![\w-]){re.escape(keyword)}=(?=[\s,;:.)]|$)", flag, text)
    return text


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
    except (ValueError, OSError) as exc:  # not a table, damaged, unreadable
        raise InputError(f"{option}: {one_line(exc)}") from None


def read_counts(path, option="--counts"):
    """``--counts`` (or ``option``): a genes x cells table, or an AnnData object for ``.h5ad``."""
    if str(path).lower().endswith(".h5ad"):
        from fastdeconv.io import read_h5ad

        try:
            return read_h5ad(path)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{option}: {one_line(exc)}") from None
        except (ValueError, OSError, ImportError) as exc:  # damaged, unreadable, no anndata
            raise InputError(f"{option}: {one_line(exc)}") from None
    return read(path, option)


def read_labels(path, option="--labels", what="cell type"):
    """``--labels`` (or ``--subjects``): two-column table with a header (cell id, value) -> Series.

    ``what`` names the second column in messages.
    """
    labels = read_series(path, option, f"cell id, {what}", index_col=0, numeric=False)
    for missing, what in ((labels.index.isna(), "no cell id"), (labels.isna(), f"no {what}")):
        if missing.any():  # would become a cell or a type named 'nan'
            rows = [i + 2 for i in [k for k, m in enumerate(missing) if m][:3]]  # 1-based
            raise InputError(
                f"{option}: {path!r} has {int(missing.sum())} row(s) with {what} (line(s) "
                f"{', '.join(map(str, rows))}); fill them in or remove those rows"
            )
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


def number_type(convert, accept, expected, *, auto=False):
    """Build the ``type=`` of an option taking a number within bounds.

    Parameters
    ----------
    convert : {int, float}
        How the text becomes a number.
    accept : callable
        ``accept(value) -> bool``: whether a finite number is allowed.
    expected : str
        What the option takes, for the usage error ("a positive integer").
    auto : bool, optional
        Also accept the word ``auto``, returned as it is.

    Returns
    -------
    callable
        ``parse(text)``: the number, or ``"auto"``; raises
        :class:`argparse.ArgumentTypeError` ``expected ..., got 'text'`` otherwise.

    Examples
    --------
    >>> from fastdeconv.cli._common import number_type
    >>> fraction = number_type(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")
    >>> fraction("0.25")
    0.25
    >>> fraction("2")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a number from 0 to 1, got '2'
    """

    def parse(text):
        if auto and text == "auto":
            return "auto"
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or value != value or value in (float("inf"), -float("inf")):
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected
    return parse


#: ``type=`` of an option taking a positive integer (``positive_int("12") == 12``).
positive_int = number_type(int, lambda v: v > 0, "a positive integer")
#: ``type=`` of an option taking a positive, finite number.
positive_float = number_type(float, lambda v: v > 0, "a positive number")
#: ``type=`` of an option taking a positive integer or ``auto``.
int_or_auto = number_type(int, lambda v: v > 0, "a positive integer or 'auto'", auto=True)


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


#: The library function each command hands its options to.  ``--help`` reads
#: from it the defaults that the library decides (an option whose CLI default
#: is None and whose help says "the library's"): see :func:`library_default`.
PIPELINES = {
    "deconvolve": ("fastdeconv.regression", "deconvolve"),
    "demo": ("fastdeconv.regression", "deconvolve"),  # run_benchmark passes --method on
    "linseed": ("fastdeconv.reference_free", "linseed"),
    "signature": ("fastdeconv.signature", "build_signature"),
    "simulate": ("fastdeconv.simulate", "pseudobulk"),
}

_MISSING = object()


@functools.lru_cache(maxsize=None)
def _module_source(module):
    """The parsed source of ``module`` (its file found without importing it), or None."""
    import ast
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        with open(spec.origin, encoding="utf-8") as fh:
            return ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return None


def _default_in_source(module, function, keyword):
    """The literal default of ``keyword`` read from the source, or ``_MISSING``."""
    import ast

    tree = _module_source(module)
    if tree is None:
        return _MISSING
    constants, default, defined = {}, _MISSING, False
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            if isinstance(node.targets[0], ast.Name):
                constants[node.targets[0].id] = node.value
        elif isinstance(node, ast.FunctionDef) and node.name == function:
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            default = next((d for a, d in pairs if a.arg == keyword), _MISSING)
            names = [a.arg for a in positional + args.kwonlyargs]
            defined = keyword not in names and not (args.kwarg or args.vararg)

    def literal(node):
        if isinstance(node, ast.Name) and node.id in constants:
            node = constants[node.id]
        return ast.literal_eval(node)

    if defined:  # the function is there and has no such parameter
        raise LookupError(f"{module}.{function} has no parameter {keyword!r}")
    if default is _MISSING:
        return _MISSING
    try:
        value = literal(default)
        if value is None and f"DEFAULT_{keyword.upper()}" in constants:
            value = literal(constants[f"DEFAULT_{keyword.upper()}"])
    except (ValueError, TypeError, SyntaxError):
        return _MISSING
    return value


def library_default(module, function, keyword):
    """The default the library uses for ``keyword`` of ``module.function``.

    For help text: an option whose command-line default is None lets the
    library decide, and its help shows this value.  The value is read from the
    function's source when it is a literal (so ``--help`` imports neither
    NumPy nor Numba), else from :func:`inspect.signature` after importing the
    module.  A default of None is looked up as the module's constant
    ``DEFAULT_<KEYWORD>`` (``DEFAULT_N_MARKERS``), the convention for "the
    library picks".

    Parameters
    ----------
    module : str
        The module (``"fastdeconv.regression"``).
    function : str
        The function in it (``"deconvolve"``).
    keyword : str
        The parameter (``"method"``).

    Returns
    -------
    object
        The default value.

    Raises
    ------
    LookupError
        If the function has no such parameter, or the parameter no default.

    Examples
    --------
    >>> from fastdeconv.cli._common import library_default
    >>> library_default("fastdeconv.regression", "deconvolve", "method")
    'auto'
    >>> library_default("fastdeconv.signature", "build_signature", "n_markers")
    25
    """
    value = _default_in_source(module, function, keyword)
    if value is not _MISSING:
        return value
    import importlib
    import inspect

    mod = importlib.import_module(module)
    try:
        parameter = inspect.signature(getattr(mod, function)).parameters[keyword]
    except (AttributeError, KeyError, TypeError, ValueError):
        raise LookupError(f"{module}.{function} has no parameter {keyword!r}") from None
    if parameter.default is inspect.Parameter.empty:
        raise LookupError(f"{module}.{function}: {keyword!r} has no default")
    value = parameter.default
    if value is None:
        value = getattr(mod, f"DEFAULT_{keyword.upper()}", None)
    return value


_LIBRARY_PHRASE = "the library's"


def _show(value):
    return str(value).replace("%", "%%")


@functools.lru_cache(maxsize=None)
def _terminal_width():
    import shutil

    return shutil.get_terminal_size().columns - 2  # what argparse.HelpFormatter uses


class HelpFormatter(argparse.HelpFormatter):
    """Show an option's default in its help unless it is None/False or already said.

    Help given by :func:`help_when_shown` is written here, when help is shown.
    An option whose default the library decides says so with the words "the
    library's" (``"(default: the library's)"``); they are replaced by the
    library's value (:func:`library_default`), read from the function the
    command calls (:data:`PIPELINES`) under the option's keyword (the command's
    ``flags`` table, else the option's name, else ``n_`` and its name).

    Parameters
    ----------
    prog : str
        The program (``"fastdeconv deconvolve"``).
    parser : argparse.ArgumentParser, optional
        The command's parser, for its ``flags`` table (keyword -> flag).

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli._common import HelpFormatter
    >>> parser = argparse.ArgumentParser(prog="demo", formatter_class=HelpFormatter)
    >>> _ = parser.add_argument("--repeats", type=int, default=3, help="timed runs")
    >>> "timed runs (default: 3)" in parser.format_help()
    True
    >>> parser = argparse.ArgumentParser(prog="fastdeconv linseed", formatter_class=HelpFormatter)
    >>> _ = parser.add_argument("--top-genes", help="genes analysed (default: the library's)")
    >>> "genes analysed (default: 10000)" in parser.format_help()
    True
    """

    def __init__(
        self, prog, indent_increment=2, max_help_position=24, width=None, parser=None, **kwargs
    ):
        # argparse makes a formatter for every add_argument; ask the terminal's width once
        if width is None:
            width = _terminal_width()
        super().__init__(prog, indent_increment, max_help_position, width, **kwargs)
        self._parser = parser

    def _library_value(self, action):
        command = self._prog.split()[-1] if self._prog else ""
        if command not in PIPELINES:
            return _MISSING
        module, function = PIPELINES[command]
        flags = self._parser.get_default("flags") if self._parser is not None else None
        keywords = [k for k, f in (flags or {}).items() if f in action.option_strings]
        keywords += [action.dest, f"n_{action.dest}"]
        for keyword in keywords:
            try:
                value = library_default(module, function, keyword)
            except (LookupError, ImportError):
                continue
            return _MISSING if value is None else value
        return _MISSING

    def _library_phrase(self, action, text):
        """Replace "the library's[, VALUE]" by the library's value."""
        import re

        value = self._library_value(action)

        def replace(match):
            if value is not _MISSING:
                return _show(value)
            return match.group(1) or match.group(0)  # the value the help names, if any

        return re.sub(r"the library's(?:,\s*([^);]+))?", replace, text)

    def add_argument(self, action):
        describe = getattr(action, "describe_help", None)
        if describe is not None and action.help != argparse.SUPPRESS:
            import copy

            action = copy.copy(action)
            action.help = describe()
        super().add_argument(action)

    def _get_help_string(self, action):
        text = action.help or ""
        if _LIBRARY_PHRASE in text:
            text = self._library_phrase(action, text)
        default = action.default
        if (
            default is not None
            and default is not False
            and default != argparse.SUPPRESS
            and "default" not in text
        ):
            text += " (default: %(default)s)"
        return text


def _record(parser, role, dest):
    parser.set_defaults(**{role: tuple(parser.get_default(role) or ()) + (dest,)})


def input_file(parser, *flags, **kwargs):
    """Add an option naming a file the command reads (recorded for :func:`check_paths`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser.
    *flags : str
        The option strings (``"--bulk"``).
    **kwargs
        Passed to ``parser.add_argument``.

    Returns
    -------
    argparse.Action

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli._common import input_file
    >>> p = argparse.ArgumentParser()
    >>> _ = input_file(p, "--bulk")
    >>> p.get_default("io_inputs")
    ('bulk',)
    """
    action = parser.add_argument(*flags, **kwargs)
    _record(parser, "io_inputs", action.dest)
    return action


def output_file(parser, *flags, **kwargs):
    """Add an option naming a file the command writes (recorded for :func:`check_paths`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser.
    *flags : str
        The option strings (``"--output"``).
    **kwargs
        Passed to ``parser.add_argument``.

    Returns
    -------
    argparse.Action

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli._common import output_file
    >>> p = argparse.ArgumentParser()
    >>> _ = output_file(p, "--output")
    >>> p.get_default("io_outputs")
    ('output',)
    """
    action = parser.add_argument(*flags, **kwargs)
    _record(parser, "io_outputs", action.dest)
    return action


def _option(dest):
    return "--" + dest.replace("_", "-")


def _same_file(a, b):
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_paths(args):
    """Refuse to run when an output would overwrite an input or another output.

    Two inputs naming one file are refused too: every input of a command has
    its own role (the bulk and the signature, the estimate and the truth), so
    one file given twice is a slip of the keyboard, and a run would answer
    without saying so.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (options recorded by :func:`input_file` and
        :func:`output_file`).

    Raises
    ------
    InputError
        Naming both options.

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli._common import check_paths
    >>> args = argparse.Namespace(io_inputs=("bulk",), io_outputs=("output",),
    ...                           bulk="data.tsv", output="data.tsv")
    >>> try:
    ...     check_paths(args)
    ... except ValueError as err:
    ...     print(err)
    --output would overwrite --bulk ('data.tsv'): give the output another file name
    """
    inputs = [(d, getattr(args, d, None)) for d in getattr(args, "io_inputs", ())]
    outputs = [(d, getattr(args, d, None)) for d in getattr(args, "io_outputs", ())]
    inputs = [(d, v) for d, v in inputs if v]
    outputs = [(d, v) for d, v in outputs if v]
    for i, (dest, path) in enumerate(outputs):
        for other, other_path in inputs + outputs[:i]:
            if _same_file(path, other_path):
                verb = "overwrite" if (other, other_path) in inputs else "be the same file as"
                raise InputError(
                    f"{_option(dest)} would {verb} {_option(other)} ({path!r}): give the "
                    "output another file name"
                )
    for i, (dest, path) in enumerate(inputs):
        for other, other_path in inputs[:i]:
            if os.path.exists(path) and _same_file(path, other_path):  # else: "not found" later
                raise InputError(
                    f"{_option(dest)} names the same file as {_option(other)} ({path!r}); "
                    "each option needs its own table"
                )


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
    p.formatter_class = functools.partial(HelpFormatter, parser=p)  # reads p's flags table
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no summary on stdout, no progress bar or messages on stderr (warnings and "
        "errors still show)",
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
        input_file(
            p,
            "--counts",
            required=True,
            metavar="COUNTS",
            help="raw counts: genes x cells table, or .h5ad",
        )
        input_file(
            p,
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
