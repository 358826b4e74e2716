"""The text of the benchmark reports: number formatting, Markdown tables and the Jinja2
templates (``core/benchmarks/templates/``) that hold each report's prose and layout.

Python prepares the values (numbers formatted, tables as :class:`Table`); a template only
places them, so a report's wording is edited in one file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from ..runs import atomic_write, write_text_atomic

#: Markdown, not HTML: nothing is escaped; a block tag on its own line leaves no blank line
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("core.benchmarks", "templates"), autoescape=False,
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                          lstrip_blocks=True)


def fmt(v, nd: int = 3) -> str:
    """``v`` with ``nd`` decimals, or "–" for None, NaN and infinities."""
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{nd}f}"


@dataclass
class Table:
    """A Markdown table of preformatted cells: ``head`` (column titles) and ``rows``."""

    head: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def markdown(self) -> str:
        """The pipe table: header, separator, one line per row (no trailing newline)."""
        lines = ["| " + " | ".join(self.head) + " |", "|" + "---|" * len(self.head)]
        lines += ["| " + " | ".join(cells) + " |" for cells in self.rows]
        return "\n".join(lines)


_ENV.filters["markdown"] = Table.markdown


def render(template: str, **values) -> str:
    """The report ``template`` (a file of core/benchmarks/templates/) filled with ``values``.

    Raises:
        jinja2.UndefinedError: the template names a value that was not given.
    """
    return _ENV.get_template(template).render(**values)


def publish(doc: str | Path, out: Path, figures: Iterable[str], report: Callable[[str], str],
            results: pd.DataFrame) -> None:
    """Publish a benchmark page: the report at ``doc``, each figure of ``figures`` (file names in
    the benchmark's output folder ``out``) copied beside it as ``img/<doc stem>_<file>``, and
    ``results`` as ``<doc>.csv`` (one row per run, for scripts to check), all written atomically.

    The figures are named after the page, not the preset, so two pages written from runs of one
    preset (e.g. two sets of variants) never overwrite each other's figures.

    Args:
        report: the report text for a figure link prefix (``"img/<doc stem>_"``).
    """
    doc = Path(doc)
    img = doc.parent / "img"
    img.mkdir(parents=True, exist_ok=True)
    prefix = f"{doc.stem}_"
    for f in figures:
        data = (out / f).read_bytes()
        atomic_write(img / f"{prefix}{f}", lambda p, d=data: Path(p).write_bytes(d))
    write_text_atomic(doc, report(f"img/{prefix}"))
    write_text_atomic(doc.with_suffix(".csv"), results.to_csv(index=False))
