"""HydroLens explorer: a Panel app over the run store (`panel serve explorer/app.py`).

`explorer.app.create_app` builds one session; `explorer.server.serve` serves it (the
``hydrolens serve`` command). The explorer reads runs only through `core.runs`.
"""
