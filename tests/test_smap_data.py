"""Tests of the SMAP + NLDAS-2 grid-cell reader (core.datasets.smap).

Spec: docs/paraformer_vic.md section 2 of the shared workspace. Most tests read the real file
``<data root>/smap_conus/smap_nldas_conus_412.nc`` and skip, with the reason, when it is absent;
expected values are read straight from that file with plain ``netCDF4``/``xarray`` (never through
the reader under test). The missing-file test needs no data.
"""

from __future__ import annotations

import math
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from core.datasets import (
    SMAP_BAD_CELLS,
    SMAP_PERIODS,
    BasinNotFoundError,
    DataFormatError,
    DataRootError,
    SiteNotFoundError,
    attr_list,
    fao56_pet,
    load_smap,
    smap_splits,
)
from core.datasets.smap import SMAP_FILE, grid_index, smap_file

try:
    FILE: Path | None = smap_file()
    _NO_DATA_REASON = ""
except DataRootError:
    FILE = None
    _NO_DATA_REASON = ("SMAP data file smap_conus/smap_nldas_conus_412.nc not found under any data "
                       "root (set HYDROLENS_DATA_ROOT or place ../shared/data beside the "
                       "repository; see core.datasets.smap.SMAP_DOWNLOAD_HELP)")

NEAR_CONSTANT = {"386", "22", "290", "302"}
NO_STATICS = {"57"}
STATICS = ("bulk", "capa", "clay", "sand", "silt", "ndvi")


@pytest.fixture(scope="module")
def raw() -> xr.Dataset:
    """The file as plain xarray reads it (dims cell, time)."""
    if FILE is None:
        pytest.skip(_NO_DATA_REASON)
    with xr.open_dataset(FILE) as f:
        return f.load()


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    if FILE is None:
        pytest.skip(_NO_DATA_REASON)
    return load_smap()


@pytest.fixture(scope="module")
def ds_all() -> xr.Dataset:
    if FILE is None:
        pytest.skip(_NO_DATA_REASON)
    return load_smap(exclude_bad=False)


# ----------------------------------------------------------------------------- layout and values


@pytest.mark.data
def test_layout(ds):
    assert ds["P"].dims == ("site", "time")
    assert ds.sizes["time"] == 1096
    assert str(ds["time"].values[0])[:10] == "2015-04-01"
    assert str(ds["time"].values[-1])[:10] == "2018-03-31"
    assert ds.sizes["site"] == 412 - len(SMAP_BAD_CELLS)
    assert all(isinstance(s, str) for s in ds["site"].values.tolist())
    assert ds["site"].values[0] == "0" and ds["site"].values[-1] == "411"
    for name in list(ds.data_vars) + ["lat", "lon", "row", "col"]:
        assert ds[name].attrs.get("units"), name
        assert ds[name].attrs.get("long_name"), name
    for name in ("prcp", "tair", "swdown", "lwdown", "spfh", "wind_u", "wind_v", "smap_am", "P",
                 "T", "PET"):
        assert ds[name].dims == ("site", "time") and ds[name].dtype == np.float32, name
    for name in STATICS:
        assert ds[name].dims == ("site",), name
    assert ds["P"].attrs["units"] == "mm d-1" and ds["T"].attrs["units"] == "degC"
    assert ds["PET"].attrs["units"] == "mm d-1" and ds["smap_am"].attrs["units"] == "m3 m-3"
    assert attr_list(ds, "static_attributes") == list(STATICS)
    assert ds.attrs["site_kind"] == "grid_cell"
    assert set(attr_list(ds, "excluded_cells")) == NEAR_CONSTANT | NO_STATICS
    for c in NEAR_CONSTANT | NO_STATICS:
        assert f"{c}:" in ds.attrs["excluded_cells_reason"]


