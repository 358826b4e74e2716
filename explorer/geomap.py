"""The explorer's map base: one CONUS Albers CRS, a projection helper and an offline basemap.

Every explorer map is drawn through HoloViews/GeoViews (bokeh backend) in one coordinate system,
`CONUS_CRS`: the USGS "CONUS Albers equal-area conic" with the parameters of EPSG:5070
(NAD83 / Conus Albers): standard parallels 29.5°N and 45.5°N, latitude of origin 23°N, central
meridian 96°W, no false easting/northing, GRS80 ellipsoid, units metres. Longitude/latitude
inputs are taken as geographic coordinates on that ellipsoid (NAD83; WGS84 differs by ~1 m, far
below what a CONUS map can show), so `project` is a pure map projection with no datum shift and
needs no grid files or network.

Nothing here downloads anything: no tile server and no ``gv.feature`` (both fetch at run time).
The backdrop is ``assets/conus_relief.png`` (Natural Earth shaded relief, already reprojected to
`CONUS_CRS` by ``scripts/make_relief.py``), the state outlines come from ``bokeh_sampledata``
(Census TIGER/Line, Alaska and Hawaii dropped) and the lakes from ``assets/conus_lakes.json``
(Natural Earth). Relief, outlines and lakes are already in `CONUS_CRS` metres (projected once,
with pyproj) and drawn as plain HoloViews elements whose plot option ``projection`` is
`CONUS_CRS`: GeoViews makes that the plot's projection and has nothing to re-project at render
time. Overlay data either as plain HoloViews elements with ``x``/``y`` from `project` (metres,
fastest) or as GeoViews elements with a ``crs`` (e.g. ``crs=ccrs.PlateCarree()`` for lon/lat),
which GeoViews projects to `CONUS_CRS` on every render.

Sources: EPSG:5070 (NAD83 / Conus Albers; USGS CONUS Albers equal-area conic), Snyder (1987)
"Map Projections: A Working Manual", USGS Professional Paper 1395, ch. 14.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import cartopy.crs as ccrs
import numpy as np
from pyproj import Transformer

ASSETS = Path(__file__).resolve().parents[1] / "assets"
RELIEF_PNG = ASSETS / "conus_relief.png"
RELIEF_JSON = ASSETS / "conus_relief.json"
LAKES_JSON = ASSETS / "conus_lakes.json"

#: CONUS Albers parameters (EPSG:5070, USGS): degrees.
ALBERS_PARAMS = {"central_longitude": -96.0, "central_latitude": 23.0,
                 "standard_parallels": (29.5, 45.5)}

#: The explorer's map CRS: Albers equal-area conic on GRS80 with the EPSG:5070 parameters
#: (x/y in metres). A cartopy CRS is also a ``pyproj.CRS``.
CONUS_CRS = ccrs.AlbersEqualArea(**ALBERS_PARAMS, false_easting=0.0, false_northing=0.0,
                                 globe=ccrs.Globe(ellipse="GRS80"))

#: The same CRS as a PROJ string (what ``assets/conus_relief.json`` records).
CONUS_PROJ4 = ("+proj=aea +lat_0=23 +lon_0=-96 +lat_1=29.5 +lat_2=45.5 +x_0=0 +y_0=0 "
               "+ellps=GRS80 +units=m +no_defs")

#: States left off the CONUS map.
NON_CONUS = ("AK", "HI")

#: Default view: the 48 states' projected bounding box (metres) padded by this fraction.
_VIEW_PAD = 0.03

#: Map colours. WATER is the relief's sea/lake colour (scripts/make_relief.py reads it from
#: here), the plot background beyond the image and the lakes' fill (they only sharpen shores).
WATER = "#d3e2ed"
BACKGROUND = WATER
LAKE_FILL = WATER
LAKE_LINE = "#9db6ca"
STATE_LINE = "#6f7a88"
MAP_HEIGHT = 480


@lru_cache(maxsize=2)
def _transformer(inverse: bool = False) -> Transformer:
    geodetic = CONUS_CRS.as_geodetic()  # lon/lat on the same GRS80 globe: no datum step
    src, dst = (CONUS_CRS, geodetic) if inverse else (geodetic, CONUS_CRS)
    return Transformer.from_crs(src, dst, always_xy=True)


def _transform(a, b, inverse: bool) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = np.broadcast_arrays(a, b)
    out_a, out_b = _transformer(inverse).transform(a, b)
    out_a = np.array(out_a, dtype=float, copy=True).reshape(a.shape)
    out_b = np.array(out_b, dtype=float, copy=True).reshape(a.shape)
    bad = ~(np.isfinite(a) & np.isfinite(b)) | ~(np.isfinite(out_a) & np.isfinite(out_b))
    if bad.any():
        out_a[bad] = np.nan
        out_b[bad] = np.nan
    return out_a, out_b


def project(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Project longitude/latitude (degrees) to `CONUS_CRS` x/y (metres).

    Accepts scalars or array-likes (broadcast together); returns float arrays of that shape.
    NaN (or a point PROJ cannot project) gives NaN in both outputs.
    """
    return _transform(lon, lat, inverse=False)


