"""HydroLens engine: datasets, process models, learners, training, evaluation and runs.

`core` never imports `explorer`; the explorer uses only the public API re-exported here and in
the sub-packages (`core.datasets`, `core.physics`, `core.models`, `core.training`,
`core.evaluation`, `core.runs`).
"""

from ._runtime import configure_memory as _configure_memory

_configure_memory()  # huge pages + glibc heap reuse for large tensors; see core/_runtime.py

__version__ = "0.1.0"
