"""Progress bars for long runs: tqdm on stderr, shown only where someone can see them.

Every long loop of fastdeconv uses :func:`progress_bar`, so the bars look and
behave the same: by default they appear only when stderr is a terminal and the
work is large enough to be worth watching; ``progress=True``/``False`` in the
pipelines forces them on or off.  A run whose size is not one count of units
decides once, with :func:`show_progress`, and passes the answer to each bar.

The first run on a machine also waits for Numba to compile the kernels (they
are cached on disk afterwards).  :func:`compile_notice` says so, in one line
above the bars, exactly when Numba starts compiling (Numba announces each
compilation, event ``numba:compile``; loading a cached kernel is not one):
nothing is said on a warm run, and nothing when the bars are off.
"""

from __future__ import annotations

import contextlib
import sys
import threading

__all__ = [
    "progress_bar", "show_progress", "compile_notice", "advancer", "MIN_TOTAL", "COMPILING",
]

#: Smallest amount of work (e.g. samples) for which a bar is shown by default.
MIN_TOTAL = 4096

#: The line :func:`compile_notice` writes on stderr when Numba starts compiling.
COMPILING = (
    "fastdeconv: compiling the solvers for this machine (first run only, cached afterwards) ..."
)

_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit}s [{elapsed}<{remaining}]"


def _stderr_is_terminal():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def show_progress(progress, large):
    """Whether a run shows its bars: ``progress`` when given, else a terminal and large work.

    Parameters
    ----------
    progress : bool or None
        The user's choice (a pipeline's ``progress=``); None: decide.
    large : bool
        Whether the run is long enough to be worth watching (the caller's
        estimate of its work, e.g. more than :data:`MIN_TOTAL` samples).

    Returns
    -------
    bool
        ``bool(progress)`` when given; otherwise whether stderr is a terminal
        and ``large``.

    Examples
    --------
    >>> from fastdeconv._progress import show_progress
    >>> show_progress(True, large=False), show_progress(False, large=True)
    (True, False)
    >>> show_progress(None, large=True)  # stderr is not a terminal here
    False
    """
    if progress is not None:
        return bool(progress)
    return bool(large) and _stderr_is_terminal()


def progress_bar(total, enabled=None, desc="fastdeconv", unit="sample", min_total=MIN_TOTAL,
                 *, unit_scale=False, compiling=False):
    """A progress bar on stderr (a :class:`tqdm.tqdm`; use it as a context manager).

    Parameters
    ----------
    total : int
        Units of work (e.g. samples) the bar counts to.
    enabled : bool, optional
        Show the bar (True) or not (False); None: shown when stderr is a
        terminal and ``total > min_total``.
    desc : str, default "fastdeconv"
        Label in front of the bar (the command or function running).
    unit : str, default "sample"
        What is counted (singular; the bar shows ``done/total units``).
    min_total : int, default 4096
        Threshold of ``enabled=None``.
    unit_scale : bool, default False
        Show the counts with SI prefixes (``72.0M/72.0M pairs``), for large
        counts.
    compiling : bool, default False
        While the bar is open, say so in one line above it when Numba starts
        compiling (:func:`compile_notice`; only for a bar that is shown).

    Returns
    -------
    tqdm.tqdm
        Call ``update(n)`` after every ``n`` units; a disabled bar writes
        nothing.  From worker threads, call :func:`advancer` ``(bar)``
        instead.

    Examples
    --------
    >>> from fastdeconv._progress import progress_bar
    >>> with progress_bar(10, enabled=False, desc="demo") as bar:  # writes nothing
    ...     bar.update(10)
    >>> bar.disable, progress_bar(10).disable  # by default: not for 10 samples
    (True, True)
    """
    from tqdm import tqdm

    if enabled is None:
        enabled = show_progress(None, total > min_total)
    bar = tqdm(
        total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, leave=True,
        bar_format=_FORMAT, dynamic_ncols=True, unit_scale=unit_scale,
    )
    if compiling and enabled:
        _close_with(bar, compile_notice(True))
    return bar


def _close_with(bar, context):
    """Enter ``context`` now and leave it when ``bar`` closes (once, however often it closes)."""
    context.__enter__()
    close = bar.close
    is_open = True

    def close_both():
        nonlocal is_open
        try:
            close()
        finally:
            if is_open:
                is_open = False
                context.__exit__(None, None, None)

    bar.close = close_both


def advancer(bar):
    """``bar.update`` behind a lock, for worker threads that each finish a chunk.

    Parameters
    ----------
    bar : tqdm.tqdm
        A bar from :func:`progress_bar`.

    Returns
    -------
    callable or None
        ``advance(n)`` adds ``n`` units; None for a disabled bar (nothing to
        call, nothing to lock).

    Examples
    --------
    >>> from fastdeconv._progress import advancer, progress_bar
    >>> with progress_bar(4, enabled=False) as bar:
    ...     print(advancer(bar))
    None
    """
    if bar.disable:
        return None
    lock = threading.Lock()

    def advance(n):
        with lock:
            bar.update(n)

    return advance


# ---------------------------------------------------------------- the compile note
class _NoticeState:
    """The one listener shared by every open :func:`compile_notice`, and whether it spoke."""

    lock = threading.Lock()
    open = 0  # compile_notice contexts open (nested or in other threads)
    said = False  # the note was written since the outermost one opened
    listener = None


def _say():
    """Write the note once per outermost context, above any bar (never raises)."""
    state = _NoticeState
    try:
        with state.lock:
            if state.said or not state.open:
                return
            state.said = True
        from tqdm import tqdm

        tqdm.write(COMPILING, file=sys.stderr)  # clears the bars, writes, redraws them
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a courtesy must never break a compilation
        pass


def _listener():
    """A ``numba:compile`` listener calling :func:`_say` (built once; Numba imported here)."""
    if _NoticeState.listener is None:
        from numba.core import event

        class Listener(event.Listener):
            def on_start(self, ev):
                _say()

            def on_end(self, ev):
                pass

        _NoticeState.listener = Listener()
    return _NoticeState.listener


@contextlib.contextmanager
def compile_notice(enabled=True):
    """A context in which the first Numba compilation says so on stderr, in one line.

    Numba announces every compilation (event ``numba:compile``) and loads a
    kernel from its on-disk cache without one, so the line appears exactly
    when the user waits for the compiler: on a machine's (or a new version's)
    first run, not on a warm one.  It is written once, however many kernels
    compile, and contexts nest: an inner one (a bar's, a pipeline's stage)
    says nothing the outermost has said.  The line goes above any tqdm bar
    on stderr, which is redrawn below it.  Any failure (another Numba whose
    events differ) leaves it silent: it is a courtesy.

    Parameters
    ----------
    enabled : bool, default True
        False: do nothing (no bar is shown, so nothing is said either).

    Yields
    ------
    None

    Examples
    --------
    >>> from fastdeconv._progress import compile_notice
    >>> with compile_notice(enabled=False):  # bars off: never a word
    ...     pass
    """
    if not enabled:
        yield
        return
    state = _NoticeState
    try:
        from numba.core import event

        listener = _listener()
        with state.lock:
            if state.open == 0:
                event.register("numba:compile", listener)
                state.said = False
            state.open += 1
    except Exception:  # noqa: BLE001 - no Numba events: stay silent
        yield
        return
    try:
        yield
    finally:
        with state.lock:
            state.open -= 1
            if state.open == 0:
                with contextlib.suppress(Exception):
                    event.unregister("numba:compile", listener)
