"""Tests of the data readers in core.datasets.

Two groups:
* pure-logic tests (no data root needed): id padding, unit conversion, parsers and error
  messages on small files written to tmp_path, a synthetic data root (CAMELS attribute tables,
  a forcing and a streamflow file, Caravan netCDF files), basin selection;
* ``@pytest.mark.data`` tests on the real data root (../shared/data or HYDROLENS_DATA_ROOT);
  they skip, with the reason, when it is absent. Expected values were read by hand from the
  files (ncdump/xarray for Caravan, the text files for CAMELS-US).
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest

from core.datasets import (
    FENG2022_ATTRIBUTES,
    MISSING_CATEGORY_CODE,
    BasinNotFoundError,
    DataFormatError,
    DataRootError,
    attr_list,
    categorical_levels,
    cfs_to_mm_per_day,
    list_caravan_basins,
    load_camels_us,
    load_caravan,
    load_dataset,
    pad_gauge_id,
    parse_basins,
    parse_forcing_file,
    parse_streamflow_file,
    read_camels_attributes,
    read_caravan_attributes,
    read_caravan_file,
    read_forcing,
    read_streamflow,
    resolve_data_root,
    select_basins,
    static_attributes,
)
from core.datasets.schema import daily_time_axis, units_match

# ----------------------------------------------------------------------------- data root

try:
    DATA: Path | None = resolve_data_root()
    _NO_DATA_REASON = ""
    if not ((DATA / "caravan").is_dir() and (DATA / "camels_us").is_dir()):
        _NO_DATA_REASON = f"data root {DATA} lacks caravan/ or camels_us/"
        DATA = None
except DataRootError:
    DATA = None
    _NO_DATA_REASON = ("no HydroLens data root (set HYDROLENS_DATA_ROOT or place the data at "
                       "../shared/data); see core.datasets.paths.DOWNLOAD_HELP")

needs_data = [pytest.mark.data, pytest.mark.skipif(DATA is None, reason=_NO_DATA_REASON)]


def data_test(fn):
    for mark in reversed(needs_data):
        fn = mark(fn)
    return fn


# ----------------------------------------------------------------------------- pure logic


def test_pad_gauge_id_variants():
    assert pad_gauge_id(1022500) == "01022500"
    assert pad_gauge_id(np.int64(1022500)) == "01022500"
    assert pad_gauge_id("1022500") == "01022500"
    assert pad_gauge_id(" 01022500 ") == "01022500"
    assert pad_gauge_id("camels_01022500") == "01022500"
    assert pad_gauge_id("14400000") == "14400000"
    for bad in ("abc", "123456789", "0102250x", -5, True, ""):
        with pytest.raises(ValueError):
            pad_gauge_id(bad)


def test_cfs_to_mm_per_day():
    # 337 ft3/s over 573.6 km2: 337 * 0.0283168 * 86400 / 573.6e3 = 1.4374034 mm/d (by hand)
    assert cfs_to_mm_per_day(337.0, 573.6) == pytest.approx(1.4374034, rel=1e-7)
    arr = cfs_to_mm_per_day(np.array([0.0, 337.0, np.nan]), 573.6)
    assert arr[0] == 0.0 and arr[1] == pytest.approx(1.4374034) and np.isnan(arr[2])
    # 1 m3/s over 86.4 km2 is exactly 1 mm/d
    assert cfs_to_mm_per_day(1 / 0.0283168, 86.4) == pytest.approx(1.0)
    for bad_area in (0, -1, np.nan):
        with pytest.raises(ValueError):
            cfs_to_mm_per_day(1.0, bad_area)


def test_units_match():
    assert units_match("mm d-1", "mm d-1")
    assert units_match("mm/day", "mm d-1")
    assert units_match("mm day-1", "mm d-1")
    assert not units_match("m", "mm d-1")
    assert not units_match("m3 s-1", "mm d-1")
    assert units_match("degC", "degC") and units_match("°C", "degC")
    assert not units_match("K", "degC")


def test_attr_list_and_time_axis():
    assert attr_list({"a": "x,y, z"}, "a") == ["x", "y", "z"]
    assert attr_list({"a": ""}, "a") == []
    assert attr_list({"a": ["x", "y"]}, "a") == ["x", "y"]
    assert attr_list({}, "a") == []
    t = daily_time_axis([pd.Timestamp("2000-01-03")], [pd.Timestamp("2000-01-01T12")],
                        start="2000-01-01")
    assert t.dtype == "datetime64[ns]" and len(t) == 1
    t = daily_time_axis([pd.Timestamp("2000-01-03"), pd.Timestamp("1999-12-30")],
                        [pd.Timestamp("2000-01-05"), pd.Timestamp("2000-01-01")])
    assert t[0] == pd.Timestamp("1999-12-30") and t[-1] == pd.Timestamp("2000-01-05")
    assert (np.diff(t.values) == np.timedelta64(1, "D")).all()
    with pytest.raises(ValueError):
        daily_time_axis([], [], start="2001-01-01", end="2000-01-01")


def test_basin_not_found_error_message():
    err = BasinNotFoundError("01022501", "somewhere", ["01022500", "09999999"])
    assert isinstance(err, KeyError)
    msg = str(err)
    assert "01022501" in msg and "somewhere" in msg and "01022500" in msg
    assert not msg.startswith("'")  # not KeyError's quoted repr


# -- CAMELS-US text formats ------------------------------------------------------------

DAYMET_HEADER = "Year Mnth Day Hr dayl(s) prcp(mm/day) srad(W/m2) swe(mm) tmax(C) tmin(C) vp(Pa)"
NLDAS_HEADER = ("Year Mnth Day Hr\tDayl(s)\tPRCP(mm/day)\tSRAD(W/m2)\tSWE(mm)\tTmax(C)\tTmin(C)"
                "\tVp(Pa)")
ROWS = [
    "2000 01 01 12\t31185.97\t0.00\t189.56\t0.00\t-2.36\t-14.36\t202.51",
    "2000 01 02 12\t31302.05\t0.00\t200.48\t0.00\t4.81\t-8.61\t319.42",
    "2000 01 03 12\t31370.88\t5.50\t126.63\t0.00\t9.25\t-1.10\t566.46",
]


def write_forcing(path: Path, header: str = DAYMET_HEADER, rows=ROWS,
                  head=("  44.82", " 133.00", " 587675987")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*head, header, *rows]) + "\n")
    return path


def write_streamflow(path: Path, basin="01022500",
                     values=(("2000", "01", "01", "255.00", "A:e"),
                             ("2000", "01", "02", "-999.00", "M"),
                             ("2000", "01", "03", "337.00", "A"))) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{basin} {y} {m} {d} {q:>8} {f}\n" for y, m, d, q, f in values))
    return path


def test_parse_forcing_file_daymet_and_case_insensitive(tmp_path):
    f = parse_forcing_file(write_forcing(tmp_path / "a_lump_cida_forcing_leap.txt"))
    assert list(f.columns) == ["dayl", "prcp", "srad", "swe", "tmax", "tmin", "vp"]
    assert f.loc["2000-01-03", "prcp"] == 5.5
    assert f.attrs["latitude"] == 44.82 and f.attrs["area_m2"] == 587675987
    assert f.index.dtype == "datetime64[ns]"
    g = parse_forcing_file(write_forcing(tmp_path / "b_lump_nldas_forcing_leap.txt", NLDAS_HEADER))
    pd.testing.assert_frame_equal(f, g, check_like=False)


def test_malformed_forcing_header_raises_naming_file(tmp_path):
    bad = write_forcing(tmp_path / "01022500_lump_cida_forcing_leap.txt",
                        header="Year Mnth Day Hr dayl(s) precip(mm/day) srad(W/m2) swe(mm) "
                               "tmax(C) tmin(C) vp(Pa)")
    with pytest.raises(DataFormatError) as ei:
        parse_forcing_file(bad)
    msg = str(ei.value)
    assert str(bad) in msg and "precip(mm/day)" in msg and "prcp(mm/day)" in msg
    # a file whose 3 numeric header lines are missing
    no_head = write_forcing(tmp_path / "x.txt", head=())
    with pytest.raises(DataFormatError, match="line 1"):
        parse_forcing_file(no_head)
    # wrong unit in the header
    with pytest.raises(DataFormatError, match="tmax"):
        parse_forcing_file(write_forcing(tmp_path / "k.txt",
                                         DAYMET_HEADER.replace("tmax(C)", "tmax(K)")))
    # a short row
    with pytest.raises(DataFormatError, match="fewer"):
        parse_forcing_file(write_forcing(tmp_path / "s.txt", rows=ROWS[:2] + ["2000 01 03 12 1.0"]))
    with pytest.raises(FileNotFoundError, match="nothere"):
        parse_forcing_file(tmp_path / "nothere.txt")


def test_streamflow_missing_becomes_nan_and_converts(tmp_path):
    p = write_streamflow(tmp_path / "01022500_streamflow_qc.txt")
    q = parse_streamflow_file(p, "01022500", area_km2=573.6)
    assert np.isnan(q["Q_cfs"].iloc[1]) and np.isnan(q["Q"].iloc[1])
    assert q["qc_flag"].tolist() == ["A:e", "M", "A"]
    assert q.loc["2000-01-03", "Q"] == pytest.approx(1.4374034)
    with pytest.raises(DataFormatError, match="should be 01547700"):
        parse_streamflow_file(p, "01547700")
    bad = tmp_path / "bad_streamflow_qc.txt"
    bad.write_text("01022500 2000 01 01 255.00\n")
    with pytest.raises(DataFormatError) as ei:
        parse_streamflow_file(bad)
    assert str(bad) in str(ei.value) and "6 whitespace-separated columns" in str(ei.value)


# -- a synthetic data root ----------------------------------------------------------------

FAKE_IDS = ["1022500", "01547700", "14400000"]  # first one unpadded, as an int-like string


def _write_attr(dirpath: Path, part: str, columns: dict[str, list]):
    df = pd.DataFrame({"gauge_id": FAKE_IDS, **columns})
    df.to_csv(dirpath / f"camels_{part}.txt", sep=";", index=False, na_rep="NA")


def make_fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    adir = root / "camels_us" / "camels_attributes_v2.0"
    adir.mkdir(parents=True)
    num = lambda a, b, c: [a, b, c]  # noqa: E731
    _write_attr(adir, "clim", {n: num(1.0, 2.0, 3.0) for n in (
        "p_mean", "pet_mean", "p_seasonality", "frac_snow", "aridity", "high_prec_freq",
        "high_prec_dur", "low_prec_freq", "low_prec_dur")} | {"high_prec_timing": ["son"] * 3})
    _write_attr(adir, "geol", {
        "geol_1st_class": ["Metamorphics", "Acid plutonic rocks", "Metamorphics"],
        "glim_1st_class_frac": num(0.5, 0.6, 0.7),
        "geol_2nd_class": ["Pyroclastics", None, "Acid plutonic rocks"],
        "glim_2nd_class_frac": num(0.1, 0.0, 0.2), "carbonate_rocks_frac": num(0, 0, 0),
        "geol_porostiy": [0.1, None, 0.3], "geol_permeability": num(-14, -15, -13)})
    _write_attr(adir, "hydro", {"q_mean": [1.0, None, 2.0], "runoff_ratio": num(0.5, 0.4, 0.3),
                                "baseflow_index": num(0.5, 0.5, 0.5)})
    _write_attr(adir, "name", {"huc_02": ["01", "02", "17"],
                               "gauge_name": ["A River, Maine", "B Creek", "C River"]})
    _write_attr(adir, "soil", {n: num(1.0, 2.0, 3.0) for n in (
        "soil_depth_pelletier", "soil_depth_statsgo", "soil_porosity", "soil_conductivity",
        "max_water_content", "sand_frac", "silt_frac", "clay_frac")})
    _write_attr(adir, "topo", {"gauge_lat": num(44.6, 41.0, 42.1), "gauge_lon": num(-68, -77, -124),
                               "elev_mean": num(90, 350, 300), "slope_mean": num(17, 43, 60),
                               "area_gages2": num(573.6, 113.54, 702.6)})
    _write_attr(adir, "vege", {n: num(0.1, 0.2, 0.3) for n in (
        "frac_forest", "lai_max", "lai_diff", "gvf_max", "gvf_diff", "dom_land_cover_frac")} | {
        "dom_land_cover": ["    Mixed Forests", "    Croplands", "    Mixed Forests"],
        "root_depth_50": [None, 0.2, 0.4]})
    write_forcing(root / "camels_us/basin_mean_forcing/daymet/01"
                  / "01022500_lump_cida_forcing_leap.txt")
    write_streamflow(root / "camels_us/usgs_streamflow/01/01022500_streamflow_qc.txt")
    # Caravan: two basins with different date ranges
    cdir = root / "caravan/timeseries/netcdf/camels"
    cdir.mkdir(parents=True)
    write_caravan(cdir / "camels_01022500.nc", "2000-01-01", 5)
    write_caravan(cdir / "camels_01547700.nc", "2000-01-03", 5)
    (root / "caravan/attributes/camels").mkdir(parents=True)
    (root / "caravan/attributes/camels/attributes_other_camels.csv").write_text(
        "gauge_id,gauge_name,country,gauge_lat,gauge_lon,area\n"
        'camels_01022500,"A River, Maine",United States of America,44.6,-68,573.6\n'
        "camels_01547700,B Creek,United States of America,41.0,-77,113.54\n")
    return root


CARAVAN_NAMES = ("total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum",
                 "streamflow")


def write_caravan(path: Path, start: str, n: int, units=None, drop=None, offset=0.0) -> Path:
    units = units or {"temperature_2m_mean": "degC"}
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("date", n)
        d = nc.createVariable("date", "i4", ("date",))
        d.units = f"days since {start}"
        d.calendar = "proleptic_gregorian"
        d[:] = np.arange(n)
        for k, name in enumerate(CARAVAN_NAMES):
            if name == drop:
                continue
            v = nc.createVariable(name, "i4", ("date",), fill_value=np.int32(-2147483648))
            v.scale_factor = 0.01
            v.units = units.get(name, "mm d-1")
            vals = np.ma.masked_array(np.arange(n) + 10 * k + offset, mask=False)
            if name == "streamflow" and n > 1:
                vals.mask = np.arange(n) == 1  # second day missing
            v[:] = vals
    return path


def test_fake_attributes_padding_encoding_and_fill(tmp_path):
    root = make_fake_root(tmp_path)
    table = read_camels_attributes(root)
    assert list(table.index) == ["01022500", "01547700", "14400000"]
    assert table.loc["01022500", "dom_land_cover"] == "Mixed Forests"  # stripped
    assert table.loc["01547700", "huc_02"] == "02"
    st = static_attributes(root)
    assert list(st.columns) == list(FENG2022_ATTRIBUTES)
    assert (st.dtypes == np.float32).all() and not st.isna().any().any()
    # sorted stripped levels: Croplands=0, Mixed Forests=1
    assert st["dom_land_cover"].tolist() == [1.0, 0.0, 1.0]
    assert categorical_levels(root)["geol_2nd_class"] == ["Acid plutonic rocks", "Pyroclastics"]
    assert st.loc["01547700", "geol_2nd_class"] == MISSING_CATEGORY_CODE
    # medians over the whole table: root_depth_50 median(0.2, 0.4) = 0.3
    assert st.loc["01022500", "root_depth_50"] == pytest.approx(0.3)
    assert st.loc["01547700", "geol_porostiy"] == pytest.approx(0.2)
    assert set(st.attrs["filled"]) == {"root_depth_50", "geol_porostiy"}
    # codes are stable whatever subset is asked for; fill list follows the subset
    sub = static_attributes(root, [14400000, "1547700"])
    assert list(sub.index) == ["14400000", "01547700"]
    assert sub.loc["01547700", "dom_land_cover"] == 0.0
    assert sub.loc["14400000", "geol_1st_class"] == st.loc["14400000", "geol_1st_class"]
    assert sub.attrs["filled"] == ["geol_porostiy"]
    with pytest.raises(BasinNotFoundError, match="09999999"):
        static_attributes(root, ["09999999"])


def test_fake_attribute_file_missing_column(tmp_path):
    root = make_fake_root(tmp_path)
    p = root / "camels_us/camels_attributes_v2.0/camels_topo.txt"
    df = pd.read_csv(p, sep=";", dtype=str).drop(columns=["area_gages2"])
    df.to_csv(p, sep=",", index=False)  # also the wrong separator
    with pytest.raises(DataFormatError) as ei:
        read_camels_attributes(root)
    assert "camels_topo.txt" in str(ei.value) and "gauge_id" in str(ei.value)


def test_fake_camels_us_series(tmp_path):
    root = make_fake_root(tmp_path)
    f = read_forcing(root, 1022500)
    assert f.loc["2000-01-03", "prcp"] == 5.5
    q = read_streamflow(root, "01022500")  # area_gages2 from the attribute table
    assert q.loc["2000-01-03", "Q"] == pytest.approx(1.4374034)
    ds = load_camels_us(root, ["01022500"])
    assert ds.attrs["source"] == "camels_us/daymet"
    day = ds.sel(site="01022500", time="2000-01-03")
    assert float(day["T"]) == pytest.approx((9.25 - 1.10) / 2)
    assert np.isnan(ds["Q"].sel(site="01022500", time="2000-01-02"))
    assert float(day["PET"]) > 0
    with pytest.raises(BasinNotFoundError, match="09999999"):
        read_forcing(root, "09999999")
    with pytest.raises(FileNotFoundError, match="01547700_lump_cida_forcing_leap.txt"):
        read_forcing(root, "01547700")


def test_fake_caravan_alignment_and_errors(tmp_path):
    root = make_fake_root(tmp_path)
    assert list_caravan_basins(root) == ["01022500", "01547700"]
    meta = read_caravan_attributes(root)
    assert list(meta.index) == ["01022500", "01547700"]
    ds = load_caravan(root, ["1547700", "01022500"], attributes=False)
    assert list(ds.site.values) == ["01547700", "01022500"]
    assert ds.sizes["time"] == 7 and str(ds.time.values[0])[:10] == "2000-01-01"
    for v in ("P", "T", "PET", "Q"):
        assert ds[v].dtype == np.float32 and ds[v].dims == ("site", "time")
    b = ds.sel(site="01547700")
    # values written are day index + 10 * variable index (P=0, T=1, PET=2, Q=3), packed
    # as int32 with scale_factor 0.01 and _FillValue on the second streamflow day
    assert np.isnan(b["P"].values[:2]).all() and b["P"].values[2] == pytest.approx(0.0)
    assert b["P"].values[3] == pytest.approx(1.0) and b["PET"].values[6] == pytest.approx(24.0)
    a = ds.sel(site="01022500")
    assert np.isnan(a["P"].values[5:]).all() and a["T"].values[0] == pytest.approx(10.0)
    assert np.isnan(a["Q"].values[1]) and a["Q"].values[2] == pytest.approx(32.0)
    assert ds["P"].attrs["units"] == "mm d-1" and ds["T"].attrs["units"] == "degC"
    # with CAMELS attributes joined
    full = load_caravan(root, start="2000-01-02", end="2000-01-04")
    assert full.sizes["time"] == 3 and full["huc_02"].values.tolist() == ["01", "02"]
    assert attr_list(full, "static_attributes") == list(FENG2022_ATTRIBUTES)
    with pytest.raises(BasinNotFoundError, match="14400000"):
        load_caravan(root, ["14400000"])
    # wrong units and a missing variable
    bad = write_caravan(tmp_path / "camels_00000001.nc", "2000-01-01", 3,
                        units={"streamflow": "m3 s-1", "temperature_2m_mean": "degC"})
    with pytest.raises(DataFormatError) as ei:
        read_caravan_file(bad)
    assert str(bad) in str(ei.value) and "streamflow" in str(ei.value) and "m3 s-1" in str(ei.value)
    bad2 = write_caravan(tmp_path / "camels_00000002.nc", "2000-01-01", 3, drop="streamflow")
    with pytest.raises(DataFormatError, match="streamflow"):
        read_caravan_file(bad2)


def test_select_basins_logic():
    avail = [f"{h:02d}{i:06d}" for h in range(1, 19) for i in range(10)]
    huc = {b: b[:2] for b in avail}
    sel = select_basins(18, avail, huc)
    assert len(sel) == 18 and len({huc[b] for b in sel}) >= 15
    assert sel == select_basins(18, list(reversed(avail)), huc)  # deterministic
    assert select_basins(["1000003", 1000001], avail) == ["01000003", "01000001"]
    assert select_basins("01000003, 1000001", avail) == ["01000003", "01000001"]
    assert select_basins(None, list(reversed(avail))) == avail
    assert select_basins(len(avail), avail, huc) == sorted(avail)
    with pytest.raises(ValueError):
        select_basins(0, avail)
    with pytest.raises(ValueError):
        select_basins(len(avail) + 1, avail)
    with pytest.raises(BasinNotFoundError, match="01000099"):
        select_basins(["01000099"], avail, where="test list")
    assert parse_basins("50") == 50
    assert parse_basins("all") is None and parse_basins(None) is None
    assert parse_basins("1022500,01547700") == ["01022500", "01547700"]
    assert parse_basins("01022500") == ["01022500"]


def test_missing_data_root_raises(tmp_path):
    with pytest.raises(DataRootError, match="Tried"):
        load_dataset(root=tmp_path / "does-not-exist")


# ----------------------------------------------------------------------------- real data


@data_test
def test_caravan_known_values_01022500():
    # ncdump/xarray of caravan/timeseries/netcdf/camels/camels_01022500.nc, date 2000-01-03
    ds = load_caravan(DATA, ["01022500"], start="2000-01-01", end="2000-01-31")
    day = ds.sel(site="01022500", time="2000-01-03")
    assert float(day["P"]) == pytest.approx(1.15, abs=1e-5)
    assert float(day["Q"]) == pytest.approx(1.40, abs=1e-5)
    assert float(day["T"]) == pytest.approx(4.72, abs=1e-5)
    assert float(day["PET"]) == pytest.approx(7.80, abs=1e-5)
    assert ds.sizes["time"] == 31


@data_test
def test_camels_us_known_values_01022500():
    f = read_forcing(DATA, "01022500", "daymet")
    assert f.loc["2000-01-03", "prcp"] == 5.50  # from the Daymet txt
    assert f.loc["2000-01-03", "tmax"] == 9.25 and f.loc["2000-01-03", "tmin"] == -1.10
    assert f.attrs["latitude"] == 44.82
    q = read_streamflow(DATA, 1022500)
    assert q.attrs["area_km2"] == 573.6  # area_gages2
    assert q.loc["2000-01-03", "Q_cfs"] == 337.00 and q.loc["2000-01-03", "qc_flag"] == "A"
    # 337.00 ft3/s * 0.0283168 * 86400 / (573.6 km2 * 1e3) = 1.4374034 mm/d (by hand)
    assert q.loc["2000-01-03", "Q"] == pytest.approx(1.4374034, rel=1e-6)
    ds = load_camels_us(DATA, ["01022500"], start="2000-01-01", end="2002-12-31")
    day = ds.sel(site="01022500", time="2000-01-03")
    assert float(day["P"]) == pytest.approx(5.5)
    assert float(day["Q"]) == pytest.approx(1.4374034, rel=1e-6)
    assert float(day["T"]) == pytest.approx((9.25 - 1.10) / 2)
    # PET: Hargreaves via pyet with the header latitude in radians
    import pyet

    tmean = (f["tmax"] + f["tmin"]) / 2
    expected = pyet.hargreaves(tmean, f["tmax"], f["tmin"], lat=np.deg2rad(44.82))
    got = ds["PET"].sel(site="01022500").to_series()
    np.testing.assert_allclose(got.values, expected.loc[got.index].values, rtol=1e-5)
    assert 1.0 < float(got.mean()) < 4.0  # mm/d; CAMELS pet_mean is 2.12
    assert ds["PET"].attrs["units"] == "mm d-1" and "pyet" in ds["PET"].attrs["source"]
    for v in ("Tmax", "Tmin", "srad", "swe", "vp", "dayl"):
        assert ds[v].dtype == np.float32 and "units" in ds[v].attrs


@data_test
def test_camels_us_forcing_sources():
    for source in ("maurer_extended", "nldas", "maurer"):
        f = read_forcing(DATA, "01022500", source)
        assert list(f.columns) == ["dayl", "prcp", "srad", "swe", "tmax", "tmin", "vp"]
        assert len(f) == 1096
    # CAMELS v1.2 maurer/nldas files have tmax == tmin: loading warns
    with pytest.warns(UserWarning, match="tmax == tmin"):
        load_camels_us(DATA, ["01022500"], forcing="nldas")


@data_test
def test_static_attributes_real():
    ds = load_dataset(basins=["01022500", "02196000"], start="2000-01-01", end="2000-01-10")
    names = attr_list(ds, "static_attributes")
    assert names == list(FENG2022_ATTRIBUTES) and len(names) == 35
    for n in names:
        assert ds[n].dims == ("site",) and ds[n].dtype == np.float32
        assert not np.isnan(ds[n].values).any(), n
    # 02196000 has root_depth_50 = NA -> median over all 671 basins
    table = read_camels_attributes(DATA)
    med = table["root_depth_50"].median()
    assert float(ds["root_depth_50"].sel(site="02196000")) == pytest.approx(med, rel=1e-6)
    assert "root_depth_50" in attr_list(ds, "filled_attributes")
    for s in ("baseflow_index", "q_mean", "runoff_ratio"):
        assert s in ds and s not in names
    assert float(ds["baseflow_index"].sel(site="01022500")) == pytest.approx(0.554478447930409)
    assert float(ds["area"].sel(site="01022500")) == 573.6
    assert str(ds["huc_02"].sel(site="01022500").values) == "01"
    assert "Narraguagus" in str(ds["gauge_name"].sel(site="01022500").values)
    assert ds.attrs["source"] == "caravan" and ds.attrs["data_root"]


@data_test
def test_categorical_codes_stable():
    levels = categorical_levels(DATA)
    assert levels["dom_land_cover"] == sorted(levels["dom_land_cover"])
    assert all(v == v.strip() for v in levels["dom_land_cover"])
    one = static_attributes(DATA, ["01022500"])
    many = static_attributes(DATA, ["14400000", "01022500", "08013000"])
    for n in ("dom_land_cover", "geol_1st_class", "geol_2nd_class"):
        assert one.loc["01022500", n] == many.loc["01022500", n]
    assert levels["dom_land_cover"][int(one.loc["01022500", "dom_land_cover"])] == "Mixed Forests"
    geol = levels["geol_1st_class"][int(one.loc["01022500", "geol_1st_class"])]
    assert geol == "Acid plutonic rocks"
    full = static_attributes(DATA)
    assert len(full) == 671 and not full.isna().any().any()
    assert (full["geol_2nd_class"] == MISSING_CATEGORY_CODE).sum() == 138


@data_test
def test_unknown_basin_raises():
    with pytest.raises(BasinNotFoundError) as ei:
        load_dataset(basins=["01022501"])
    assert "01022501" in str(ei.value) and "Caravan" in str(ei.value)
    assert "01022500" in str(ei.value)  # close id suggested
    with pytest.raises(BasinNotFoundError, match="01022501"):
        load_dataset(basins=["01022501"], source="camels_us")
    with pytest.raises(BasinNotFoundError, match="99999999"):
        read_forcing(DATA, "99999999")


@data_test
def test_load_dataset_50_basins_spread():
    ds = load_dataset(basins=50, start="2000-01-01", end="2000-12-31")
    assert ds.sizes["site"] == 50 and ds.sizes["time"] == 366
    assert len(set(ds["huc_02"].values.tolist())) >= 10
    assert list(ds.site.values) == list(load_dataset(basins=50, start="2000-01-01",
                                                     end="2000-01-02").site.values)
    assert all(len(b) == 8 and b.isdigit() for b in ds.site.values.tolist())
    assert ds.time.dtype == "datetime64[ns]"
    assert (np.diff(ds.time.values) == np.timedelta64(1, "D")).all()


@data_test
def test_caravan_vs_camels_streamflow_01022500():
    car = load_caravan(DATA, ["01022500"], "2000-01-01", "2002-12-31")["Q"].sel(site="01022500")
    cam = load_camels_us(DATA, ["01022500"], start="2000-01-01", end="2002-12-31")["Q"].sel(
        site="01022500")
    a, b = car.values.astype(float), cam.values.astype(float)
    ok = np.isfinite(a) & np.isfinite(b)
    assert ok.sum() == 1096
    assert np.corrcoef(a[ok], b[ok])[0, 1] > 0.999
    # Same USGS series; Caravan normalises by the forcing-header area (587.68 km2), CAMELS
    # conversion here uses area_gages2 (573.6 km2): means differ by that ratio, 2.4 %.
    ratio = a[ok].mean() / b[ok].mean()
    assert ratio == pytest.approx(573.6 / 587.675987, rel=5e-3)
    assert abs(ratio - 1) < 0.03


@data_test
def test_load_all_caravan_basins():
    """Every Caravan basin loads onto one time axis (speed: benchmarks/bench_data.py)."""
    ds = load_dataset()
    assert ds.sizes["site"] == 432 and ds.sizes["time"] == 10865
    assert str(ds.time.values[0])[:10] == "1981-01-01"
    assert str(ds.time.values[-1])[:10] == "2010-09-30"
    for v in ("P", "T", "PET", "Q"):
        assert ds[v].dtype == np.float32 and {"units", "long_name", "source"} <= set(ds[v].attrs)
    assert not ds["P"].isnull().any()
    assert len(read_caravan_attributes(DATA)) == 432


def test_a_new_source_is_one_registered_reader():
    """The loader asks the reader registry (core.datasets.registry) and never names a source:
    a reader registered by one module is loadable, listed, described and tabled at once."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    from core.datasets import loader
    from core.datasets.registry import READERS, SourceReader, canonical_source, reader_for, register

    def load(root, request, variant, start, end):
        ids = ["a1", "a2"] if request is None else list(request)
        t = pd.date_range("2020-01-01", periods=3)
        return xr.Dataset({"P": (("site", "time"), np.ones((len(ids), 3), np.float32))},
                          coords={"site": ids, "time": t}, attrs={"source": "toy"})

    toy = SourceReader("toy", "grid_cell", sites=lambda root, v: ["a1", "a2"], load=load,
                       site_table=lambda root, v: pd.DataFrame(index=pd.Index(["a1", "a2"], name="site")),
                       source_file=lambda ds, site, var: f"toy.nc (cell {site}, {var})")
    register(toy)
    try:
        assert loader.site_kind_of("toy") == "grid_cell"
        ds = loader.load_dataset(None, ["a2"], source="toy")
        assert list(ds.site.values) == ["a2"]
        assert loader.source_file(ds, "a2", "P") == "toy.nc (cell a2, P)"
        assert list(loader.site_table(None, "toy").index) == ["a1", "a2"]
    finally:
        READERS.pop("toy")
    assert canonical_source("camels_us") == "camels_us/daymet" and reader_for("CARAVAN")[0].name == "caravan"
    with pytest.raises(ValueError, match="Unknown source 'toy'"):
        reader_for("toy")
    with pytest.raises(ValueError, match="Unknown source 'camels_us/foo'"):
        reader_for("camels_us/foo")
    with pytest.raises(ValueError, match="registered already"):
        register(SourceReader("smap", "grid_cell", sites=None, load=None, site_table=None, source_file=None))
