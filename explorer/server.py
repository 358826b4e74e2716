"""Serving the explorer from Python: ``serve()`` runs the app through ``pn.serve`` in this
process (programmatic use, notebooks and scripts). The ``hydrolens serve`` command does not use
it: it runs ``panel serve explorer/app.py`` (with ``explorer/warmup.py`` as its set-up script), so
``core`` never imports ``explorer``.
"""

from __future__ import annotations

import os

import panel as pn

from explorer.app import TITLE, create_app


def serve(
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = False,
    runs_root: str | os.PathLike | None = None,
) -> None:
    """Serve the HydroLens explorer at ``http://<address>:<port>/`` until interrupted (blocking).

    Args:
        port: TCP port (0 picks a free one).
        address: interface to listen on.
        show: open a browser tab on start.
        runs_root: run-store root; default ``HYDROLENS_RUNS`` or ``./runs`` (see `core.runs`).
    """
    def app():
        return create_app(runs_root).template

    origins = [f"{address}:{port}", f"localhost:{port}"]
    pn.serve(
        {"/": app},
        port=port,
        address=address,
        show=show,
        title=TITLE,
        websocket_origin=origins,
        threaded=False,
    )
