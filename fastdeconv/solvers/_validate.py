"""Validation of the solvers' array inputs, done once at the public boundary.

Every public solver calls these on the user's arrays and options; the core
(:mod:`fastdeconv.solvers._core`) trusts what it is given.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TOL = 1e-11


def as_real_array(value, name):
    arr = np.asarray(value)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {arr.dtype}")
    return arr


def check_finite_small(arr, name):
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = ", ".join(str(int(i)) for i in bad)
        raise ValueError(
            f"{name} contains NaN or inf (first at index ({where})); "
            "remove or impute non-finite values before solving"
        )


def validate_signature(A):
    A = as_real_array(A, "A")
    if A.ndim != 2:
        raise ValueError(f"A must be a 2-D (genes x cell types) matrix, got shape {A.shape}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"A is empty (shape {A.shape}); it needs at least one row and one column")
    A = np.ascontiguousarray(A, dtype=np.float64)
    check_finite_small(A, "A")
    return A


def validate_rhs(B, n, name="B", what="genes"):
    B = as_real_array(B, name)
    if B.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (one sample) or 2-D ({what} x samples), got shape {B.shape}")
    if B.shape[0] != n:
        raise ValueError(
            f"{name} has {B.shape[0]} rows but A has {n}: the rows of both must be the same {what}, in the same order"
        )
    if B.ndim == 2 and B.shape[1] == 0:
        raise ValueError(f"{name} has no samples (shape {B.shape})")
    return B


def validate_weights(weights, n):
    if weights is None:
        return None
    w = as_real_array(weights, "weights").astype(np.float64, copy=False)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), one per gene (row of A), got {w.shape}")
    check_finite_small(w, "weights")
    if (w < 0).any():
        raise ValueError(f"weights must be non-negative; weights[{int(np.argmin(w))}] = {w.min()}")
    if not (w > 0).any():
        raise ValueError("all weights are zero: at least one gene must carry weight")
    return w


def validate_options(max_iter, tol):
    if max_iter is None:
        max_iter = -1
    elif isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer or None, got {max_iter!r}")
    if tol is None:
        tol = DEFAULT_TOL
    elif not (isinstance(tol, (float, int, np.floating)) and 0 <= tol < 1):
        raise ValueError(f"tol must be a number in [0, 1), got {tol!r}")
    return int(max_iter), float(tol)



def validate_loss(loss, huber_c, max_reweight, reweight_tol):
    if loss in (None, "squared"):
        return None
    if loss != "huber":
        raise ValueError(f"loss must be 'squared' or 'huber', got {loss!r}")
    if not (isinstance(huber_c, (int, float, np.floating)) and np.isfinite(huber_c) and huber_c > 0):
        raise ValueError(f"huber_c must be a positive number (1.345 is usual), got {huber_c!r}")
    if isinstance(max_reweight, bool) or not isinstance(max_reweight, (int, np.integer)) or max_reweight < 0:
        raise ValueError(f"max_reweight must be a non-negative integer, got {max_reweight!r}")
    if not (isinstance(reweight_tol, (int, float, np.floating)) and 0 <= reweight_tol < 1):
        raise ValueError(f"reweight_tol must be a number in [0, 1), got {reweight_tol!r}")
    return (float(huber_c), int(max_reweight), float(reweight_tol))



def validate_constraint(constraint):
    if constraint not in ("eq", "le"):
        raise ValueError(
            f"constraint must be 'eq' (sum(x) == 1) or 'le' (sum(x) <= 1), got {constraint!r}"
        )
    return constraint == "le"



def validate_gram(AtA, AtB, btb):
    AtA = as_real_array(AtA, "AtA")
    if AtA.ndim != 2 or AtA.shape[0] != AtA.shape[1] or AtA.shape[0] == 0:
        raise ValueError(f"AtA must be a non-empty square (k x k) matrix, got shape {AtA.shape}")
    AtA = np.ascontiguousarray(AtA, dtype=np.float64)
    check_finite_small(AtA, "AtA")
    scale = np.abs(AtA).max()
    if np.abs(AtA - AtA.T).max() > 1e-10 * max(scale, np.finfo(float).tiny):
        raise ValueError("AtA is not symmetric: pass the Gram matrix A'A (or A'WA)")
    if (np.diag(AtA) < 0).any():
        raise ValueError("AtA has negative diagonal entries: it is not a Gram matrix A'A")
    AtB = validate_rhs(AtB, AtA.shape[0], "AtB", "cell types")
    AtB2 = AtB[:, None] if AtB.ndim == 1 else AtB
    if btb is not None:
        btb = as_real_array(btb, "btb").astype(np.float64, copy=False).reshape(-1)
        if btb.shape != (AtB2.shape[1],):
            raise ValueError(f"btb must hold one value b'b per sample ({AtB2.shape[1]}), got shape {btb.shape}")
        check_finite_small(btb, "btb")
    return AtA, AtB, AtB2, btb
