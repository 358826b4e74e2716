"""The soil-moisture benchmark (Li & Lu 2023, Table 2 analogue; issue 10) on the SMAP cells.

``hydrolens benchmark --preset smap`` plans one run per (method, training cells, coupling, seed)
(:mod:`.plan`), trains the missing ones through the job runner (:mod:`.run`:
:func:`core.benchmarks.runs.ensure_named_runs`, subprocesses that resume after a kill), scores
whatever evaluated runs exist (:mod:`.score`) and writes the report (:mod:`.report`, the template
``templates/benchmark_smap.md.j2``); :mod:`.benchmark` runs those steps in order:

* the Table-2 analogue: RMSE, PCC and NSE of SMAP AM surface soil moisture in the test year,
  the median over cells of each run, then mean ± sd over seeds, for the five methods
  (SCE-UA, FFN_A, LSTM_Z, ParaFormer_A, ParaFormer_Z) on SPARSE (the paper's DAS-S8),
  DENSE (DAS-S4) and NG (the unseen neighbours of the SPARSE cells, DAS-S8NG), each learner with
  the direct (dPL) and the surrogate coupling, and the paper's values beside ours;
* the dPL data-scaling curve: median NSE/RMSE on NG of learners trained on the nested
  SCALE_29 ⊂ SPARSE ⊂ SCALE_206 ⊂ DENSE cell sets (Tsai et al. 2021);
* the ``infiltr`` map of each method (its DENSE run: the 305 trained and 102 NG cells), its
  spatial range and Moran's I (``core.evaluation.diagnostics``);
* ET: each method's long-term test-year ET against the default-parameter VIC run
  (variant ``vic_default``), the Budyko check against Fu's curve, and, with a cell-level MOD16A2
  table, the 8-day ET correlations (as the δ benchmark);
* the learning curves (training loss per epoch, test median NSE of every ``curve_every``-th
  epoch checkpoint) and the cost per epoch of each coupling;
* with ``long_epochs`` N, the longer-training check: every learner once more on SPARSE (direct,
  seed 0) to N epochs, scored beside its run at the benchmark's epochs, with its learning curve
  (does the ranking of a short budget hold when the learners train longer?).

Runs are named ``<preset>-<method>[-surrogate]-<cells>-s<seed>[-e<N>]`` (cells: sparse, dense,
scale_29, scale_206; ``-e<N>``: a longer-training run), so a rerun reuses finished runs and
resumes interrupted ones.
"""

from .benchmark import run_smap_benchmark
from .plan import DEFAULT_RUN_METHOD, METHODS, PlannedRun, long_plan, plan_runs, run_config
from .report import frame_table, json_line, render_report, report_values, table2_table
from .score import collect, field_stats, long_table, scaling_curve, table2, target_checks

__all__ = ["DEFAULT_RUN_METHOD", "METHODS", "PlannedRun", "collect", "field_stats", "frame_table", "json_line",
           "long_plan", "long_table", "plan_runs", "render_report", "report_values", "run_config",
           "run_smap_benchmark", "scaling_curve", "table2", "table2_table", "target_checks"]
