"""HydroLens engine: datasets, process models, learners, training, evaluation and runs.

`core` never imports `explorer`; the explorer uses only the public API re-exported here and in
the sub-packages (`core.datasets`, `core.physics`, `core.models`, `core.training`,
`core.evaluation`, `core.runs`).
"""

import os as _os

# Large CPU tensors (the HBV tape, LSTM activations: tens of MB per training step) are mmapped
# afresh by glibc on every allocation; on VMs each 4 KiB page fault costs microseconds, so a 65 MB
# buffer took ~100 ms to first touch. PyTorch's THP_MEM_ALLOC_ENABLE backs allocations >= 2 MB with
# transparent huge pages (~10x fewer faults; measured 103 -> 12 ms for 65 MB). It is read when
# torch initialises, so it only takes effect when core is imported before torch; it changes no
# numbers, and a user's own setting wins.
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
