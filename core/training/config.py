"""The typed run configuration (pydantic), read from and written to YAML.

Defaults follow the δ-model protocol of Feng et al. (2022): train 1981-10-01..1995-09-30 (the
Caravan series start in 1981, so the first training year acts as spin-up inside the sampled
windows), test 1995-10-01..2010-09-30 with states warmed up over the training period, batch 100
basins × (365 warm-up + 365) days, LSTM hidden 256, loss α = 0.25.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..models.registry import VARIANTS


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that keeps digit strings with a leading zero as text: YAML 1.1 would read the
    gauge id 01022500 as the octal integer 271680."""


def _int_or_gauge_id(loader, node):
    text = loader.construct_scalar(node)
    if len(text) > 1 and text.startswith("0") and text.isdigit():
        return text
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _int_or_gauge_id)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Where the data come from and which basins/periods are used."""

    root: str | None = Field(None, description="data root; None: $HYDROLENS_DATA_ROOT or ../shared/data")
    source: str = Field("caravan", description="caravan or camels_us/<daymet|maurer|maurer_extended|nldas>")
    pet: Literal["auto", "source", "oudin"] = Field(
        "auto", description="PET fed to the model: the source's own (Hargreaves for raw CAMELS-US), "
        "or Oudin (2005) from T and latitude; auto = oudin for caravan (its ERA5-Land PET is ~5x "
        "CAMELS pet_mean, see core.datasets.pet), source otherwise")

    def pet_method(self) -> str:
        """The PET method ``auto`` resolves to for this source."""
        if self.pet != "auto":
            return self.pet
        return "oudin" if self.source == "caravan" else "source"
    basins: list[str] | int | None = Field(
        None, description="gauge ids, a count n (n basins spread over CONUS), or None for all")
    train_start: dt.date = dt.date(1981, 10, 1)
    train_end: dt.date = dt.date(1995, 9, 30)
    test_start: dt.date = dt.date(1995, 10, 1)
    test_end: dt.date = dt.date(2010, 9, 30)

    @field_validator("source")
    @classmethod
    def _source(cls, v):
        from ..datasets.loader import SOURCES

        v = "camels_us/daymet" if v == "camels_us" else v
        if v not in SOURCES:
            raise ValueError(f"unknown source {v!r}; known: {', '.join(SOURCES)}")
        return v

    @field_validator("basins", mode="before")
    @classmethod
    def _basin_ids_as_text(cls, v):
        if isinstance(v, list):  # unquoted ids in YAML (11532500) arrive as integers
            return [str(b) if isinstance(b, int) and not isinstance(b, bool) else b for b in v]
        return v

    @field_validator("basins")
    @classmethod
    def _basins(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError("basins as a count must be ≥ 1")
        if isinstance(v, list):
            if not v:
                raise ValueError("basins list is empty")
            v = [str(b).strip().zfill(8) for b in v]
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
    nmul: int | None = Field(None, ge=1, description="HBV components n; None: the variant's default")
    hidden: int = Field(256, ge=1, description="LSTM hidden size")
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    engine: Literal["auto", "fused", "reference"] = Field(
        "auto", description="HBV implementation: auto (fused C++ kernel on CPU, else reference), fused, reference")

    @field_validator("variant")
    @classmethod
    def _variant(cls, v):
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
        return v


class OptimConfig(_Strict):
    """Training loop settings."""

    epochs: int = Field(50, ge=1)
    batch_size: int = Field(100, ge=1, description="basins per mini-batch")
    rho: int = Field(365, ge=1, description="days with loss per window")
    warmup: int = Field(365, ge=0, description="spin-up days per window (no loss)")
    iters_per_epoch: int | None = Field(None, ge=1, description="None: dPL rule (each day drawn with p=0.99)")
    optimizer: Literal["adadelta", "adam"] = "adadelta"
    lr: float | None = Field(None, gt=0, description="None: 1.0 for Adadelta, 1e-3 for Adam")
    alpha: float = Field(0.25, ge=0.0, le=1.0, description="weight of the low-flow term of the loss")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1, description="CPU threads; None: all cores")
    keep_checkpoints: int = Field(5, ge=1, description="epoch checkpoints kept (last.pt always)")
    eval_basin_chunk: int = Field(64, ge=1, description="basins per forward pass in evaluation")


class RunConfig(_Strict):
    """A whole run: what `hydrolens train` reads from YAML and saves as the run's config.yaml."""

    preset: str | None = None
    name: str | None = Field(None, description="run name: the suffix of the run id (A-Z a-z 0-9 _ . -, "
                             "checked when a run is created)")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: OptimConfig = OptimConfig()

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        """Read a YAML config.

        Raises:
            FileNotFoundError: no such file.
            ConfigError: invalid YAML or values (names the file and the offending fields).
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot be read as UTF-8 text ({e})") from None
        try:
            raw = yaml.load(text, Loader=_ConfigLoader)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
        if raw is None:
            raise ConfigError(f"{path}: the file is empty; expected a YAML mapping with the sections "
                              "data, model and train (e.g. `model: {variant: delta_n}`), or use --preset")
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a YAML mapping with the sections data, model and "
                              f"train; found {type(raw).__name__}")
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config") -> "RunConfig":
        """Validate a plain dict (raises ConfigError naming the fields)."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping with the sections data, model and train; "
                              f"found {type(raw).__name__}")
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            lines = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
            raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(lines)) from None

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the fields."""


PRESETS: dict[str, dict] = {
    # 50 basins spread over CONUS (15 HUC-02 regions), δn(γᵗ,βᵗ) with n = 16, so the explorer's
    # βᵗ/γᵗ traces have something to show; trains in about 4-5 min on 2 CPU cores with the fused
    # HBV (hidden 64 instead of 256 and 750 Adam steps to fit the time; dropout 0.2)
    "demo": {
        "preset": "demo",
        "data": {"basins": 50},
        "model": {"variant": "delta_n_gamma_beta", "nmul": 16, "hidden": 64, "dropout": 0.2},
        "train": {"epochs": 25, "batch_size": 50, "iters_per_epoch": 30,
                  "optimizer": "adam", "lr": 0.005},
    },
    # the paper protocol (Feng et al. 2022) on all basins of the data root (432 Caravan CAMELS
    # basins here): LSTM hidden 256, dropout 0.5, Adadelta, 50 epochs of the dPL rule, batch 100
    # basins x (365 warm-up + 365) days, loss alpha 0.25; n = the variant's default
    "paper432": {
        "preset": "paper432",
        "data": {"basins": None},
        "model": {"variant": "delta_n", "hidden": 256, "dropout": 0.5},
        "train": {"epochs": 50, "batch_size": 100, "rho": 365, "warmup": 365,
                  "optimizer": "adadelta"},
    },
    # the settings of docs/benchmark.md, identical for every variant and the LSTM: the paper's
    # data, periods, batch, windows and loss, with what fits a 2-core CPU: hidden 64, dropout
    # 0.2, Adam 0.005, epochs of 100 iterations (extend with --epochs; runs resume)
    "bench432": {
        "preset": "bench432",
        "data": {"basins": None},
        "model": {"variant": "delta_n", "hidden": 64, "dropout": 0.2},
        "train": {"epochs": 10, "iters_per_epoch": 100, "batch_size": 100, "rho": 365,
                  "warmup": 365, "optimizer": "adam", "lr": 0.005, "keep_checkpoints": 1000},
    },
}
PRESETS["camels432"] = {**PRESETS["paper432"], "preset": "camels432"}  # earlier name


def preset_config(name: str) -> RunConfig:
    """The RunConfig of a named preset.

    Raises:
        ConfigError: unknown preset (lists the known ones).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return RunConfig.from_dict(PRESETS[name], source=f"preset {name}")
