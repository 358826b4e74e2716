"""Moran's I and Fu's Budyko curve (core.evaluation.diagnostics) against hand-computed values
and their known limits."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.diagnostics import fu_evaporative_index, knn_weights, morans_i, morans_test


def test_morans_i_by_hand_on_a_line():
    # four sites on the equator at 0, 1, 3, 6 degrees; nearest neighbours 0->1, 1->0, 3->1, 6->3
    lon, lat, x = [0.0, 1.0, 3.0, 6.0], [0.0] * 4, [1.0, 2.0, 3.0, 4.0]
    w = knn_weights(lat, lon, k=1).full()[0]
    assert w.tolist() == [[0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    # z = (-1.5, -0.5, 0.5, 1.5); Σ w z z = 0.75 + 0.75 - 0.25 + 0.75 = 2; Σ z² = 5
    assert morans_i(x, lat, lon, k=1) == pytest.approx(2.0 / 5.0, rel=1e-12)


def test_morans_i_separates_smooth_random_and_checkerboard_fields():
    r, c = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    lat, lon = 30 + 1.5 * r.ravel(), -110 + 1.5 * c.ravel()
    smooth = (r + c).ravel().astype(float)
    checker = ((r + c) % 2).ravel().astype(float)
    noise = np.random.default_rng(0).normal(size=r.size)
    assert morans_i(smooth, lat, lon) > 0.8
    assert morans_i(checker, lat, lon) < -0.8
    assert abs(morans_i(noise, lat, lon)) < 0.15
    with_nan = smooth.copy()
    with_nan[5] = np.nan  # dropped, not propagated
    assert np.isfinite(morans_i(with_nan, lat, lon))
    with pytest.raises(ValueError, match="constant field"):
        morans_i(np.ones(r.size), lat, lon)
    # the permutation test: a smooth field is significant, noise is not
    sm, nz = morans_test(smooth, lat, lon, permutations=199), morans_test(noise, lat, lon, permutations=199)
    assert sm["p"] == pytest.approx(1 / 200) and nz["p"] > 0.05
    assert sm["EI"] == pytest.approx(-1 / (r.size - 1)) and sm["n"] == r.size
    assert morans_test(noise, lat, lon, permutations=99, seed=3) == morans_test(noise, lat, lon, permutations=99, seed=3)


def test_fu_curve_values_and_limits():
    assert fu_evaporative_index(1.0) == pytest.approx(2.0 - 2.0 ** (1 / 2.6), rel=1e-12)
    phi = np.array([0.0, 0.2, 1.0, 3.0, 50.0])
    e = fu_evaporative_index(phi)
    assert e[0] == 0.0 and e[-1] == pytest.approx(1.0, abs=1e-3)  # energy and water limits
    assert np.all(np.diff(e) > 0) and np.all(e <= np.minimum(phi, 1.0) + 1e-12)  # below both limits
    with pytest.raises(ValueError, match="ω must be > 1"):
        fu_evaporative_index(1.0, omega=1.0)
