"""The SMAP benchmark's runs: which (method, training cells, coupling, seed) it trains, in which
order, under which names, and the RunConfig of each.

Runs are named ``<preset>-<method>[-surrogate]-<cells>-s<seed>[-e<N>]`` (cells: sparse, dense,
scale_29, scale_206; ``-e<N>``: a longer-training run), so a rerun reuses finished runs and
resumes interrupted ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...models import VARIANTS
from ...training.config import SET_NONE, compose_config
from ..runs import preset_label

#: the five methods of Li & Lu (2023, Table 2), baseline first
METHODS: tuple[str, ...] = ("sceua", "ffn_a", "lstm_z", "paraformer_a", "paraformer_z")
#: the uncalibrated reference run of the ET comparison
DEFAULT_RUN_METHOD = "vic_default"
#: training cell sets of the table (the paper's DAS-S8 and DAS-S4 analogues)
TRAIN_SETS: tuple[str, ...] = ("SPARSE", "DENSE")
#: nested training sets of the scaling curve (SCALE_104 = SPARSE, SCALE_305 = DENSE)
SCALING_SETS: tuple[str, ...] = ("SCALE_29", "SPARSE", "SCALE_206", "DENSE")
SET_ALIASES = {"SCALE_104": "SPARSE", "SCALE_305": "DENSE"}
#: validation of a DENSE run: the preset's VAL cells are DENSE cells, so a fifth of the
#: training cells (drawn with the seed) validate instead
DENSE_VALIDATION = {"data.val_sites": SET_NONE, "train.val_fraction": 0.2}


@dataclass(frozen=True)
class PlannedRun:
    """One run of the benchmark: ``method`` trained on the cell set ``sites`` with ``coupling``
    (learners only) and ``seed``; ``epochs`` set only for a longer-training run (else the
    benchmark's epochs)."""

    method: str
    sites: str
    coupling: str = "direct"
    seed: int = 0
    epochs: int | None = None

    def name(self, label: str) -> str:
        """``<label>-<method>[-surrogate]-<cells>-s<seed>[-e<epochs>]`` (a valid run name)."""
        cells = SET_ALIASES.get(self.sites, self.sites).lower()
        c = "" if self.coupling == "direct" else f"-{self.coupling}"
        e = f"-e{self.epochs}" if self.epochs else ""
        return f"{label}-{self.method}{c}-{cells}-s{self.seed}{e}"

    @property
    def learner(self) -> bool:
        """Whether the method is a parameter learner (not a calibration)."""
        return VARIANTS[self.method].family == "param"

    def curve_every(self, every: int) -> int | None:
        """Which epoch checkpoints the benchmark's learning curve of this run scores: every
        ``every``-th (a longer-training run of N epochs: every max(``every``, N // 20)-th); None
        for a run without a curve (only the learners on SPARSE with seed 0 have one)."""
        if not (self.sites == "SPARSE" and self.seed == 0 and self.learner):
            return None
        return max(every, self.epochs // 20) if self.epochs else every


def plan_runs(methods=METHODS, seeds: int = 4, couplings=("direct", "surrogate"), scaling: bool = True) -> list[PlannedRun]:
    """The runs in the order they are trained: first seed 0 of everything (the table's
    SPARSE/NG/DENSE direct columns, the default-θ run, the scaling curve, the surrogate
    coupling on SPARSE), then the other seeds on SPARSE (both couplings), then on DENSE, then
    the scaling sets', so a benchmark stopped early has every number at least once and the NG
    column first.
    The surrogate coupling is run on SPARSE and DENSE, like the direct one.

    Raises:
        ValueError: an unknown method or coupling.
    """
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown SMAP benchmark methods {bad}; known: {', '.join(METHODS)}")
    bad = [c for c in couplings if c not in ("direct", "surrogate")]
    if bad:
        raise ValueError(f"unknown couplings {bad}; known: direct, surrogate")
    learners = [m for m in methods if VARIANTS[m].family == "param"]
    direct = [m for m in methods if "direct" in couplings or VARIANTS[m].family != "param"]
    sur = learners if "surrogate" in couplings else []
    out: list[PlannedRun] = []

    def add(*runs: PlannedRun):
        out.extend(r for r in runs if r not in out)

    add(*(PlannedRun(m, ts, "direct", 0) for ts in TRAIN_SETS for m in direct))
    add(PlannedRun(DEFAULT_RUN_METHOD, "DENSE"))
    if scaling and "direct" in couplings:
        add(*(PlannedRun(m, ts, "direct", 0) for ts in SCALING_SETS for m in learners))
    add(*(PlannedRun(m, "SPARSE", "surrogate", 0) for m in sur))
    add(*(PlannedRun(m, "DENSE", "surrogate", 0) for m in sur))
    for s in range(1, seeds):        # SPARSE (the SPARSE and NG columns) before DENSE
        add(*(PlannedRun(m, "SPARSE", "direct", s) for m in direct))
        add(*(PlannedRun(m, "SPARSE", "surrogate", s) for m in sur))
    for s in range(1, seeds):
        add(*(PlannedRun(m, "DENSE", "direct", s) for m in direct))
        add(*(PlannedRun(m, "DENSE", "surrogate", s) for m in sur))
    if scaling and "direct" in couplings:  # the scaling curve's other seeds come last
        for s in range(1, seeds):
            add(*(PlannedRun(m, ts, "direct", s) for ts in SCALING_SETS for m in learners))
    return out


def long_plan(methods=METHODS, epochs: int | None = None) -> list[PlannedRun]:
    """The longer-training runs: every learner of ``methods`` on SPARSE, direct, seed 0, to
    ``epochs`` (none when ``epochs`` is None). Its SPARSE and NG scores sit beside the seed-0 run
    of the table.

    Raises:
        ValueError: ``epochs`` < 1.
    """
    if epochs is None:
        return []
    if epochs < 1:
        raise ValueError(f"long_epochs must be ≥ 1, got {epochs}")
    return [PlannedRun(m, "SPARSE", "direct", 0, int(epochs)) for m in methods if VARIANTS[m].family == "param"]


def run_config(r: PlannedRun, preset: str, epochs: int | None, threads: int | None, data_root: str | None,
               surrogate: str | None, sceua_evaluations: int | None) -> dict:
    """The RunConfig dict of a planned run: the preset with this method, cells, seed and coupling."""
    calibration = VARIANTS[r.method].family == "calibration"
    coupled = r.coupling == "surrogate"
    return compose_config(preset, overrides={
        "name": r.name(preset_label(preset)), "model.variant": r.method, "data.sites": r.sites,
        "train.seed": r.seed, "data.root": str(data_root) if data_root else None,
        # a calibration is one "epoch"
        "train.epochs": 1 if calibration else (r.epochs or epochs or None),
        "train.threads": threads, "train.sceua_evaluations": sceua_evaluations,
        "model.coupling": "surrogate" if coupled else None,
        "model.surrogate": str(surrogate) if coupled and surrogate else None,
        # DENSE holds the VAL cells the preset validates on: a fifth of its own cells validate
        **(DENSE_VALIDATION if r.sites == "DENSE" else {})}, source="benchmark").to_dict()
