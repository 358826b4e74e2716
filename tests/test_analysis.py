"""The analysis views (explorer/analysis.py): pure computations on hand-made metrics, and the
signature / comparison views over a store of small fake evaluated runs (no training, no data
root, no browser)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from bokeh.models import ColumnDataSource

from explorer.analysis import (
    CDF_NAME,
    DNSE_MAP_NAME,
    CompareView,
    SignatureView,
    cdf_stairs,
    comparison_table,
    delta_columns,
    delta_nse,
    nse_cdf,
    signature_columns,
)

# -- hand-made metrics ------------------------------------------------------------------------

SITES = {  # id: (name, lat, lon)
    "01000001": ("Alpha Creek", 44.6, -67.9),
    "01000002": ("Beta River", 45.2, -69.3),
    "01000003": ("Gamma Brook", 40.1, -105.2),
    "01000004": ("Delta Run", 35.0, -90.0),
    "01000005": ("Epsilon Fork", 38.5, -121.5),
}


def metrics_frame(nse: dict, bfi=True, seed=0) -> pd.DataFrame:
    """A metrics.csv-like table for the sites of ``nse`` (id -> NSE)."""
    rng = np.random.default_rng(seed)
    ids = list(nse)
    n = len(ids)
    df = pd.DataFrame(index=pd.Index(ids, name="site"))
    df["NSE"] = [nse[b] for b in ids]
    df["KGE"] = np.asarray(df["NSE"]) * 0.9 + 0.05
    df["BFI_camels"] = rng.uniform(0.2, 0.8, n)
    df["BFI_sim"] = df["BFI_camels"] + rng.normal(0, 0.05, n) if bfi else np.nan
    df["P_minus_Q"] = rng.uniform(0.5, 2.5, n)
    df["ET_mean"] = df["P_minus_Q"] * 0.9 + rng.normal(0, 0.1, n) if bfi else np.nan
    df["gauge_name"] = [SITES[b][0] for b in ids]
    df["gauge_lat"] = [SITES[b][1] for b in ids]
    df["gauge_lon"] = [SITES[b][2] for b in ids]
    return df


M1 = metrics_frame({"01000001": 0.2, "01000002": 0.5, "01000003": 0.9, "01000004": -2.0}, seed=1)
M2 = metrics_frame({"01000002": 0.7, "01000003": 0.8, "01000004": 0.1, "01000005": 0.6}, seed=2)
LSTM = metrics_frame({"01000001": 0.4, "01000002": 0.6, "01000003": 0.3}, bfi=False, seed=3)


def test_nse_cdf_hand_example():
    x, y = nse_cdf([0.9, 0.2, 0.5])
    np.testing.assert_allclose(x, [0.2, 0.5, 0.9])
    np.testing.assert_allclose(y, [1 / 3, 2 / 3, 1.0])


def test_nse_cdf_drops_nan_and_clips_to_minus_one_one():
    x, y = nse_cdf([-3.0, np.nan, 0.5, 1.5])
    np.testing.assert_allclose(x, [-1.0, 0.5, 1.0])
    np.testing.assert_allclose(y, [1 / 3, 2 / 3, 1.0])
    x, y = nse_cdf([np.nan])
    assert x.size == 0 and y.size == 0


def test_cdf_stairs_is_a_staircase_from_zero_to_one():
    xs, ys = cdf_stairs(np.array([0.2, 0.5]), np.array([0.5, 1.0]))
    np.testing.assert_allclose(xs, [0.2, 0.2, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(ys, [0.0, 0.5, 0.5, 1.0, 1.0])


def test_comparison_table_medians_and_pearson_against_numpy():
    info = type("Info", (), {})
    runs = []
    for rid, variant in (("a", "delta_n"), ("c", "lstm")):
        i = info()
        i.run_id, i.variant = rid, variant
        runs.append(i)
    t = comparison_table({"a": M1, "b": M2, "c": LSTM}, runs)
    assert list(t["run"]) == ["a", "b", "c"]
    assert list(t["variant"]) == ["delta_n", "?", "lstm"]
    assert list(t["n_sites"]) == [4, 4, 3]
    assert t["median_NSE"][0] == pytest.approx(np.median([0.2, 0.5, 0.9, -2.0]))
    assert t["median_NSE"][1] == pytest.approx(np.median([0.7, 0.8, 0.1, 0.6]))
    assert t["median_KGE"][0] == pytest.approx(np.median(M1["KGE"]))
    assert t["BFI_r"][0] == pytest.approx(np.corrcoef(M1["BFI_sim"], M1["BFI_camels"])[0, 1])
    assert t["ET_r"][1] == pytest.approx(np.corrcoef(M2["ET_mean"], M2["P_minus_Q"])[0, 1])
    assert np.isnan(t["BFI_r"][2]) and np.isnan(t["ET_r"][2])  # no BFI/ET outputs (LSTM)
    assert comparison_table({}).empty


def test_delta_nse_on_common_sites_only():
    d = delta_nse(M1, M2)
    assert list(d.index) == ["01000002", "01000003", "01000004"]
    np.testing.assert_allclose(d.to_numpy(), [0.7 - 0.5, 0.8 - 0.9, 0.1 - (-2.0)])
    cols = delta_columns(M1, M2)
    assert cols["site"] == list(d.index)
    assert cols["gauge_name"] == ["Beta River", "Gamma Brook", "Delta Run"]
    np.testing.assert_allclose(cols["dNSE"], d.to_numpy())
    assert np.isfinite(cols["x"]).all() and np.isfinite(cols["y"]).all()
    assert delta_nse(M1, M1.iloc[:0]).empty


def test_signature_columns_follow_the_given_rows():
    ids = ["01000005", "01000003", "01000001"]  # 01000005 is not in M1
    cols = signature_columns(ids, M1)
    assert cols["site"] == ids
    assert np.isnan(cols["BFI_sim"][0]) and cols["gauge_name"][0] == ""
    assert cols["BFI_sim"][1] == pytest.approx(M1.loc["01000003", "BFI_sim"])
    assert cols["P_minus_Q"][2] == pytest.approx(M1.loc["01000001", "P_minus_Q"])


# -- a store of fake evaluated runs -----------------------------------------------------------


def make_run(store, name: str, variant: str, metrics: pd.DataFrame):
    """An evaluated run with the files the explorer reads: status.json, config.yaml,
    metrics.csv and a small outputs.nc (Q_sim, Q_obs over 10 days)."""
    ids = [str(b) for b in metrics.index]
    run = store.create(name)
    run.write_config({"name": name, "model": {"variant": variant}, "data": {"basins": ids},
                      "train": {"epochs": 1}})
    metrics.to_csv(run.metrics_path, index_label="site")
    time = pd.date_range("2000-01-01", periods=10)
    q = np.ones((len(ids), len(time)), dtype="float32")
    ds = xr.Dataset({"Q_sim": (("site", "time"), q, {"units": "mm/d"}),
                     "Q_obs": (("site", "time"), q, {"units": "mm/d"})},
                    coords={"site": ids, "time": time}, attrs={"site_kind": "basin"})
    ds.to_netcdf(run.outputs_path)
    run.update_status(state="done", epoch=1, epochs=1, n_sites=len(ids),
                      median_nse=float(np.nanmedian(metrics["NSE"])),
                      median_kge=float(np.nanmedian(metrics["KGE"])))
    return run.run_id


@pytest.fixture
def store_state(tmp_path):
    """An AppState over a store with three evaluated runs (a, b: HBV-like; c: LSTM-like) and
    no data root (the sites are the runs' own)."""
    from core.runs import RunStore
    from explorer.state import AppState

    store = RunStore(tmp_path / "runs")
    ids = {"a": make_run(store, "a", "delta_n", M1), "b": make_run(store, "b", "delta_n", M2),
           "c": make_run(store, "c", "lstm", LSTM)}
    state = AppState(store=store, data_root=str(tmp_path / "no-data-root"))
    return state, ids


def test_compare_view_draws_cdfs_table_and_delta_map(store_state):
    state, ids = store_state
    view = CompareView(state)
    assert set(view.picker.options.values()) == set(ids.values())
    assert view.picker.value == [] and "two or more" in view.hint.object.lower()
    assert not view._map_box.visible and view.dnse_figure is None

    a, b = ids["a"], ids["b"]
    state.compare = [b, a]
    assert view.picker.value == [b, a] and list(view.picker.options.values())[:2] == [b, a]
    state.compare = [a, b]
    assert view.picker.value == [a, b]
    assert list(view.picker.options.values())[:2] == [a, b]  # chips show in pick order
    assert view.cdf_figure.name == CDF_NAME
    cdf = [r for r in view.cdf_figure.renderers if (r.name or "").startswith("cdf-")]
    assert [r.name for r in cdf] == [f"cdf-{a}", f"cdf-{b}"]
    assert len({r.glyph.line_color for r in cdf}) == 2
    assert len(view._legend.items) == 2 and a in view._legend.items[0].label.value
    # the last step of each CDF reaches 1; clipped at -1
    xs = np.asarray(cdf[0].data_source.data["x"])
    assert xs.min() == -1.0 and cdf[0].data_source.data["y"][-1] == 1.0

    t = view.frame
    assert list(t["run"]) == [a, b] and list(t["variant"]) == ["delta_n", "delta_n"]
    assert t["median_NSE"].tolist() == pytest.approx([np.median(M1["NSE"]), np.median(M2["NSE"])])
    assert "hl-compare-table" in view.table.object and a in view.table.object

    assert view.dnse_figure is not None and view.dnse_figure.name == DNSE_MAP_NAME
    assert view._map_box.visible and not view._map_note.visible
    data = view.dnse_source.data
    expected = delta_nse(M1, M2)
    assert list(data["site"]) == list(expected.index)
    np.testing.assert_allclose(data["dNSE"], expected.to_numpy())
    bar = next(r for r in view.dnse_figure.right if getattr(r, "title", None))
    assert bar.title == "ΔNSE (run2 − run1)"
    assert bar.color_mapper.low == -0.3 and bar.color_mapper.high == 0.3

    # the picker writes the state; one run left: one CDF and the ΔNSE placeholder
    view.picker.value = [b]
    assert state.compare == [b]
    assert [r.name for r in view.cdf_figure.renderers if (r.name or "").startswith("cdf-")] == [f"cdf-{b}"]
    assert not view._map_box.visible and view._map_note.visible
    assert len(view.dnse_source.data["site"]) == 0


def test_compare_view_with_an_lstm_run_and_no_common_sites(store_state):
    state, ids = store_state
    view = CompareView(state)
    state.compare = [ids["c"], ids["a"]]
    t = view.frame
    assert np.isnan(t["BFI_r"][0]) and np.isfinite(t["BFI_r"][1])
    assert list(view.dnse_source.data["site"]) == ["01000001", "01000002", "01000003"]

    solo = metrics_frame({"01000005": 0.3}, seed=5)  # a site no other run has
    rid = make_run(state.store, "solo", "delta_n", solo)
    state.refresh()
    state.compare = [ids["a"], rid]
    assert not view._map_box.visible and "no site in common" in view._map_note.object


# -- signature scatters -----------------------------------------------------------------------


def fake_map_source(ids) -> ColumnDataSource:
    """Stands in for MapView.source: one row per site, replaced wholesale on a run change."""
    return ColumnDataSource({"site": list(ids), "value": np.zeros(len(ids))})


def test_signature_view_follows_the_map_rows_and_metrics(store_state):
    state, ids = store_state
    state.run_id = ids["a"]
    rows = ["01000005", "01000004", "01000003", "01000002", "01000001"]
    src = fake_map_source(rows)
    view = SignatureView(state, src)
    data = view.source.data
    assert list(data["site"]) == rows
    assert np.isnan(data["BFI_sim"][0])  # 01000005 is not in run a
    assert data["BFI_sim"][1] == pytest.approx(M1.loc["01000004", "BFI_sim"])
    r = np.corrcoef(M1["BFI_sim"], M1["BFI_camels"])[0, 1]
    assert f"r = {r:.2f}" in view.bfi_figure.title.text and "n = 4" in view.bfi_figure.title.text
    r = np.corrcoef(M1["ET_mean"], M1["P_minus_Q"])[0, 1]
    assert f"r = {r:.2f}" in view.et_figure.title.text
    assert view._bfi_box.visible and not view._bfi_note.visible

    # the map replaces its data (other rows, other order): the scatters follow at once
    src.data = {"site": rows[::-1][:3], "value": np.zeros(3)}
    assert list(view.source.data["site"]) == rows[::-1][:3]

    # a run without BFI/ET outputs: placeholders, no scatter
    state.run_id = ids["c"]
    assert not view._bfi_box.visible and view._bfi_note.visible
    assert "LSTM" in view._bfi_note.object and not view._et_box.visible
    assert np.isnan(view.source.data["BFI_sim"]).all()


def test_signature_selection_is_linked_to_the_map_both_ways(store_state):
    state, ids = store_state
    state.run_id = ids["a"]
    rows = ["01000004", "01000003", "01000002", "01000001"]
    src = fake_map_source(rows)
    view = SignatureView(state, src)
    view.source.selected.indices = [1, 2]  # a box selection on a scatter
    assert src.selected.indices == [1, 2]
    src.selected.indices = [0]  # a tap on the map
    assert view.source.selected.indices == [0]
    # the browser links the two selections without a round trip
    links = src.selected.js_property_callbacks.get("change:indices", [])
    assert any(cb.args.get("other") is view.source.selected for cb in links)


def test_signature_view_with_the_site_map_sets_the_selection(store_state):
    from explorer.mapview import MapView

    state, ids = store_state
    state.run_id = ids["a"]
    map_view = MapView(state)
    view = SignatureView(state, map_view.source)
    basins = list(map_view.source.data["site"])
    assert list(view.source.data["site"]) == basins
    i, j = basins.index("01000002"), basins.index("01000003")
    view.source.selected.indices = [i, j]
    assert sorted(state.selection) == ["01000002", "01000003"]
    state.selection = ["01000001"]
    assert view.source.selected.indices == [basins.index("01000001")]
    # a run change rebuilds the map's data; the scatters stay aligned with it
    state.run_id = ids["b"]
    basins = list(map_view.source.data["site"])
    assert list(view.source.data["site"]) == basins
    k = basins.index("01000005")
    assert view.source.data["BFI_sim"][k] == pytest.approx(M2.loc["01000005", "BFI_sim"])
