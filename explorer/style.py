"""The explorer's stylesheet and the HTML pane that carries it.

Panel components live in shadow DOM, so page CSS does not reach inside them: every HTML pane of
the app gets the stylesheet itself (:func:`html_pane`).
"""

from __future__ import annotations

from pathlib import Path

import panel as pn

#: The explorer's stylesheet (shipped in assets/ beside the package).
CSS_PATH = Path(__file__).resolve().parents[1] / "assets" / "hydrolens.css"
CSS = CSS_PATH.read_text(encoding="utf-8")


def html_pane(object: str = "", **params) -> pn.pane.HTML:
    """An HTML pane styled with the explorer's stylesheet (stretches to its container's width)."""
    params.setdefault("sizing_mode", "stretch_width")
    return pn.pane.HTML(object, stylesheets=[CSS], **params)
