"""Metrics against hand-computed values."""

import math

import numpy as np
import pytest

from core.evaluation import kge, nse, pcc, rmse


OBS = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
SIM = np.array([1.5, 1.5, 3.5, 3.0, 6.0])


def test_nse_by_hand():
    # Σ(s-o)² = .25+.25+.25+1+1 = 2.75 ; Σ(o-3)² = 4+1+0+1+4 = 10
    assert nse(SIM, OBS) == pytest.approx(1 - 2.75 / 10)
    assert nse(OBS, OBS) == 1.0
    assert nse(np.full(5, 3.0), OBS) == pytest.approx(0.0)


def test_kge_by_hand():
    ms, mo = SIM.mean(), OBS.mean()  # 3.1, 3.0
    ss, so = SIM.std(), OBS.std()
    r = np.corrcoef(SIM, OBS)[0, 1]
    expected = 1 - math.sqrt((r - 1) ** 2 + (ss / so - 1) ** 2 + (ms / mo - 1) ** 2)
    assert kge(SIM, OBS) == pytest.approx(expected)
    # worked numbers: β = 3.1/3 ; α = std(SIM)/√2
    assert ms / mo == pytest.approx(1.0333333)
    assert kge(OBS, OBS) == pytest.approx(1.0)


def test_missing_observations_are_dropped():
    obs = np.array([1.0, np.nan, 3.0, 4.0, 5.0, np.nan])
    sim = np.array([1.5, 99.0, 3.5, 3.0, 6.0, -5.0])
    keep = np.isfinite(obs)
    assert nse(sim, obs) == pytest.approx(nse(sim[keep], obs[keep]))
    assert rmse(sim, obs) == pytest.approx(math.sqrt(np.mean((sim[keep] - obs[keep]) ** 2)))


def test_vectorised_over_basins():
    obs = np.stack([OBS, OBS * 2, np.full(5, np.nan)], axis=1)
    sim = np.stack([SIM, SIM * 2, SIM], axis=1)
    v = nse(sim, obs)
    assert v.shape == (3,)
    assert v[0] == pytest.approx(v[1]) == pytest.approx(0.725)
    assert np.isnan(v[2])  # no observation
    assert pcc(sim, obs)[0] == pytest.approx(np.corrcoef(SIM, OBS)[0, 1])


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="differ in shape"):
        nse(SIM[:3], OBS)
