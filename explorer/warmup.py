"""Server warm-up: ``panel serve explorer/app.py --setup explorer/warmup.py`` runs this once at
start (``hydrolens serve`` passes it), so the first page does not pay for the imports (torch,
HoloViews/GeoViews, the model registry: ~3 s on 2 cores) and for building the cached basemap.

It builds no session: Panel's own ``--warm`` builds and destroys one, which fails on this app
(a HoloViews plot's session-destroyed callback edits the set Panel is iterating over).
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import holoviews as hv  # noqa: E402

import core.models.registry  # noqa: E402,F401  (torch and the variants: the launch form)
import core.training.config  # noqa: E402,F401
from explorer import geomap  # noqa: E402
from explorer.workbench import device_options  # noqa: E402

hv.render(geomap.basemap(), backend="bokeh")  # HoloViews/GeoViews plotting, the basemap cache
geomap.relief_data_url()
device_options()
