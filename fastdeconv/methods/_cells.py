"""What the peer methods that read a single-cell reference share.

MuSiC, Bisque and EPIC (:mod:`fastdeconv.methods.music`,
:mod:`fastdeconv.methods.bisque`, :mod:`fastdeconv.methods.epic`) check their
options and the :class:`~fastdeconv.methods._problem.CellContext` the same
way (the context's own summaries -- the mean over all cells of a type, the
mean and the variance over subjects -- are its methods).  Only NumPy is
imported here (the registry reads the method files at start-up).

Examples
--------
>>> import numpy as np
>>> from fastdeconv.methods._problem import CellContext
>>> profiles = np.array([[[0.2, 0.4, np.nan], [0.5, 0.5, 0.5]]])  # 1 gene, 2 types, 3 subjects
>>> ctx = CellContext(np.ones(2), np.array([3, 3]), ("a", "b", "c"), profiles,
...                   np.array([[1, 2, 0], [1, 1, 1]]), np.zeros((1, 3)))
>>> ctx.subject_mean().round(3).tolist(), ctx.subject_variance().round(3).tolist()
([[0.3, 0.5]], [[0.02, 0.0]])
"""

from __future__ import annotations

import numpy as np

from fastdeconv._checks import check_choice, check_float, check_int

__all__ = [
    "merged_options", "option_float", "option_int", "option_bool", "option_choice",
    "require_cells",
]


def _key(key):
    return f"method_options={{{key!r}: ...}}"


def merged_options(problem, defaults):
    """The method's defaults updated with ``problem.options``.

    The pipeline passes the merged dict already; a direct caller may give only
    some keys (or none).

    Parameters
    ----------
    problem : RegressionProblem
        The problem.
    defaults : dict
        The record's options.

    Returns
    -------
    dict

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._cells import merged_options
    >>> from fastdeconv.methods._problem import RegressionProblem
    >>> p = RegressionProblem(np.eye(2), np.ones((2, 1)), options={"nu": 0.5})
    >>> merged_options(p, {"nu": 1e-4, "eps": 0.01})
    {'nu': 0.5, 'eps': 0.01}
    """
    merged = dict(defaults)
    merged.update(problem.options)
    return merged


def option_float(options, key, **bounds):
    """``options[key]`` as a float within bounds; the error names ``method_options={key: ...}``.

    Parameters
    ----------
    options : dict
        The merged options.
    key : str
        The option.
    **bounds
        As for :func:`fastdeconv._checks.check_float`.

    Returns
    -------
    float

    Examples
    --------
    >>> from fastdeconv.methods._cells import option_float
    >>> try:
    ...     option_float({"nu": -1.0}, "nu")
    ... except ValueError as err:
    ...     print(err)
    method_options={'nu': ...} must be a finite number > 0, got -1.0
    """
    return check_float(options[key], _key(key), **bounds)


def option_int(options, key, minimum=1):
    """``options[key]`` as an int of at least ``minimum`` (errors name the option).

    Parameters
    ----------
    options : dict
        The merged options.
    key : str
        The option.
    minimum : int, optional
        Smallest value accepted.

    Returns
    -------
    int

    Examples
    --------
    >>> from fastdeconv.methods._cells import option_int
    >>> option_int({"iter_max": 10}, "iter_max")
    10
    """
    return check_int(options[key], _key(key), minimum)


def option_bool(options, key):
    """``options[key]`` as a bool (True/False, or the text ``"true"``/``"false"``).

    Parameters
    ----------
    options : dict
        The merged options.
    key : str
        The option.

    Returns
    -------
    bool

    Examples
    --------
    >>> from fastdeconv.methods._cells import option_bool
    >>> option_bool({"centered": "false"}, "centered")
    False
    """
    value = options[key]
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{_key(key)} must be True or False, got {value!r}")


def option_choice(options, key, choices):
    """``options[key]`` if it is one of ``choices`` (the error lists them).

    None stands for ``"none"`` (the registry reads the text ``none`` as None).

    Parameters
    ----------
    options : dict
        The merged options.
    key : str
        The option.
    choices : sequence
        The accepted values.

    Returns
    -------
    object

    Examples
    --------
    >>> from fastdeconv.methods._cells import option_choice
    >>> option_choice({"weights": None}, "weights", ("auto", "none"))
    'none'
    """
    value = options[key]
    if value is None and "none" in choices:
        value = "none"
    return check_choice(value, _key(key), choices)


def require_cells(problem, method, min_subjects=1):
    """``problem.cells``, checked: present, on the problem's types, with enough subjects.

    Parameters
    ----------
    problem : RegressionProblem
        The problem.
    method : str
        The method's name, for the messages.
    min_subjects : int, optional
        Fewest donors or batches the method works with.

    Returns
    -------
    CellContext

    Raises
    ------
    ValueError
        Without a context (pass ``labels=``), or with fewer subjects than
        needed (pass ``subjects=``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._cells import require_cells
    >>> from fastdeconv.methods._problem import RegressionProblem
    >>> try:
    ...     require_cells(RegressionProblem(np.eye(2), np.ones((2, 1))), "music")
    ... except ValueError as err:
    ...     print(str(err)[:60])
    method='music' needs a single-cell reference: pass raw count
    """
    ctx = problem.cells
    if ctx is None:
        raise ValueError(
            f"method={method!r} needs a single-cell reference: pass raw counts (genes x cells) "
            "as the signature with the cell type of every cell as labels="
        )
    k = ctx.rna_content.shape[0]
    if problem.S.shape[1] != k or ctx.subject_profiles.shape[:2] != (problem.n, k):
        raise ValueError(
            f"method={method!r}: the single-cell context has {k} cell types on "
            f"{ctx.subject_profiles.shape[0]} genes, the signature {problem.S.shape[1]} columns "
            f"on {problem.n} genes (fit no background with this method)"
        )
    if ctx.n_subjects < min_subjects:
        raise ValueError(
            f"method={method!r} learns from the variation between donors and needs at least "
            f"{min_subjects} of them; the reference has {ctx.n_subjects} "
            f"({', '.join(ctx.subjects)}): pass the donor or batch of every cell as subjects= "
            f"with at least {min_subjects} distinct values"
        )
    return ctx
