"""Validation of scalar options, the same way in every pipeline.

A wrong *type* raises :class:`TypeError`, a wrong *value* :class:`ValueError`;
every message names the keyword, the value received and what is accepted.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_int", "check_float", "check_choice", "check_probability"]


def check_int(value, name, minimum=1):
    """Return ``value`` as an ``int`` if it is an integer of at least ``minimum``.

    Parameters
    ----------
    value : object
        The option as the user gave it.
    name : str
        The keyword, for the message.
    minimum : int, optional
        Smallest value accepted (default 1).

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``value`` is not an integer (``bool`` is not one).
    ValueError
        If it is smaller than ``minimum``.

    Examples
    --------
    >>> from fastdeconv._checks import check_int
    >>> check_int(3, "n_markers")
    3
    >>> try:
    ...     check_int(0, "n_markers")
    ... except ValueError as err:
    ...     print(err)
    n_markers must be an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}"
        )
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_float(
    value, name, *, minimum=0.0, allow_minimum=False, maximum=np.inf, allow_maximum=False
):
    """Return ``value`` as a finite ``float`` within bounds.

    Parameters
    ----------
    value : object
        The option as the user gave it.
    name : str
        The keyword, for the message.
    minimum, maximum : float, optional
        Bounds (default: positive numbers).
    allow_minimum, allow_maximum : bool, optional
        Whether the bounds themselves are accepted (default: not).

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is not finite or out of bounds.

    Examples
    --------
    >>> from fastdeconv._checks import check_float
    >>> check_float(0.5, "alpha")
    0.5
    >>> check_float(0, "type_sd", allow_minimum=True)
    0.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    low_ok = value >= minimum if allow_minimum else value > minimum
    high_ok = value <= maximum if allow_maximum else value < maximum
    if not (np.isfinite(value) and low_ok and high_ok):
        low = f"{'>=' if allow_minimum else '>'} {minimum:g}"
        high = "" if maximum == np.inf else f" and {'<=' if allow_maximum else '<'} {maximum:g}"
        raise ValueError(f"{name} must be a finite number {low}{high}, got {value}")
    return value


def check_probability(value, name):
    """Return ``value`` as a float in the open interval (0, 1).

    Parameters
    ----------
    value : object
        The option as the user gave it.
    name : str
        The keyword, for the message.

    Returns
    -------
    float

    Examples
    --------
    >>> from fastdeconv._checks import check_probability
    >>> check_probability(0.05, "pvalue")
    0.05
    """
    return check_float(value, name, minimum=0.0, maximum=1.0)


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices``, else raise a ValueError listing them.

    Parameters
    ----------
    value : object
        The option as the user gave it.
    name : str
        The keyword, for the message.
    choices : sequence
        The accepted values.

    Returns
    -------
    object
        ``value``.

    Examples
    --------
    >>> from fastdeconv._checks import check_choice
    >>> check_choice("huber", "robust", ("huber", None))
    'huber'
    """
    try:
        ok = value in choices
    except TypeError:  # unhashable
        ok = False
    if not ok:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
    return value
