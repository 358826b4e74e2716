"""HydroLens engine: datasets, process models, learners, training, evaluation and runs.

`core` never imports `explorer`; the explorer uses only the public API re-exported here and in
the sub-packages (`core.datasets`, `core.physics`, `core.models`, `core.training`,
`core.evaluation`, `core.runs`).
"""

__version__ = "0.1.0"