@pytest.mark.data
def test_values_equal_the_file(ds, raw):
    if FILE is None:
        pytest.skip(_NO_DATA_REASON)
    # one value straight from netCDF4: prcp of cell 100 on 2016-07-04
    with netCDF4.Dataset(FILE) as nc:
        times = netCDF4.num2date(nc["time"][:], nc["time"].units,
                                 only_use_cftime_datetimes=False)
        t = [d.strftime("%Y-%m-%d") for d in times].index("2016-07-04")
        cell = list(nc["cell"][:]).index(100)
        prcp = float(nc["prcp"][cell, t])
        tair = float(nc["tair"][cell, t])
    got = ds.sel(site="100", time="2016-07-04")
    assert float(got["P"]) == prcp == float(got["prcp"])
    assert float(got["T"]) == pytest.approx(tair - 273.15, abs=1e-4)
    # whole arrays against plain xarray
    sel = raw.sel(cell=[int(s) for s in ds["site"].values])
    np.testing.assert_array_equal(ds["P"].values, sel["prcp"].values)
    np.testing.assert_allclose(ds["T"].values, sel["tair"].values - 273.15, atol=1e-4)
    np.testing.assert_array_equal(ds["smap_am"].values, sel["smap_am"].values)  # NaN in place
    for name in STATICS:
        np.testing.assert_array_equal(ds[name].values, sel[name].values)
    np.testing.assert_array_equal(ds["lat"].values, sel["lat"].values)
    assert ds["smap_am"].sel(time=slice("2017-04-01", None)).isnull().all()
    frac = float(ds["smap_am"].sel(time=slice(*SMAP_PERIODS["smap"])).notnull().mean())
    assert 0.35 < frac < 0.5  # the doc's "about 42 % of days"


@pytest.mark.data
def test_periods(ds):
    assert SMAP_PERIODS["train"] == ("2015-04-01", "2016-03-31")
    assert SMAP_PERIODS["test"] == ("2016-04-01", "2017-03-31")
    assert SMAP_PERIODS["full"] == ("2015-04-01", "2018-03-31")
    assert ds.sel(time=slice(*SMAP_PERIODS["full"])).sizes["time"] == ds.sizes["time"]
    for p in ("train", "test"):
        part = ds["smap_am"].sel(time=slice(*SMAP_PERIODS[p]))
        assert part.sizes["time"] == (366 if p == "train" else 365)
        assert part.notnull().any("time").all()  # every usable cell has SMAP in both years


# ----------------------------------------------------------------------------- bad cells


@pytest.mark.data
def test_bad_cells_are_facts_of_the_file(raw):
    ids = [str(int(c)) for c in raw["cell"].values]
    sd = np.nanstd(raw["smap_am"].values.astype(np.float64), axis=1)  # ddof 0, over retrievals
    near_constant = {c for c, s in zip(ids, sd) if s < 0.01}
    assert near_constant == NEAR_CONSTANT  # exactly these four, no others
    no_statics = {c for i, c in enumerate(ids)
                  if any(np.isnan(raw[v].values[i]) for v in STATICS)}
    assert no_statics == NO_STATICS
    assert set(SMAP_BAD_CELLS) == NEAR_CONSTANT | NO_STATICS
    # cell 57's forcing is broken too: mean tair ~ -31 degC at 30.6 N
    assert float(raw["tair"].sel(cell=57).mean()) < 250.0


@pytest.mark.data
def test_exclusion_by_name(ds, ds_all):
    assert ds_all.sizes["site"] == 412
    assert attr_list(ds_all, "excluded_cells") == []
    assert set(ds_all["site"].values) - set(ds["site"].values) == set(SMAP_BAD_CELLS)
    with pytest.raises(ValueError, match=r"'57'.*known bad cell.*exclude_bad=False"):
        load_smap(cells=["57"])
    one = load_smap(cells=[57], exclude_bad=False)
    assert one["site"].values.tolist() == ["57"] and np.isnan(float(one["bulk"][0]))


@pytest.mark.data
def test_cell_subset_keeps_order_and_grid_index(ds):
    sub = load_smap(cells=[300, "5", "0"])
    assert sub["site"].values.tolist() == ["300", "5", "0"]
    for name in ("row", "col", "lat", "P", "PET"):
        np.testing.assert_array_equal(sub[name].values, ds[name].sel(site=["300", "5", "0"]).values)


@pytest.mark.data
def test_unknown_cell_error(ds):
    with pytest.raises(SiteNotFoundError) as err:
        load_smap(cells=["0", "4120"])
    msg = str(err.value)
    assert "'4120'" in msg and str(FILE) in msg and "Grid cell" in msg
    assert isinstance(err.value, KeyError) and isinstance(err.value, BasinNotFoundError)
    with pytest.raises(SiteNotFoundError, match="'abc'"):
        load_smap(cells=["abc"])


def test_missing_file_error(tmp_path):
    with pytest.raises(DataRootError) as err:  # a FileNotFoundError
        load_smap(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / SMAP_FILE) in msg
    for needle in ("hydroDL", "CONUSv4f1", "example/data/CONUSv4f1", "NLDAS-2", "SPL3SMP_E",
                   "HYDROLENS_DATA_ROOT"):
        assert needle in msg, needle
    assert isinstance(err.value, FileNotFoundError)


