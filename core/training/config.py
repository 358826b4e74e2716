"""The typed run configuration (pydantic), read from and written to YAML.

Defaults follow the δ-model protocol of Feng et al. (2022): train 1981-10-01..1995-09-30 (the
Caravan series start in 1981, so the first training year acts as spin-up inside the sampled
windows), test 1995-10-01..2010-09-30 with states warmed up over the training period, batch 100
basins × (365 warm-up + 365) days, LSTM hidden 256, loss α = 0.25.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from ..datasets.loader import SOURCES, parse_sites, site_kind_of
from ..datasets.schema import pad_gauge_id
from ..models.registry import VARIANTS, get_variant
from ..runs.io import load_yaml, yaml_error_text
from .tasks import SOURCE_TASKS


def _digits_as_int(v):
    """Digit text as its integer: the loader keeps ``010`` as text (a gauge id has leading zeros),
    which for an integer setting means 10, as before."""
    return int(v) if isinstance(v, str) and re.fullmatch(r"\s*[+-]?\d+\s*", v) else v


#: An integer setting. Strict: YAML ``true`` or ``2.5``/``2.0`` is refused (pydantic's lax mode
#: would read them as 1 and 2 and train one epoch without a word); digit text (``010``) is read.
Int = Annotated[int, BeforeValidator(_digits_as_int), Field(strict=True)]
#: A real-valued setting: an integer is fine (``lr: 1``); a bool, a text, ``.inf`` or ``.nan`` is not.
Real = Annotated[float, Field(strict=True, allow_inf_nan=False)]
#: A learning rate: finite and > 0.
LearningRate = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: Default periods per data source where they differ from the δ-model protocol: SMAP covers
#: 2015-04..2017-03 only (docs/paraformer_vic.md section 2).
SOURCE_PERIODS: dict[str, dict[str, str]] = {
    "smap": {"train_start": "2015-04-01", "train_end": "2016-03-31",
             "test_start": "2016-04-01", "test_end": "2017-03-31"},
}


class DataConfig(_Strict):
    """Where the data come from, which sites (basins or grid cells) and periods, and what is
    learned: the target variable and the learner's per-day inputs."""

    root: str | None = Field(None, description="data root; None: $HYDROLENS_DATA_ROOT or ../shared/data")
    source: str = Field("caravan", description="caravan, camels_us/<daymet|maurer|maurer_extended|nldas> "
                        "(streamflow at basins) or smap (SMAP soil moisture on NLDAS-2 grid cells)")
    pet: Literal["auto", "source", "oudin"] = Field(
        "auto", description="PET fed to the model: the source's own (Hargreaves for raw CAMELS-US), "
        "or Oudin (2005) from T and latitude; auto = oudin for caravan (its ERA5-Land PET is ~5x "
        "CAMELS pet_mean, see core.datasets.pet), source otherwise")

    def pet_method(self) -> str:
        """The PET method ``auto`` resolves to for this source."""
        if self.pet != "auto":
            return self.pet
        return "oudin" if self.source == "caravan" else "source"
    sites: list[str] | Annotated[int, Field(strict=True)] | str | None = Field(
        None, validation_alias=AliasChoices("sites", "basins"),
        description="site ids (gauge ids or SMAP cell ids), a count n (n basins spread over CONUS), "
        "a named cell set of the source (SMAP: SPARSE, DENSE, NG, VAL, ALL, SCALE_29..SCALE_305), or None "
        "or 'all' for all; `basins` is accepted as an older name")
    test_sites: list[str] | str | None = Field(
        None, description="sites never trained on, also simulated and scored on the test period "
        "(e.g. NG for a SMAP run trained on SPARSE); their metrics are marked split=unseen")
    val_sites: list[str] | str | None = Field(
        None, description="sites scored over the training period after each validation epoch to pick "
        "the run's model and stop early (train.val_metric), never trained on and never a test site "
        "(SMAP: VAL for a run trained on SPARSE or a smaller set); training sites among them are "
        "dropped. None: validate on train.val_fraction of the training sites")
    target: str | None = Field(None, description="the observed variable trained on; None: the "
                               "source's (Q for streamflow sources, smap_am for smap)")
    inputs: list[str] | None = Field(None, description="per-day learner inputs (data variables); None: "
                                     "the task's (P, T, PET; plus the target with a mask for smap)")
    train_start: dt.date = dt.date(1981, 10, 1)
    train_end: dt.date = dt.date(1995, 9, 30)
    test_start: dt.date = dt.date(1995, 10, 1)
    test_end: dt.date = dt.date(2010, 9, 30)

    @field_validator("source")
    @classmethod
    def _source(cls, v):
        v = "camels_us/daymet" if v == "camels_us" else v
        if v not in SOURCES:
            raise ValueError(f"unknown source {v!r}; known: {', '.join(SOURCES)}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _source_periods(cls, raw):
        """Periods left out take the source's defaults (SMAP: 2015-16 train, 2016-17 test)."""
        if isinstance(raw, dict):
            src = str(raw.get("source", "")).strip().lower()
            for k, v in SOURCE_PERIODS.get(src, {}).items():
                raw = {**raw, k: raw.get(k, v)}
        return raw

    @field_validator("train_start", "train_end", "test_start", "test_end", mode="before")
    @classmethod
    def _date(cls, v):
        """A date is a YAML date or the text YYYY-MM-DD; anything else is named as such (pydantic
        alone would read a number as seconds since 1970 or say 'invalid character in year')."""
        if isinstance(v, dt.date) or (isinstance(v, str) and _DATE_TEXT.fullmatch(v.strip())):
            return v.strip() if isinstance(v, str) else v
        raise ValueError(f"expected a date YYYY-MM-DD (year first, e.g. 1995-10-01); found {v!r}")

    @field_validator("sites", "test_sites", "val_sites", mode="before")
    @classmethod
    def _site_ids_as_text(cls, v):
        if isinstance(v, (bool, float)):
            raise ValueError(f"expected a list of site ids, a count (an integer ≥ 1) or the name of a "
                             f"cell set; found {v!r}")
        if isinstance(v, list):  # unquoted ids in YAML (11532500) arrive as integers
            return [str(b) if isinstance(b, int) and not isinstance(b, bool) else b for b in v]
        return v

    @field_validator("sites", "test_sites", "val_sites")
    @classmethod
    def _sites(cls, v, info: ValidationInfo):
        grid = site_kind_of(info.data.get("source", "")) == "grid_cell"
        if isinstance(v, int) and v < 1:
            raise ValueError("sites as a count must be ≥ 1")
        if isinstance(v, str):
            if not grid:
                if v.strip().lower() == "all":
                    return None  # every basin of the data root, as `--sites all`
                digits = v.strip().isdigit()
                hint = (f" (one gauge id goes in a list: [{v.strip()}])" if digits and len(v.strip()) > 4 else
                        f" (a count is written without quotes: {v.strip()})" if digits else "")
                raise ValueError(f"{v!r}: named site sets exist for source smap only; give gauge ids "
                                 f"or a count{hint}")
            return v.strip().upper()
        if isinstance(v, list):
            if not v:
                raise ValueError("the site list is empty")
            # gauge ids are 8 characters, zero-padded; grid-cell ids are kept as given
            v = [str(b).strip() if grid else pad_gauge_id(b) for b in v]
            twice = sorted({b for b in v if v.count(b) > 1})
            if twice:
                raise ValueError(f"site {twice[0]} is listed more than once; each site may appear once")
        return v

    @model_validator(mode="after")
    def _periods(self):
        if not self.train_start < self.train_end:
            raise ValueError(f"train_start {self.train_start} must be before train_end {self.train_end}")
        if not self.test_start < self.test_end:
            raise ValueError(f"test_start {self.test_start} must be before test_end {self.test_end}")
        if self.test_start <= self.train_end:
            raise ValueError(f"test period ({self.test_start}) must start after the training period "
                             f"ends ({self.train_end})")
        return self


class ModelConfig(_Strict):
    """Which δ variant and how big."""

    variant: str = "delta_n"
    nmul: Int | None = Field(None, ge=1, description="HBV components n; None: the variant's default")
    hidden: Int = Field(256, ge=1, description="LSTM hidden size")
    dropout: Real = Field(0.5, ge=0.0, lt=1.0)
    conventions: Literal["hydrolens", "feng2022"] = Field(
        "hydrolens", description="δ models: how the warm-up hands over to the window. hydrolens: "
        "the window's parameters spin up, routing takes the last 14 warm-up days as history, no "
        "soil-moisture floor (mass balance closes exactly); feng2022 (Feng et al.'s release, "
        "hydrodl2): the learner's output on the last warm-up day spins up, routing starts from zero, "
        "SM floored at 1e-5 mm (runs the reference HBV loop). docs/models.md, Conventions")
    warmup_grad: bool = Field(False, description="δ models: back-propagate through the warm-up year too "
                              "(False: the HBV warm-up runs without gradient, as hydrodl2, and g_A's "
                              "LSTM without a graph, truncating its back-propagation at the window: "
                              "1.6x faster fp32 paper432 steps)")
    forget_bias: Real | None = Field(None, description="initial forget-gate bias of the LSTM learners "
                                     "(the δ models' g_A and the LSTM baseline; neuralhydrology's "
                                     "initial_forget_bias, 3 in its CAMELS configs); None: PyTorch's init")
    engine: Literal["auto", "fused", "compiled", "reference"] = Field(
        "auto", description="process-model implementation: auto (fused C++ kernel where no gradient "
        "is needed, else the fastest differentiable one), fused, compiled (VIC: torch.compile), reference")
    coupling: Literal["direct", "surrogate"] = Field(
        "direct", description="parameter learners: train through the differentiable process model "
        "itself (dPL, direct) or through the frozen LSTM surrogate (Li & Lu 2023); testing always "
        "runs the process model")
    surrogate: str | None = Field(None, description="surrogate job folder (`hydrolens surrogate`) for "
                                  "coupling=surrogate; None: <runs root>/surrogates/default")
    param_bound: Literal["rbl", "sigmoid"] = Field(
        "rbl", description="parameter learners: how the raw output is bounded to the ranges: rbl (the "
        "range-boundary loss on the raw output, then a clamp; Li & Lu 2023 eq. 13-14) or sigmoid "
        "(hydrodl2's change_param_range; no boundary loss)")
    z_window: Int = Field(240, ge=1, description="days of forcing/SMAP history a Z-learner reads "
                          "(Li & Lu 2023: 240)")
    resid_moist: Real = Field(0.0, ge=0.0, lt=0.2, description="VIC-type model: residual moisture of "
                              "every soil layer (m3/m3; VIC's resid_moist, 0 in VIC 4): evaporation, drainage "
                              "and baseflow leave it in the layer")

    @model_validator(mode="after")
    def _surrogate_vic(self):
        if self.coupling == "surrogate" and self.resid_moist:
            raise ValueError("model.resid_moist must be 0 with coupling: surrogate (the surrogate "
                             "learned the VIC without residual moisture); use coupling: direct")
        return self

    @field_validator("variant")
    @classmethod
    def _variant(cls, v):
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
        return v


class OptimConfig(_Strict):
    """Training loop settings."""

    epochs: Int = Field(50, ge=1)
    batch_size: Int = Field(100, ge=1, description="basins per mini-batch")
    rho: Int = Field(365, ge=1, description="days with loss per window")
    warmup: Int = Field(365, ge=0, description="spin-up days per window (no loss)")
    iters_per_epoch: Int | None = Field(None, ge=1, description="None: dPL rule (each day drawn with p=0.99)")
    optimizer: Literal["adadelta", "adam"] = "adadelta"
    lr: LearningRate | None = Field(None, description="None: 1.0 for Adadelta, 1e-3 for Adam")
    rho_adadelta: Real = Field(0.9, gt=0, lt=1, description="Adadelta's ρ (Li & Lu 2023: 0.95)")
    weight_decay: Real = Field(0.0, ge=0, description="L2 weight decay (Li & Lu 2023: 1e-5)")
    loss: Literal["auto", "rmse_comb", "masked_rmse", "nse_star"] = Field(
        "auto", description="training loss: rmse_comb (Feng et al. 2022 eq. 1-2, streamflow), "
        "masked_rmse (RMSE over the valid days, Li & Lu 2023 eq. 13, soil moisture), nse_star "
        "(Kratzert et al. 2019 eq. 2: squared errors over (s_b + 0.1)², s_b the site's training "
        "standard deviation) plus the model's own term (the range-boundary loss); auto: the task's")
    lr_schedule: dict[Annotated[int, Field(strict=True, ge=1)], Annotated[Real, Field(gt=0)]] | None = Field(
        None, description="learning rate by epoch, {first epoch: lr} (neuralhydrology's "
        "learning_rate: {1: 0.001, 11: 0.0005, 26: 0.0001}); epochs before the first key use "
        "train.lr. None: train.lr throughout")

    @field_validator("lr_schedule", mode="before")
    @classmethod
    def _epoch_keys(cls, v):
        """Epoch keys are integers; a saved config (YAML/JSON) may carry them as digit strings."""
        if isinstance(v, dict):
            out = {}
            for k, lr in v.items():
                if isinstance(k, str) and k.strip().isdigit():
                    k = int(k)
                if isinstance(k, bool) or not isinstance(k, int):
                    raise ValueError(f"expected epoch numbers (integers ≥ 1) as keys; found {k!r}")
                out[k] = lr
            return out
        return v
    alpha: Real = Field(0.25, ge=0.0, le=1.0, description="weight of the low-flow term of the loss")

    def initial_lr(self) -> float:
        """The rate training starts from: ``lr``, else the optimiser's default (1.0 for Adadelta,
        1e-3 for Adam)."""
        return self.lr or (1.0 if self.optimizer == "adadelta" else 1e-3)

    seed: Int = Field(0, ge=0, le=2**32 - 1, description="random seed (numpy takes 0 .. 2**32 - 1)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: Int | None = Field(None, ge=1, description="CPU threads; None: all cores")
    keep_checkpoints: Int = Field(5, ge=1, description="epoch checkpoints kept (last.pt always)")
    sceua_evaluations: Int = Field(5000, ge=10, description="SCE-UA: at most this many model runs per "
                                   "site (Li & Lu 2023 baseline; 5 complexes)")
    eval_basin_chunk: Int = Field(64, ge=1, description="basins per forward pass in evaluation")
    val_fraction: Real = Field(0.0, ge=0.0, lt=1.0, description="fraction of the training sites held "
                               "out (drawn with the seed) to validate on over the training period; 0: none")
    val_every: Int = Field(1, ge=1, description="epochs between two validations")
    patience: Int | None = Field(None, ge=1, description="stop after this many validations without a "
                                 "better validation score (val_metric); None: train every epoch. The best "
                                 "validated epoch (checkpoints/best.pt) is the run's model either way")
    val_metric: Literal["loss", "NSE"] = Field(
        "loss", description="what picks the best epoch and stops early: the validation sites' pooled "
        "data loss (lower is better), or their median NSE (higher is better; the figure the benchmarks "
        "report, robust to a few badly fitted sites)")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "fp32", description="the learners' arithmetic: bf16 autocast (the process models, routing and "
        "loss stay fp32) where the CPU has bf16 units (AMX, avx512_bf16) or on CUDA; auto: bf16 there, "
        "else fp32")
    nproc: Int = Field(1, ge=1, description="data-parallel ranks (torch.distributed through torchrun: "
                       "gloo on CPU, nccl on CUDA); each draws its share of every mini-batch's sites, "
                       "rank 0 writes the run. The batch must divide by it")
    grad_clip: Real | None = Field(None, gt=0, description="clip the gradient norm to this value before "
                                   "each step; None: no clipping")


class RunConfig(_Strict):
    """A whole run: what `hydrolens train` reads from YAML and saves as the run's config.yaml."""

    preset: str | None = None
    name: str | None = Field(None, description="run name: the suffix of the run id (A-Z a-z 0-9 _ . -, "
                             "checked when a run is created)")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: OptimConfig = OptimConfig()

    @model_validator(mode="after")
    def _variant_fits_data(self):
        v = get_variant(self.model.variant)
        task = SOURCE_TASKS.get(self.data.source, "streamflow")
        if v.task != task:
            hint = ("source: smap" if v.task == "soil_moisture" else "a streamflow source (caravan, camels_us)")
            raise ValueError(f"model.variant {v.name} ({v.label}) learns {v.task.replace('_', ' ')}; "
                             f"data.source {self.data.source} gives {task.replace('_', ' ')}: use {hint}")
        if self.train.nproc > 1 and self.train.batch_size % self.train.nproc:
            raise ValueError(f"train.batch_size {self.train.batch_size} must divide by train.nproc "
                             f"{self.train.nproc} (every rank takes an equal share of each mini-batch)")
        if self.data.val_sites is not None and self.train.val_fraction > 0:
            raise ValueError(f"data.val_sites ({self.data.val_sites}) and train.val_fraction "
                             f"({self.train.val_fraction}) both name validation sites: set one, the "
                             "other to null / 0")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        """Read a YAML config: over the preset it names (``preset: smap``), if any, so a partial
        file changes only what it names (``compose_config(file=path)``).

        Raises:
            FileNotFoundError: no such file.
            ConfigError: invalid YAML or values (names the file and the offending fields).
        """
        return compose_config(file=path)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config") -> "RunConfig":
        """Validate a plain dict (raises ConfigError naming the fields)."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping with the sections data, model and train; "
                              f"found {type(raw).__name__}")
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            lines = [_error_line(err) for err in e.errors()]
            raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(lines)) from None

    def run_name(self) -> str:
        """The default run name: ``name``, else ``<preset>-<variant>``, else the variant."""
        return self.name or (f"{self.preset}-{self.model.variant}" if self.preset else self.model.variant)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the fields."""


def _error_line(err: dict) -> str:
    """One pydantic error as ``section.field: what was expected; found <value>``."""
    field = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    if err["type"] == "value_error":  # our own validators' messages already say what was found
        msg = msg.removeprefix("Value error, ")
    elif err["type"] == "extra_forbidden":
        msg = "unknown setting (not a field of this section; check the spelling)"
    elif isinstance(err.get("input"), (bool, int, float, str, dt.date)):
        msg += f"; found {err['input']!r}"
    return f"{field}: {msg}" if field else msg


PRESETS: dict[str, dict] = {
    # every basin of the data root (432 Caravan CAMELS basins here; dPL's skill grows with the
    # sites it trains on), δn(γᵗ,βᵗ) with n = 16, so the explorer's βᵗ/γᵗ traces have something
    # to show; the NSE* loss (each basin's squared error over its own variance, so dry basins
    # count as much as wet ones; chosen on held-out years, docs/demo_tuning.md); 1500 Adam steps
    # of 50 basins at hidden 64, dropout 0.2: about 3 min of training on 2 CPU cores
    "demo": {
        "preset": "demo",
        "data": {"sites": None},
        "model": {"variant": "delta_n_gamma_beta", "nmul": 16, "hidden": 64, "dropout": 0.2},
        "train": {"epochs": 50, "batch_size": 50, "iters_per_epoch": 30,
                  "optimizer": "adam", "lr": 0.005, "loss": "nse_star"},
    },
    # the paper protocol (Feng et al. 2022) on all basins of the data root (432 Caravan CAMELS
    # basins here): LSTM hidden 256, dropout 0.5, Adadelta, batch 100 basins x (365 warm-up +
    # 365) days, loss alpha 0.25, n = the variant's default; the paper's update count, about 10k
    # (50 epochs of 200 iterations: the dPL rule gives 257 for 432 basins x 14 years), the
    # learner in bf16 where the CPU has it (docs/performance.md: 0.52 s a step, so ~90 min a
    # run on 2 cores). The LSTM baseline at neuralhydrology's CAMELS settings (as nh_lstm, below):
    # hidden 256, forget-gate bias 3, output dropout 0.4, Adam 1e-3 stepping down, clip 1
    "paper432": {
        "preset": "paper432",
        "data": {"sites": None},
        "model": {"variant": "delta_n", "hidden": 256, "dropout": 0.5},
        "train": {"epochs": 50, "iters_per_epoch": 200, "batch_size": 100, "rho": 365, "warmup": 365,
                  "optimizer": "adadelta", "precision": "auto", "keep_checkpoints": 1000},
        "variants": {"lstm": {"model": {"dropout": 0.4, "forget_bias": 3.0},
                              "train": {"optimizer": "adam", "lr": 0.001, "grad_clip": 1.0,
                                        "lr_schedule": {21: 0.0005, 41: 0.0001}}}},
    },
    # the settings of docs/benchmark.md, identical for every variant and the LSTM: the paper's
    # data, periods, batch, windows and loss, with what fits a 2-core CPU: hidden 64, dropout
    # 0.2, Adam 0.005, epochs of 100 iterations (extend with --epochs; runs resume)
    "bench432": {
        "preset": "bench432",
        "data": {"sites": None},
        "model": {"variant": "delta_n", "hidden": 64, "dropout": 0.2},
        "train": {"epochs": 10, "iters_per_epoch": 100, "batch_size": 100, "rho": 365,
                  "warmup": 365, "optimizer": "adam", "lr": 0.005, "keep_checkpoints": 1000},
    },
}
PRESETS["camels432"] = {**PRESETS["paper432"], "preset": "camels432"}  # earlier name
# the LSTM baseline at neuralhydrology's CAMELS settings (examples/06-Finetuning/531_basins.yml;
# Kratzert et al. 2019): hidden 256, initial forget-gate bias 3, output dropout 0.4, Adam 1e-3
# stepping down to 5e-4 and 1e-4, gradient-norm clip 1, batch 256; the paper protocol's data,
# periods, 365-day windows after a 365-day warm-up and loss (train.loss: nse_star for NSE*)
PRESETS["nh_lstm"] = {
    "preset": "nh_lstm",
    "data": {"sites": None},
    "model": {"variant": "lstm", "hidden": 256, "dropout": 0.4, "forget_bias": 3.0},
    "train": {"epochs": 30, "batch_size": 256, "rho": 365, "warmup": 365, "optimizer": "adam",
              "lr": 0.001, "lr_schedule": {11: 0.0005, 26: 0.0001}, "grad_clip": 1.0,
              "keep_checkpoints": 1000},
}
# SMAP soil moisture with the VIC-type model (Li & Lu 2023; docs/benchmark_smap.md): train on the
# SPARSE cells in 2015-04..2016-03 (the states spun up by cycling that year), test on 2016-04..
# 2017-03 on SPARSE and on the unseen NG cells. Mini-batches as hydroDL's optTrainSMAP: 100 cells
# x 30-day windows, each after a 366-day spin-up without loss or gradient, the dPL rule's
# iterations per epoch. The VAL cells (r and c odd: neither SPARSE nor NG) validate after every
# epoch, and the epoch with their highest median NSE is the run's model (patience 10). The doc's
# Adadelta (lr 0.5, ρ 0.95, weight decay 1e-5) with the gradient norm clipped at 1 and the learner
# in bf16 where the CPU has it (both chosen on the VAL cells: docs/smap_tuning.md)
PRESETS["smap"] = {
    "preset": "smap",
    "data": {"source": "smap", "sites": "SPARSE", "test_sites": "NG", "val_sites": "VAL"},
    "model": {"variant": "paraformer_z", "hidden": 256, "dropout": 0.5, "engine": "auto"},
    "train": {"epochs": 100, "batch_size": 100, "rho": 30, "warmup": 366,
              "optimizer": "adadelta", "lr": 0.5, "rho_adadelta": 0.95, "weight_decay": 1e-5,
              "grad_clip": 1.0, "precision": "auto",
              "val_fraction": 0.0, "val_metric": "NSE", "patience": 10, "keep_checkpoints": 1000,
              "eval_basin_chunk": 512},
    # the optimiser each learner's validation picked (docs/smap_tuning.md): Adadelta + clip for
    # FFN_A and ParaFormer_Z (above; ParaFormer_Z's rate stepping down 0.5 -> 0.25 -> 0.1 ->
    # 0.05 and its loss NSE*), Adam + clip for LSTM_Z and ParaFormer_A
    "variants": {"paraformer_z": {"train": {"lr_schedule": {13: 0.25, 21: 0.1, 29: 0.05}, "loss": "nse_star"}},
                 "lstm_z": {"train": {"optimizer": "adam", "lr": 0.001}},
                 "paraformer_a": {"train": {"optimizer": "adam", "lr": 0.0001}}},
}


def preset_config(name: str) -> RunConfig:
    """The RunConfig of a named preset (``compose_config(name)``).

    Raises:
        ConfigError: unknown preset (lists the known ones).
    """
    return compose_config(name)


def is_config_file(preset: str | Path | None) -> bool:
    """Whether a ``--preset`` value names a YAML config file rather than a preset."""
    return preset is not None and str(preset).endswith((".yaml", ".yml"))


def _preset_dict(name: str) -> dict:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def read_config_file(path: str | Path) -> dict:
    """A YAML config file as a plain mapping (not validated yet): the reader of
    ``RunConfig.from_yaml`` and :func:`compose_config`.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: not UTF-8, not valid YAML, empty, or not a mapping (names the file).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read as UTF-8 text ({e})") from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {yaml_error_text(e)}") from None
    if raw is None:
        raise ConfigError(f"{path}: the file is empty; expected a YAML mapping with the sections "
                          "data, model and train (e.g. `model: {variant: delta_n}`), or use --preset")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a YAML mapping with the sections data, model and "
                          f"train; found {type(raw).__name__}")
    return raw


def _canonical_keys(raw: dict) -> dict:
    """``raw`` with each section's older key names (validation aliases: ``data.basins``) renamed
    to the field's name, so that merging a file over a preset cannot leave both."""
    out = dict(raw)
    for section, field in RunConfig.model_fields.items():
        model = field.annotation
        if not isinstance(out.get(section), dict) or not isinstance(model, type) or not issubclass(model, BaseModel):
            continue
        sec = dict(out[section])
        for name, f in model.model_fields.items():
            aliases = getattr(f.validation_alias, "choices", ())
            for alias in aliases:
                if alias != name and alias in sec:
                    value = sec.pop(alias)
                    sec.setdefault(name, value)
        out[section] = sec
    return out


def merge_config(base: dict, patch: dict) -> dict:
    """``patch`` laid over ``base``: sections (mappings) merge key by key, any other value
    replaces the base's. Neither argument is changed."""
    out = dict(base)
    for k, v in patch.items():
        out[k] = merge_config(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


#: An override value that sets a setting to None (a plain None in ``overrides`` means "not given").
SET_NONE = type("SetNone", (), {"__repr__": lambda self: "SET_NONE"})()


def compose_config(preset: str | Path | None = None, file: str | Path | None = None,
                   overrides: dict | None = None, *, source: str = "command line") -> RunConfig:
    """The one way a RunConfig is made from a preset, a config file and overrides: used by
    ``hydrolens train`` (and ``--resume``), ``hydrolens jobs submit``, the explorer's Launch
    panel and both benchmarks.

    Layers, each over the one before:

    1. the preset: ``preset`` if given, else the one the file names (``preset: smap``), else the
       RunConfig defaults, with the preset's own settings for the resulting variant (its
       ``variants`` block) laid over it. ``preset`` may also be a YAML file (then it is the file);
    2. the config file's values (a partial file changes only what it names);
    3. ``overrides``: dotted keys (``{"train.epochs": 5, "data.root": "/data"}``); a value of
       None means "not given" and is skipped (``SET_NONE`` sets a None). ``data.sites`` / ``data.test_sites`` given as text
       (``"50"``, ``"all"``, ``"01022500,01031500"``, ``"SPARSE"``) are read for the resulting
       data source (:func:`core.datasets.loader.parse_sites`).

    The result is validated once (periods left out take the source's defaults).

    Raises:
        ConfigError: unknown preset, a bad file, an unknown override key, or invalid values
            (names the fields and where they came from).
        FileNotFoundError: the config file does not exist.
    """
    if is_config_file(preset):
        if file is not None:
            raise ConfigError(f"give a config file once: preset {preset} and file {file}")
        preset, file = None, preset
    raw = _canonical_keys(read_config_file(file)) if file is not None else {}
    name = preset or raw.get("preset")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{file}: preset: expected a preset name ({', '.join(PRESETS)}), got {name!r}")
    given = {k: None if v is SET_NONE else v for k, v in (overrides or {}).items() if v is not None}
    base = dict(_preset_dict(name)) if name else {}
    # the preset's settings for one variant (``variants``), under the file and the overrides
    by_variant = base.pop("variants", {})
    variant = (given.get("model.variant") or (raw.get("model") or {}).get("variant")
               or (base.get("model") or {}).get("variant"))
    if variant in by_variant:
        base = merge_config(base, by_variant[variant])
    cfg = merge_config(base, raw) if name else dict(raw)
    if preset:
        cfg["preset"] = preset
    where = " + ".join(str(x) for x in (f"preset {name}" if name else None, file) if x) or "defaults"
    for key, value in given.items():
        parts = key.split(".")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] not in ("data", "model", "train")):
            raise ConfigError(f"{source}: unknown setting {key!r}; expected name, preset or "
                              "data.<field>, model.<field>, train.<field>")
        if len(parts) == 2:
            cfg[parts[0]] = {**(cfg.get(parts[0]) or {}), parts[1]: value}
        else:
            cfg[key] = value
    data = cfg.get("data") or {}
    for key in ("sites", "test_sites", "val_sites"):
        if isinstance(given.get(f"data.{key}"), str):
            data = {**data, key: parse_sites(given[f"data.{key}"], str(data.get("source", "caravan")))}
    if data:
        cfg["data"] = data
    return RunConfig.from_dict(cfg, source=f"{where} + {source}" if given else where)
