"""The one place that sets Numba compilation flags, and knows where Numba caches them.

Every kernel in :mod:`fastdeconv.kernels` is compiled through :func:`jit` (or
:func:`jit_helper`), so the flags are uniform: ``nogil=True`` lets Python
threads run kernels concurrently, ``cache=True`` stores the machine code on
disk so only the first-ever call pays for compilation, and
``error_model="numpy"`` makes division by zero produce inf/NaN instead of
raising inside the hot loop.  ``fastmath`` is deliberately off: the active-set
solvers compare floating-point numbers to decide convergence, and fast-math
reassociation or NaN assumptions would change those decisions.  (One helper
overrides it: the likelihood evaluation of :mod:`fastdeconv.kernels.mixture`
allows reassociation and contraction only, so that its dot products vectorise;
its convergence test is the KKT residual, recomputed from those sums.)  No global
``numba.config`` is touched, and nothing is compiled at import: a kernel
compiles (or loads from the cache) on its first call.

Compile time is user-facing (the first run of a command waits for it), so the
kernels keep it down: each kernel is called with one dtype and layout
(float64, C-contiguous) and flags as run-time booleans rather than constants
(a constant ``True`` makes Numba compile a second copy of everything below
it), and helpers that only other kernels call get no Python entry point
(:func:`jit_helper`).  ``benchmarks/compile_time.py`` measures it.

:func:`needs_compilation` tells, without importing Numba, whether the on-disk
cache is cold, so that the command line can say why the first run waits.
"""

from __future__ import annotations

import ast
import hashlib
import os
import pickletools
import sys

JIT_OPTIONS = {"nogil": True, "cache": True, "error_model": "numpy", "fastmath": False}

#: the flags :func:`jit_helper` changes: no Python entry point, and no cache file of its own
HELPER_OPTIONS = {"no_cpython_wrapper": True, "cache": False}


def jit(*signature, **overrides):
    """Compile a kernel with the project's standard Numba flags.

    Parameters
    ----------
    *signature
        Optional explicit Numba signature(s), passed through to :func:`numba.njit`.
    **overrides
        Flag overrides (rarely needed; prefer the defaults).

    Returns
    -------
    callable
        A decorator, or the compiled dispatcher when used without parentheses.

    Examples
    --------
    >>> from fastdeconv._jit import jit
    >>> @jit(cache=False)  # functions typed at a prompt have no file to cache to
    ... def add(a, b):
    ...     return a + b
    >>> add(1.0, 2.0)
    3.0
    """
    import numba

    options = {**JIT_OPTIONS, **overrides}
    if len(signature) == 1 and callable(signature[0]):
        return numba.njit(**options)(signature[0])
    return numba.njit(*signature, **options)


def jit_helper(function=None, **overrides):
    """Compile a helper that only other kernels call: no Python entry point, no cache file.

    Numba builds, for every compiled function, a wrapper that converts Python
    objects to native values; a helper never called from Python does not need
    it.  Nor does it need a cache file of its own: the cached machine code of
    every kernel that calls it contains it, and writing its own means
    generating its machine code once more.  Skipping both cuts a first
    compilation by about a quarter.  (A large helper that several kernels
    share may keep its cache, ``cache=True``, so that a kernel compiled in a
    later process reuses it.)  The helper cannot be called from Python
    (``helper.py_func`` runs its source instead); call it from a ``@jit``
    function.

    Parameters
    ----------
    function : callable, optional
        The helper (when used without parentheses).
    **overrides
        Flag overrides, as for :func:`jit`.

    Returns
    -------
    callable
        The dispatcher, or a decorator.

    Examples
    --------
    >>> from fastdeconv._jit import jit, jit_helper
    >>> @jit_helper(cache=False)
    ... def twice(a):
    ...     return 2.0 * a
    >>> @jit(cache=False)
    ... def kernel(a):
    ...     return twice(a) + 1.0
    >>> kernel(1.0), twice.py_func(1.0)
    (3.0, 2.0)
    """
    options = {**HELPER_OPTIONS, **overrides}
    if function is not None:
        return jit(**options)(function)
    return jit(**options)


# ------------------------------------------------------------ is the cache cold?

#: what a run compiles: task -> groups of (kernel module, function); a group is
#: ready when any of its kernels is cached (the signature kernels: dense or sparse)
_TASKS = {
    "robust": ((("robust", "huber_batch"),),),
    "least_squares": ((("_active_set", "gram_batch"),),),
    "mixture": ((("mixture", "em_batch"),),),
    "uncertainty": ((("bootstrap", "bootstrap_block"),),),
    # methods with kernels of their own: the task is the method's name
    "nusvr": ((("svr", "nu_svr"),),),
    "dwls": ((("dwls", "dwls_batch"),),),
    "linseed": (
        (("linearity", "accumulate_block"),),
        (("linearity", "pair_weights"),),
        (("linearity", "window_sums"),),
        (("linearity", "saddlepoint_pvalues"),),
        (("corners", "successive_projection"),),
        (("corners", "minimise_corners"),),
        (("_active_set", "gram_batch"),),
    ),
    "signature": ((("markers", "group_sums_dense"), ("markers", "group_sums_sparse")),),
}
#: command-line commands -> the tasks their options can run (any cold: the command is cold;
#: a needless True only means that the command line listens for a compilation that never comes)
_COMMANDS = {
    "deconvolve": ("robust", "least_squares"),
    "demo": ("robust", "least_squares"),
    "linseed": ("linseed",),
    "signature": ("signature",),
    "evaluate": (),
    "simulate": (),
}


