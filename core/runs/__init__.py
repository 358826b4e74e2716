"""Run store: one directory per run (config, normalisation, checkpoints, metrics, outputs)."""

from .io import atomic_write, write_json_atomic, write_text_atomic
from .store import STATES, Run, RunInfo, RunNotFoundError, RunStore

__all__ = [
    "STATES",
    "Run",
    "RunInfo",
    "RunNotFoundError",
    "RunStore",
    "atomic_write",
    "write_json_atomic",
    "write_text_atomic",
]
