"""Atomic file writes: a reader (or a kill) never sees a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

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
