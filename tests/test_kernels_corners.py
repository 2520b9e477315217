"""Tests of the simplex-corner kernels: SPA and the hinge-penalised volume objective."""

from __future__ import annotations

import numpy as np
import pytest

from fastdeconv.kernels.corners import simplex_objective, successive_projection
from fastdeconv.reference_free import _find_corners


def _simplex_points(k, n, seed, noise=0.0, pure=True):
    rng = np.random.default_rng(seed)
    corners = rng.normal(size=(k - 1, k)) * 3.0
    A = rng.dirichlet(np.full(k, 0.7), size=n)
    if pure:
        A[:k] = np.eye(k)
    Y = A @ corners.T + noise * rng.normal(size=(n, k - 1))
    return corners, Y, A


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_spa_finds_the_planted_vertices(k):
    corners, Y, _ = _simplex_points(k, 300, seed=k)
    Ya = np.column_stack([Y, np.ones(len(Y))])
    index, residual = successive_projection(Ya, k)
    assert sorted(index.tolist()) == list(range(k))
    assert np.all(residual > 0)


def test_spa_is_deterministic_and_handles_rank_deficiency():
    P = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    index, residual = successive_projection(P, 3)
    assert index[0] == 0 and index[1] == 2  # ties go to the lowest index
    assert residual[2] == pytest.approx(0.0, abs=1e-12)


def _numeric_gradient(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("k", [3, 4])
def test_objective_gradient_matches_finite_differences(k):
    corners, Y, _ = _simplex_points(k, 200, seed=1, noise=0.3)
    Ya = np.column_stack([Y, np.ones(len(Y))])
    x = (corners * 0.8).ravel()  # shrunken: many points outside, the hinge is active
    value, grad, n_out = simplex_objective(x, Ya, 50.0)
    assert n_out > 0
    num = _numeric_gradient(lambda c: simplex_objective(c, Ya, 50.0)[0], x)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-6 * np.abs(num).max())


def test_objective_value_is_log_volume_plus_hinge():
    # unit simplex in 2-D, the corners (0,0), (1,0), (0,1): |det E| = 1
    corners = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    inside = np.array([[0.2, 0.3, 1.0]])
    outside = np.array([[1.0, 1.0, 1.0]])  # barycentric (-1, 1, 1)
    assert simplex_objective(corners.ravel(), inside, 5.0)[0] == pytest.approx(0.0, abs=1e-12)
    value, _, n_out = simplex_objective(corners.ravel(), outside, 5.0)
    assert value == pytest.approx(5.0)
    assert n_out == 1
    flat = np.zeros(6)  # degenerate simplex
    assert simplex_objective(flat, inside, 5.0)[0] == np.inf


def test_refinement_recovers_a_simplex_without_pure_points():
    """No gene sits on a corner: SPA alone underestimates, the volume refinement recovers it."""
    k = 3
    corners, Y, A = _simplex_points(k, 3000, seed=4, pure=False)
    Ya = np.column_stack([Y, np.ones(len(Y))])
    spa, _ = successive_projection(Ya, k)
    found, _, info, _ = _find_corners(Y, k, 1000.0, 3, np.random.default_rng(0))
    scale = np.abs(corners).max()

    def error(est):
        # match corners one-to-one by distance
        from scipy.optimize import linear_sum_assignment

        D = np.linalg.norm(est[:, :, None] - corners[:, None, :], axis=0)
        r, c = linear_sum_assignment(D)
        return D[r, c].max() / scale

    assert error(found) < 0.05
    assert error(found) < error(Y[spa].T)
    assert info["n_outside"] < 0.02 * len(Y)  # only marginally outside at the optimum


def test_refinement_is_deterministic_for_a_seed():
    _, Y, _ = _simplex_points(4, 500, seed=9, noise=0.05, pure=False)
    a = _find_corners(Y, 4, 1000.0, 4, np.random.default_rng(3))[0]
    b = _find_corners(Y, 4, 1000.0, 4, np.random.default_rng(3))[0]
    np.testing.assert_array_equal(a, b)


def test_degenerate_data_raise_a_clear_error():
    Y = np.zeros((50, 2))
    Y[:, 0] = np.linspace(0, 1, 50)  # all on a line: no 3-corner simplex
    with pytest.raises(ValueError, match="do not span"):
        _find_corners(Y, 3, 1000.0, 1, np.random.default_rng(0))
