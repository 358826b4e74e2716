"""Atomic file writes: a reader (or a kill) never sees a half-written file.

Also the run store's two growing formats, shared by runs (core.runs.store) and the surrogate job
(core.training.surrogate_fit): a status JSON merged field by field with an ``updated`` stamp
(:func:`update_json`), and a CSV log that gains one row at a time and is cut back to a
checkpoint on resume (:func:`append_csv_row`, :func:`truncate_csv`).

And the one YAML reader of configs (:func:`load_yaml`): `hydrolens train --config`, a run's
config.yaml and every other config file are read alike, so an unquoted gauge id stays an id.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

# mkstemp creates 0600 files; a run directory is meant to be shared, so written files get the
# mode a plain open() would give them (0666 less the process umask, read once at import)
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a file atomically.

    ``write(tmp_path)`` writes the content to a temporary file in the same directory, which is
    then fsynced and renamed over ``path`` (``os.replace`` is atomic on POSIX). If ``write``
    raises, the previous file at ``path`` is left untouched and the temporary file is removed.
    """
    return atomic_write_many({path: write})[0]


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    return write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def atomic_write_many(writers: dict[str | os.PathLike, Callable[[Path], None]]) -> list[Path]:
    """Write several files that belong together (e.g. outputs.nc and metrics.csv).

    Every file is written in full to a temporary beside its target and fsynced before the first
    one is renamed into place; the renames then follow one another. A failure or kill while
    writing leaves every old file untouched; only a kill between two renames (microseconds) can
    leave some files new and others old. Temporaries are removed on failure.
    """
    temps: list[tuple[Path, Path]] = []
    try:
        for path, write in writers.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            temps.append((Path(tmp), path))
            write(Path(tmp))
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, FILE_MODE)
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise
    return [path for _, path in temps]


def now_iso() -> str:
    """The current UTC time as ISO 8601 to the second (the ``updated`` stamp of status files)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def update_json(path: str | os.PathLike, current: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the JSON object ``current`` (the file's content, read by the caller,
    which knows how to validate it; None or {}: start empty), stamp ``updated`` and write the
    result atomically. Returns the written object."""
    obj = dict(current or {})
    obj.update(fields)
    obj["updated"] = now_iso()
    write_json_atomic(path, obj)
    return obj


def append_csv_row(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one row to a CSV log (header on a new file); the file is rewritten atomically, so
    a kill leaves the previous rows intact. A row with new columns rewrites the header."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    rows = list(csv.DictReader(io.StringIO(old))) if old else []
    fields = list(rows[0]) if rows else []
    fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    w.writerow(row)
    write_text_atomic(path, buf.getvalue())


def truncate_csv(path: str | os.PathLike, column: str, last: float) -> int:
    """Drop the rows of a CSV log whose ``column`` is above ``last`` (rows logged after the
    checkpoint a job resumes from) or not a number; returns how many were dropped."""
    path = Path(path)
    if not path.exists():
        return 0
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows:
        return 0

    def keep(r):
        try:
            return float(r.get(column) or "nan") <= last
        except ValueError:
            return False

    kept = [r for r in rows if keep(r)]
    if len(kept) != len(rows):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(kept)
        write_text_atomic(path, buf.getvalue())
    return len(rows) - len(kept)


# ------------------------------------------------------------------------------------- YAML
class YamlLoader(yaml.SafeLoader):
    """SafeLoader that keeps digit strings with a leading zero as text: YAML 1.1 would read the
    gauge id 01022500 as the octal integer 271680. It also reads ``1e-3`` as a number (YAML 1.1
    wants ``1.0e-3``; the settings are strictly typed, so the text ``'1e-3'`` would be refused)
    and refuses a key given twice in one mapping (YAML would silently keep the last)."""

    def construct_mapping(self, node, deep=False):
        """The mapping of ``node``; a key that appears twice is a ConstructorError at its line."""
        seen: set = set()
        for key_node, _ in getattr(node, "value", ()):
            if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key_node.value!r} appears twice in the same section",
                        key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _int_or_gauge_id(loader, node):
    text = loader.construct_scalar(node)
    if len(text) > 1 and text.startswith("0") and text.isdigit():
        return text
    return yaml.SafeLoader.construct_yaml_int(loader, node)


YamlLoader.add_constructor("tag:yaml.org,2002:int", _int_or_gauge_id)


def _date_or_text(loader, node):
    """A YAML date; an impossible one (1993-02-30) stays text, so that the validation names its
    field (PyYAML alone raises a bare 'day is out of range for month')."""
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _date_or_text)
YamlLoader.add_implicit_resolver(  # YAML 1.2 exponent floats: 1e-3, 5E4, 2.5e3
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse config YAML with :class:`YamlLoader` (gauge ids with a leading zero stay text,
    ``1e-3`` is a number, a key given twice is an error, an impossible date stays text).

    Raises:
        yaml.YAMLError: not valid YAML (:func:`yaml_error_text` words it for a user).
    """
    return yaml.load(text, Loader=YamlLoader)


def yaml_error_text(e: yaml.YAMLError) -> str:
    """A YAML error on one line, with its line and column, and the hint a tab needs."""
    text = " ".join(str(e).split()).replace('in "<unicode string>", ', "at ")
    if "'\\t'" in text:
        text += " (YAML indents with spaces, never tabs)"
    return text
