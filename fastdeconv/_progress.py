"""Progress bars for long runs: tqdm on stderr, shown only where someone can see them.

Every long loop of fastdeconv uses :func:`progress_bar`, so the bars look and
behave the same: by default they appear only when stderr is a terminal and the
work is large enough to be worth watching; ``progress=True``/``False`` in the
pipelines forces them on or off.
"""

from __future__ import annotations

import sys

__all__ = ["progress_bar", "MIN_TOTAL"]

#: Smallest amount of work (e.g. samples) for which a bar is shown by default.
MIN_TOTAL = 4096

_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit}s [{elapsed}<{remaining}]"


def _stderr_is_terminal():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_bar(total, enabled=None, desc="fastdeconv", unit="sample", min_total=MIN_TOTAL):
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

    Returns
    -------
    tqdm.tqdm
        Call ``update(n)`` after every ``n`` units; a disabled bar writes
        nothing.

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
        enabled = _stderr_is_terminal() and total > min_total
    return tqdm(
        total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, leave=True,
        bar_format=_FORMAT, dynamic_ncols=True,
    )
