"""Run store: one directory per run (config, normalisation, checkpoints, metrics, outputs)."""

from .io import atomic_write, atomic_write_many, write_json_atomic, write_text_atomic
from .outputs import METRIC_SPECS, Variable
from .safety import InvalidNameError, RunBusyError, RunLock, process_alive, this_process, validate_name
from .store import STATES, Run, RunFileError, RunInfo, RunNotFoundError, RunStore

__all__ = [
    "METRIC_SPECS",
    "STATES",
    "Variable",
    "InvalidNameError",
    "Run",
    "RunBusyError",
    "RunFileError",
    "RunInfo",
    "RunLock",
    "RunNotFoundError",
    "RunStore",
    "atomic_write",
    "atomic_write_many",
    "process_alive",
    "this_process",
    "validate_name",
    "write_json_atomic",
    "write_text_atomic",
]