def _kernels_dir():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")


def _subpath(source_dir):
    """Numba's folder name for a source folder inside a cache root (parent name + SHA-1)."""
    digest = hashlib.sha1(source_dir.encode()).hexdigest()
    return f"{os.path.split(source_dir)[-1]}_{digest}"


def _user_cache_root(environ):
    """Numba's user-wide cache folder (its appdirs ``user_cache_dir("numba")``)."""
    home = os.path.expanduser("~")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Caches", "numba")
    if sys.platform.startswith("win"):
        local = environ.get("LOCALAPPDATA", os.path.join(home, "AppData", "Local"))
        return os.path.join(local, "numba", "Cache")
    return os.path.join(environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "numba")


def _writable(folder):
    """Whether Numba could write its cache into ``folder`` (creating it if need be)."""
    while not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent
    return os.access(folder, os.W_OK | os.X_OK)


def _cache_dir(source_dir, environ=None, writable=_writable):
    """The folder where Numba caches the kernels of ``source_dir``, as Numba's locators choose it.

    In order: ``NUMBA_CACHE_DIR`` (one sub-folder per source folder); the
    source folder's ``__pycache__`` when it can be written; the user-wide
    cache folder.
    """
    environ = os.environ if environ is None else environ
    root = environ.get("NUMBA_CACHE_DIR", "")
    if root:
        return os.path.join(root, _subpath(source_dir))
    in_tree = os.path.join(source_dir, "__pycache__")
    if writable(in_tree):
        return in_tree
    return os.path.join(_user_cache_root(environ), _subpath(source_dir))


def _first_lines(path):
    """Function name -> the line Numba names its cache after (the first decorator's)."""
    with open(path, "rb") as fh:
        tree = ast.parse(fh.read())
    return {
        node.name: (node.decorator_list[0].lineno if node.decorator_list else node.lineno)
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


def _first_argument(data, kinds, *, to_stop=False):
    """The argument of the first pickle opcode named in ``kinds``, read without unpickling.

    With ``to_stop`` the pickle is read to its end (so that a file is left
    at the start of whatever follows it).
    """
    found = None
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if found is None and opcode.name in kinds:
                found = arg
                if not to_stop:
                    return found
            if opcode.name == "STOP":
                break
    except Exception:  # a truncated or foreign file: treat as no cache
        return None
    return found


def _numba_version():
    try:
        from importlib.metadata import version

        return version("numba")
    except Exception:  # pragma: no cover - numba is a dependency
        return None


def _is_cached(cache_dir, module, function, lines, stamp, numba_version):
    """Whether ``module.function`` has a fresh cache index (this Numba, this source)."""
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"
    if function not in lines:
        return False
    index = os.path.join(cache_dir, f"{module}.{function}-{lines[function]}.{tag}.nbi")
    try:
        with open(index, "rb") as fh:
            strings = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE"}
            version = _first_argument(fh, strings, to_stop=True)
            data = fh.read()
    except OSError:
        return False
    if numba_version is not None and version != numba_version:
        return False
    return _first_argument(data, {"SHORT_BINBYTES", "BINBYTES", "BINBYTES8"}) == stamp


def needs_compilation(*tasks):
    """Whether the next run will compile Numba kernels (their on-disk cache is cold).

    Cheap: it imports no Numba and compiles nothing.  It looks for Numba's
    cache index of each kernel the run calls, where Numba keeps it
    (``NUMBA_CACHE_DIR`` if set, else the kernels' ``__pycache__`` folder, or
    Numba's user-wide cache folder when that cannot be written), and checks
    that the index was written by this Numba version for the current source.
    A fresh index for another dtype or CPU still compiles; that case is
    reported as warm.

    Parameters
    ----------
    *tasks : str
        What will run: a command-line command (``"deconvolve"``, ``"demo"``,
        ``"linseed"``, ``"signature"``, ``"evaluate"``, ``"simulate"``; a
        command counts as cold when any kernel its options can call is) or a
        task (``"robust"``: the Huber fit that ``deconvolve`` uses by default;
        ``"least_squares"``: ``nnls``, ``simplex_lstsq`` and ``deconvolve``
        with ``robust=None``; ``"linseed"``; ``"signature"``).  None: every
        task (True if any of them would compile).

    Returns
    -------
    bool
        True when at least one kernel the run calls has no fresh cache.

    Raises
    ------
    ValueError
        For an unknown task.

    Examples
    --------
    >>> from fastdeconv._jit import needs_compilation
    >>> isinstance(needs_compilation("deconvolve"), bool)
    True
    >>> needs_compilation("evaluate")  # no kernels
    False
    """
    names = []
    for task in tasks or tuple(_TASKS):
        if task in _COMMANDS:
            names.extend(_COMMANDS[task])
        elif task in _TASKS:
            names.append(task)
        else:
            known = sorted(set(_TASKS) | set(_COMMANDS))
            raise ValueError(f"unknown task {task!r}; expected one of {known}")
    if not names or os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return False
    source_dir = _kernels_dir()
    cache_dir = _cache_dir(source_dir)
    numba_version = _numba_version()
    sources = {}

    def source(module):
        if module not in sources:
            path = os.path.join(source_dir, f"{module}.py")
            with open(path, "rb") as fh:
                stamp = hashlib.sha256(fh.read()).digest()
            sources[module] = (_first_lines(path), stamp)
        return sources[module]

    for name in dict.fromkeys(names):
        for group in _TASKS[name]:
            if not any(
                _is_cached(cache_dir, module, function, *source(module), numba_version)
                for module, function in group
            ):
                return True
    return False