def _write_copy(raw: xr.Dataset, root: Path, drop: str | None = None,
                units: dict | None = None) -> Path:
    small = raw.isel(cell=slice(0, 6), time=slice(0, 10))
    if drop:
        small = small.drop_vars(drop)
    for name, u in (units or {}).items():
        small[name].attrs["units"] = u
    path = root / SMAP_FILE
    path.parent.mkdir(parents=True)
    small.to_netcdf(path)
    return path


@pytest.mark.data
def test_missing_variable_error(raw, tmp_path):
    path = _write_copy(raw, tmp_path, drop="spfh")
    with pytest.raises(DataFormatError) as err:
        load_smap(tmp_path)
    assert str(path) in str(err.value) and "'spfh'" in str(err.value)


@pytest.mark.data
def test_wrong_units_error_and_small_copy_loads(raw, tmp_path):
    good = tmp_path / "good"
    _write_copy(raw, good)
    small = load_smap(good)  # none of cells 0..5 is bad
    assert small.sizes == {"site": 6, "time": 10}
    bad = tmp_path / "bad"
    path = _write_copy(raw, bad, units={"tair": "degC"})
    with pytest.raises(DataFormatError, match="'tair' has units 'degC'") as err:
        load_smap(bad)
    assert str(path) in str(err.value)


# ----------------------------------------------------------------------------- grid and splits


@pytest.mark.data
def test_grid_index_against_lat_lon(ds_all, raw):
    lat, lon = raw["lat"].values, raw["lon"].values
    rows_desc = np.unique(lat)[::-1]  # exact ties: one latitude per grid row
    assert len(rows_desc) == 18
    for cell in (0, 57, 200, 386, 411):
        got = ds_all.sel(site=str(cell))
        assert int(got["row"]) == int(np.flatnonzero(rows_desc == lat[cell])[0])
        assert int(got["col"]) == round((lon[cell] + 123.4232) / 1.49379)
    assert (int(ds_all["row"].sel(site="0")), int(ds_all["col"].sel(site="0"))) == (0, 0)
    assert (int(ds_all["row"].sel(site="386")), int(ds_all["col"].sel(site="386"))) == (11, 29)
    r = ds_all["row"].values
    assert sorted(set(r.tolist())) == list(range(18))  # dense rank: consecutive rows
    assert r[np.argmax(lat)] == 0 and r[np.argmin(lat)] == 17
    # same latitude <=> same row
    assert len({(float(a), int(b)) for a, b in zip(lat, r)}) == 18
    # col on the grid, (row, col) unique
    x = (lon + 123.4232) / 1.49379
    assert np.abs(x - np.round(x)).max() < 0.01
    assert len(set(zip(r.tolist(), ds_all["col"].values.tolist()))) == 412


def test_grid_index_ties_are_dense():
    row, col = grid_index([40.0, 41.5, 40.0, 41.5, 38.0], [-123.4232, -121.92941, -121.92941,
                                                             -123.4232, -120.43562])
    assert row.tolist() == [1, 0, 1, 0, 2]
    assert col.tolist() == [0, 1, 1, 0, 2]
    with pytest.raises(DataFormatError, match="off the grid"):
        grid_index([40.0], [-122.7])
    with pytest.raises(DataFormatError, match="share grid row/col"):
        grid_index([40.0, 40.0], [-123.4232, -123.42])


