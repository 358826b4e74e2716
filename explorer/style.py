"""The explorer's stylesheet and the HTML pane that carries it.

Panel components live in shadow DOM, so page CSS does not reach inside them: the template gets
the stylesheet as page CSS (``CSS``) and every styled component (HTML panes, cards) gets it as
a component stylesheet (:func:`stylesheets`).

In a served session the component stylesheet is a URL (Panel's component-resource route,
``/components/explorer.style/Stylesheet/_stylesheets/hydrolens.css``): Panel turns it into one
shared ``ImportedStyleSheet`` per page that the browser fetches once and caches, instead of a
4 KB copy of the CSS inside each of the page's ~80 components (a third of the page's document
and of every HTML-pane update). Outside a server (notebooks, in-process tests) it is the CSS
text itself.
"""

from __future__ import annotations

from pathlib import Path

import panel as pn
from panel.io.resources import resolve_stylesheet

#: The explorer's stylesheet (beside this module, where Panel's resource route can serve it).
CSS_FILE = "hydrolens.css"
CSS = (Path(__file__).resolve().parent / CSS_FILE).read_text(encoding="utf-8")


class Stylesheet:
    """Anchor of the stylesheet for Panel's component-resource route (which serves only the
    files a class lists in ``_stylesheets``, relative to its module)."""

    _stylesheets = [CSS_FILE]


def stylesheets() -> list[str]:
    """The ``stylesheets`` of a styled component: the stylesheet's URL in a served session, else
    its text. Call it while building the session's components (it reads ``pn.state.curdoc``)."""
    return [resolve_stylesheet(Stylesheet, CSS_FILE, "_stylesheets")]


class StyledHTML(pn.pane.HTML):
    """An HTML pane whose updates send its text, not its stylesheets again.

    Panel's markup panes send every property when their object changes; the first such update
    after a templated page is built also re-sends ``stylesheets`` (the template's design adds
    its own after the first render), and a changed list of stylesheet models makes Bokeh re-walk
    the page's whole document: ~0.1-0.3 s per pane on the server, so the first click on a site,
    which retitles three panes, took over a second longer than the next. The stylesheets of
    these panes never change after they are built, so updates leave them out.
    """

    def _update(self, ref, model) -> None:
        props = self._get_properties(model.document)
        props.pop("stylesheets", None)
        model.update(**props)


def html_pane(object: str = "", **params) -> pn.pane.HTML:
    """An HTML pane styled with the explorer's stylesheet (stretches to its container's width)."""
    params.setdefault("sizing_mode", "stretch_width")
    return StyledHTML(object, stylesheets=stylesheets(), **params)