def unproject(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `project`: `CONUS_CRS` x/y (metres) to longitude/latitude (degrees)."""
    return _transform(x, y, inverse=True)


@lru_cache(maxsize=1)
def state_outlines() -> dict[str, list]:
    """Projected exterior rings of the 48 contiguous states and DC (metres), computed once.

    Returns ``{"x": [...], "y": [...], "name": [...], "code": [...]}``: one float array per state
    (NaN separates the parts of a multi-part state), from ``bokeh_sampledata`` (Census
    TIGER/Line, NAD83 lon/lat), Alaska and Hawaii dropped, ordered by state code.
    """
    from bokeh.sampledata.us_states import data

    cols: dict[str, list] = {"x": [], "y": [], "name": [], "code": []}
    for code in sorted(data):
        if code in NON_CONUS:
            continue
        state = data[code]
        x, y = project(state["lons"], state["lats"])
        cols["x"].append(x)
        cols["y"].append(y)
        cols["name"].append(state["name"])
        cols["code"].append(code)
    return cols


@lru_cache(maxsize=1)
def conus_extent() -> tuple[float, float, float, float]:
    """Default map view ``(x0, y0, x1, y1)`` in `CONUS_CRS` metres: the 48 states, padded 3 %."""
    outlines = state_outlines()
    xs = np.concatenate(outlines["x"])
    ys = np.concatenate(outlines["y"])
    x0, x1 = float(np.nanmin(xs)), float(np.nanmax(xs))
    y0, y1 = float(np.nanmin(ys)), float(np.nanmax(ys))
    dx, dy = (x1 - x0) * _VIEW_PAD, (y1 - y0) * _VIEW_PAD
    return (x0 - dx, y0 - dy, x1 + dx, y1 + dy)


@lru_cache(maxsize=1)
def relief_meta() -> dict:
    """``assets/conus_relief.json``: ``bounds`` (left, bottom, right, top; metres), CRS, size."""
    return json.loads(RELIEF_JSON.read_text())


#: Width (px) the relief is drawn at (the asset is 1625 px; the map is ~1000-1300 px wide).
RELIEF_WIDTH = 1300
#: JPEG quality of the relief a page carries (85: no visible artefacts on the muted relief).
RELIEF_QUALITY = 85


def relief_array(width: int | None = RELIEF_WIDTH) -> np.ndarray:
    """The relief backdrop as a ``(rows, cols, 3)`` uint8 array, first row at the top, resampled
    to ``width`` pixels (None: the asset's own size)."""
    from PIL import Image

    with Image.open(RELIEF_PNG) as img:
        img = img.convert("RGB")
        if width and img.width > width:
            img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
        return np.asarray(img)


@lru_cache(maxsize=2)
def relief_data_url(width: int | None = RELIEF_WIDTH) -> str:
    """The relief as a ``data:image/jpeg;base64,...`` URL (`relief_array` at ``width``), computed
    once per process: what a page carries for the backdrop (~160 kB, decoded by the browser),
    where an ``hv.RGB`` would carry raw RGBA pixels (2.3 MB per page at 1000 px)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(relief_array(width)).save(buf, "JPEG", quality=RELIEF_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _ring_xy(ring) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(ring, dtype=float)
    return project(arr[:, 0], arr[:, 1])


@lru_cache(maxsize=1)
def lake_polygons() -> list[dict]:
    """Lakes from ``assets/conus_lakes.json`` as projected polygon dicts (metres), or ``[]``.

    Each dict has ``x``, ``y`` (exterior ring), ``holes`` (islands, as ``[[(n, 2) arrays]]``) and
    ``name``: ready for ``hv.Polygons(..., vdims=["name"])``.
    """
    if not LAKES_JSON.exists():
        return []
    features = json.loads(LAKES_JSON.read_text())["features"]
    polys = []
    for feature in features:
        geom = feature["geometry"]
        parts = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
        for rings in parts:
            x, y = _ring_xy(rings[0])
            holes = [np.column_stack(_ring_xy(r)) for r in rings[1:]]
            polys.append({"x": x, "y": y, "holes": [holes],
                          "name": feature["properties"].get("name") or ""})
    return polys


def cell_polygons(lon, lat, size_deg: float, **columns) -> list[dict]:
    """Grid cells as projected squares: one polygon dict per cell, for ``hv.Polygons``.

    Each cell is the lon/lat square of side ``size_deg`` (degrees) centred on ``lon``/``lat``
    (degrees), its four corners projected to `CONUS_CRS` (metres; an Albers cell is a slightly
    rotated, slightly trapezoidal quadrilateral of area
    ≈ ``size_deg² · (111.2 km)² · cos(lat)``, equal-area so exact up to the ellipsoid).
    Returns ``[{"x": (4,) array, "y": (4,) array, "lon": .., "lat": .., **columns}, ...]``; extra
    keyword ``columns`` are per-cell sequences (same length as ``lon``) copied into each dict, so
    ``hv.Polygons(cells, vdims=[*columns])`` colours them. Rings are open (Bokeh closes them).
    Cells whose centre is NaN are dropped (with their column values).
    """
    lon = np.atleast_1d(np.asarray(lon, dtype=float))
    lat = np.atleast_1d(np.asarray(lat, dtype=float))
    h = float(size_deg) / 2.0
    cols = {k: np.asarray(v) for k, v in columns.items()}
    for k, v in cols.items():
        if len(v) != len(lon):
            raise ValueError(f"column {k!r} has {len(v)} values for {len(lon)} cells")
    dlon = np.array([-h, h, h, -h])
    dlat = np.array([-h, -h, h, h])
    x, y = project(lon[:, None] + dlon, lat[:, None] + dlat)  # (n, 4) corners, counter-clockwise
    keep = np.flatnonzero(np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1))
    return [{"x": x[i], "y": y[i], "lon": lon[i], "lat": lat[i],
             **{k: v[i] for k, v in cols.items()}} for i in keep]


def _joined(parts) -> np.ndarray:
    """Concatenate 1-D arrays with a NaN between each (one multi-part geometry for Bokeh)."""
    out = []
    for part in parts:
        if out:
            out.append(np.array([np.nan]))
        out.append(np.asarray(part, dtype=float))
    return np.concatenate(out) if out else np.empty(0)


# Keeps 1 m in x = 1 m in y on screen while the plot's width follows its container: on the
# first layout (and after a reset) the view is fitted to `conus_extent`; on a later resize the
# scale (metres per pixel) and centre are kept. HoloViews' own ``data_aspect`` cannot do this
# with a fixed height and a responsive width (it falls back to a fixed frame width).
_ASPECT_JS = """
const w = fig.inner_width, h = fig.inner_height;
if (!(w > 0 && h > 0)) return;
const s = fig.__hl_aspect || (fig.__hl_aspect = {fit: true});
if (cb_obj != null && cb_obj.event_name === "reset") s.fit = true;
let cx, cy, m;
if (s.fit || !(s.w > 0 && s.h > 0)) {
  cx = (ext[0] + ext[2]) / 2; cy = (ext[1] + ext[3]) / 2;
  m = Math.max((ext[2] - ext[0]) / w, (ext[3] - ext[1]) / h);
  s.fit = false;
} else {
  cx = (xr.start + xr.end) / 2; cy = (yr.start + yr.end) / 2;
  m = Math.max((xr.end - xr.start) / s.w, (yr.end - yr.start) / s.h);
}
s.w = w; s.h = h;
xr.setv({start: cx - m * w / 2, end: cx + m * w / 2});
yr.setv({start: cy - m * h / 2, end: cy + m * h / 2});
"""


def _lock_aspect(plot, element) -> None:
    """HoloViews hook: equal x/y scale in a responsive-width figure (see `_ASPECT_JS`)."""
    from bokeh.models import BoxZoomTool, CustomJS, WheelZoomTool

    fig = plot.state
    if "hydrolens-aspect-lock" in fig.tags:
        return
    fig.tags = [*fig.tags, "hydrolens-aspect-lock"]
    callback = CustomJS(args={"fig": fig, "xr": fig.x_range, "yr": fig.y_range,
                              "ext": list(conus_extent())}, code=_ASPECT_JS)
    fig.js_on_change("inner_width", callback)
    fig.js_on_change("inner_height", callback)
    fig.js_on_event("reset", callback)
    for tool in fig.select(type=BoxZoomTool):
        tool.match_aspect = True
    for tool in fig.select(type=WheelZoomTool):
        tool.zoom_on_axis = False


RELIEF_NAME = "hydrolens-relief"


def _add_relief(plot, element) -> None:
    """HoloViews hook: the shaded relief under every other layer, as one Bokeh ``ImageURL``
    (`relief_data_url`, placed at the asset's bounds in metres), and a canvas (not WebGL)
    output backend: a few hundred markers draw faster on a canvas than through a WebGL context,
    which software-rendering browsers (no GPU) blit slowly."""
    fig = plot.state
    fig.output_backend = "canvas"
    if any(getattr(r, "name", None) == RELIEF_NAME for r in fig.renderers):
        return
    left, bottom, right, top = relief_meta()["bounds"]
    renderer = fig.image_url(url=[relief_data_url()], x=left, y=top, w=right - left,
                             h=top - bottom, anchor="top_left", name=RELIEF_NAME, level="image")
    fig.renderers = [renderer, *fig.renderers[:-1]]


def map_opts() -> dict:
    """Plot options every explorer map shares (bokeh backend). `basemap` sets them on each of
    its layers, so they survive ``basemap() * element`` (which builds a new overlay)."""
    x0, y0, x1, y1 = conus_extent()
    return dict(projection=CONUS_CRS, xaxis=None, yaxis=None, responsive=True, height=MAP_HEIGHT,
                xlim=(x0, x1), ylim=(y0, y1), show_grid=False, bgcolor=BACKGROUND,
                active_tools=["wheel_zoom"], hooks=[_lock_aspect, _add_relief])


@lru_cache(maxsize=1)
def basemap():
    """The CONUS map base: relief, lakes and state outlines in `CONUS_CRS` (metres), cached.

    A HoloViews overlay for the bokeh backend, layers in ``x``/``y`` metres: the relief
    (added by the `_add_relief` plot hook as one Bokeh ``ImageURL`` of a JPEG, not an ``hv.RGB``
    whose raw RGBA pixels would weigh 2.3 MB in every page), the lakes (light blue, one
    ``MultiPolygons`` glyph; only if ``assets/conus_lakes.json`` exists) and the unfilled thin
    grey state outlines (one ``MultiLine`` glyph). Every layer carries `map_opts`: projection
    `CONUS_CRS`, axes hidden, responsive width, height `MAP_HEIGHT`, equal x/y scale (what
    ``data_aspect=1`` means, kept in the browser by `_lock_aspect` since HoloViews cannot combine
    it with a responsive width and a fixed height) and the `conus_extent` view.

    Overlay data with ``basemap() * points``: ``points`` either a plain HoloViews element with
    ``kdims=["x", "y"]`` in `project` metres (fastest) or a GeoViews element with its own ``crs``
    (GeoViews projects it to `CONUS_CRS` on each render). The overlay is shared (cached): build
    a new one (``*``) rather than calling ``.opts`` on ``basemap()`` itself.

    The layers are plain HoloViews elements already in `CONUS_CRS` coordinates: GeoViews only
    re-projects GeoViews elements, and re-projecting the outlines through cartopy on every render
    costs ~0.3 s (``gv.RGB`` would also need scipy or pykdtree). One geometry per layer (parts
    NaN-separated) keeps HoloViews' per-geometry overhead out of the render.
    """
    import geoviews.plotting.bokeh  # noqa: F401  (GeoViews' bokeh plots: the `projection` option)
    import holoviews as hv

    opts = map_opts()
    layers = []
    lakes = lake_polygons()
    if lakes:
        layers.append(hv.Polygons(
            [{"x": _joined(p["x"] for p in lakes), "y": _joined(p["y"] for p in lakes),
              "holes": [p["holes"][0] for p in lakes]}],
            kdims=["x", "y"], group="Lakes",
        ).opts(fill_color=LAKE_FILL, line_color=LAKE_LINE, line_width=0.6, backend="bokeh"))
    outlines = state_outlines()
    layers.append(hv.Path(
        [{"x": _joined(outlines["x"]), "y": _joined(outlines["y"])}], kdims=["x", "y"],
        group="States",
    ).opts(color=STATE_LINE, line_width=0.75, line_alpha=0.9, backend="bokeh"))
    layers = [layer.opts(**opts, backend="bokeh") for layer in layers]
    return hv.Overlay(layers).opts(**opts, backend="bokeh")


def site_map(frame, *, name: str, key: str, title_font_size: str = "15px", **point_opts):
    """A site map: ``frame``'s sites as points on `basemap`, rendered to one Bokeh figure.

    Args:
        frame: a DataFrame with ``x``/``y`` in `CONUS_CRS` metres (`project`) and any other
            columns (kept as the points' data, e.g. for hover tooltips); may be empty.
        name: the figure's Bokeh name (browser tests and benchmarks find it by name).
        key: a column of ``frame`` that identifies the points' renderer among the figure's.
        title_font_size: CSS size of the figure title.
        point_opts: HoloViews bokeh plot/style options of the points (tools, size, colour, ...).

    Returns:
        ``(figure, renderer)``: the responsive figure (no Bokeh logo) and the points'
        GlyphRenderer, whose ``data_source`` the caller updates from then on.

    The points are a plain ``hv.Points`` in metres: GeoViews has nothing to re-project on each
    render (a ``gv.Points`` with ``crs=CONUS_CRS`` costs ~0.05 s more per session).
    """
    import holoviews as hv

    base = basemap()  # first: it loads HoloViews' bokeh plotting, which `.opts` needs
    points = hv.Points(frame, kdims=["x", "y"],
                       vdims=[c for c in frame.columns if c not in ("x", "y")]).opts(
        **point_opts, backend="bokeh")
    fig = hv.render(base * points, backend="bokeh")
    fig.name = name
    fig.toolbar.logo = None
    fig.title.text_font_size = title_font_size
    fig.sizing_mode = "stretch_width"
    renderer = next(r for r in fig.renderers
                    if hasattr(r, "data_source") and key in r.data_source.column_names)
    return fig, renderer
