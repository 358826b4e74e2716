"""HydroLens explorer: a Panel app over the run store (`panel serve explorer/app.py`).

`explorer.app.create_app` builds one session; ``hydrolens serve`` runs ``panel serve
explorer/app.py``, and `explorer.server.serve` serves the same app from Python (``pn.serve``).
The explorer reads runs only through core's public API (`core.runs`, `core.jobs`).
"""