@pytest.mark.data
def test_splits(ds, ds_all):
    sp = smap_splits(ds)
    sizes = {k: len(v) for k, v in sp.items()}
    assert sizes == {"ALL": 407, "SPARSE": 104, "NG": 102, "DENSE": 305, "SCALE_29": 29,
                     "SCALE_104": 104, "SCALE_206": 205, "SCALE_305": 305, "VAL": 100}
    s = {k: set(v) for k, v in sp.items()}
    assert s["SCALE_29"] < s["SCALE_104"] < s["SCALE_206"] < s["SCALE_305"]
    assert s["SCALE_104"] == s["SPARSE"] and s["SCALE_305"] == s["DENSE"]
    for name in ("SPARSE", "DENSE", "SCALE_29", "SCALE_104", "SCALE_206", "SCALE_305"):
        assert not (s["NG"] & s[name]), name
    assert s["DENSE"] | s["NG"] == s["ALL"] == set(ds["site"].values)
    bad = set(SMAP_BAD_CELLS)
    assert all(not (v & bad) for v in s.values())
    r = dict(zip(ds["site"].values.tolist(), ds["row"].values.tolist()))
    c = dict(zip(ds["site"].values.tolist(), ds["col"].values.tolist()))
    assert all(r[x] % 2 == 0 and c[x] % 2 == 0 for x in s["SPARSE"])
    assert all(r[x] % 2 == 0 and c[x] % 2 == 1 for x in s["NG"])
    assert all(r[x] % 4 == 0 and c[x] % 4 == 0 for x in s["SCALE_29"])
    assert all(c[x] % 2 == 0 for x in s["SCALE_206"])
    # VAL validates runs trained on SPARSE or smaller: none of their cells, no test cell
    assert all(r[x] % 2 == 1 and c[x] % 2 == 1 for x in s["VAL"])
    assert not s["VAL"] & (s["SCALE_206"] | s["NG"]) and s["VAL"] <= s["DENSE"]
    # the bad cells are dropped from the sets even when the dataset holds them
    assert smap_splits(ds_all) == sp
    assert len(smap_splits(ds_all, exclude_bad=False)["ALL"]) == 412


# ----------------------------------------------------------------------------- PET


@pytest.mark.data
def test_pet_plausible(ds):
    pet = ds["PET"]
    assert pet.notnull().all() and float(pet.min()) >= 0.0 and float(pet.max()) < 20.0
    annual = pet.sel(time=slice(*SMAP_PERIODS["full"])).mean("time")
    assert float(annual.min()) >= 1.0 and float(annual.max()) <= 6.0
    north = ds["row"] == 0
    assert int(north.sum()) >= 10
    season = pet.where(north, drop=True).groupby("time.season").mean()
    assert (season.sel(season="JJA") > season.sel(season="DJF") + 1.0).all()


def _fao56_by_hand(tair_k, q, rs_w, rl_w, u, v):
    """FAO-56 (Allen et al. 1998) daily ET0 written out from the equations, no pyet."""
    t = tair_k - 273.15
    p = 101.3                                                   # kPa, sea level (eq. 7, z = 0)
    gamma = 0.665e-3 * p                                        # eq. 8
    e0 = 0.6108 * math.exp(17.27 * t / (t + 237.3))             # eq. 11, es = e°(Tmean)
    delta = 4098.0 * e0 / (t + 237.3) ** 2                      # eq. 13
    ea = min(q * p / (0.622 + 0.378 * q), e0)                   # e from specific humidity
    u2 = math.hypot(u, v) * 4.87 / math.log(67.8 * 10.0 - 5.42)  # eq. 47, z = 10 m
    rn = 0.0864 * ((1 - 0.23) * rs_w + rl_w) - 4.903e-9 * tair_k ** 4  # MJ m-2 d-1
    g = 0.0                                                     # eq. 42
    num = 0.408 * delta * (rn - g) + gamma * 900.0 / (t + 273.0) * u2 * (e0 - ea)
    return max(num / (delta + gamma * (1 + 0.34 * u2)), 0.0)    # eq. 6


@pytest.mark.data
@pytest.mark.parametrize("cell,day", [("200", "2015-07-15"), ("0", "2016-01-10"),
                                      ("231", "2016-04-20")])
def test_pet_hand_computed_fao56(raw, ds, cell, day):
    x = raw.sel(cell=int(cell), time=day)
    args = [float(x[v]) for v in ("tair", "spfh", "swdown", "lwdown", "wind_u", "wind_v")]
    expected = _fao56_by_hand(*args)
    got = float(ds["PET"].sel(site=cell, time=day))
    assert got == pytest.approx(expected, rel=0.02, abs=0.02)
    if cell == "200":  # a hot July day in South Dakota: a high, clearly positive value
        assert 5.0 < expected < 8.0


def test_fao56_pet_numpy_and_clip():
    # numbers of cell 200 on 2015-07-15 plus a cold, dark day whose Rn < 0 (clipped to 0)
    tair = np.array([302.2527, 255.0])
    got = fao56_pet(tair, np.array([0.0099939, 0.0008]), np.array([284.7187, 20.0]),
                    np.array([386.6289, 180.0]), np.array([-1.3176, 0.5]), np.array([2.8126, 0.5]))
    assert isinstance(got, np.ndarray) and got.shape == (2,)
    assert got[0] == pytest.approx(_fao56_by_hand(302.2527, 0.0099939, 284.7187, 386.6289,
                                                  -1.3176, 2.8126), rel=1e-4)
    assert got[1] == 0.0
