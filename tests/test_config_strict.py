"""Strict config numbers that still accept what people write, and value errors of the readers
that the CLI corpus (tests/test_bad_input.py) does not reach: Caravan's attribute table."""

from __future__ import annotations

import csv
import shutil

import pytest
import yaml

from core.datasets.schema import DataFormatError
from core.training.config import PRESETS, ConfigError, RunConfig, preset_config
from tests.conftest import needs_data


def _yaml(tmp_path, text: str) -> RunConfig:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return RunConfig.from_yaml(path)


def test_numbers_people_write_are_accepted(tmp_path):
    """``lr: 1e-3`` (YAML 1.1 would read the text '1e-3') and an integer for a real (``lr: 1``)."""
    cfg = _yaml(tmp_path, "train: {optimizer: adam, lr: 1e-3, weight_decay: 1E-5, alpha: 1}\n")
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.train.weight_decay == pytest.approx(1e-5)
    assert cfg.train.alpha == 1.0
    cfg = _yaml(tmp_path, "train: {lr: 1, epochs: 3}\nmodel: {dropout: 0}\n")
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float) and cfg.train.epochs == 3
    assert _yaml(tmp_path, "data: {basins: [01022500, 1031500]}\n").data.sites == ["01022500", "01031500"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_survives_a_round_trip(name):
    """Saved configs (config.yaml of a run, job configs) are read back strictly: what to_yaml
    writes must validate again, through the plain safe_load the run store uses too."""
    cfg = preset_config(name)
    again = RunConfig.from_dict(yaml.safe_load(cfg.to_yaml()), source="saved")
    assert again == cfg


@pytest.mark.parametrize("section,text,field", [
    ("train", "{epochs: true}", "train.epochs"), ("train", "{epochs: 2.0}", "train.epochs"),
    ("train", "{lr: .inf}", "train.lr"), ("train", "{rho_adadelta: .nan}", "train.rho_adadelta"),
    ("train", "{keep_checkpoints: 2.5}", "train.keep_checkpoints"), ("model", "{nmul: false}", "model.nmul"),
    ("train", "{lr_schedule: {ten: 0.001}}", "train.lr_schedule"), ("train", "{lr_schedule: {3: -0.1}}", "train.lr_schedule"),
    ("train", "{lr_schedule: {0: 0.1}}", "train.lr_schedule"), ("model", "{forget_bias: yes}", "model.forget_bias"),
])
def test_coercions_are_refused(tmp_path, section, text, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        _yaml(tmp_path, f"{section}: {text}\n")


@pytest.mark.parametrize("kw", [{"lr": float("inf")}, {"lr": float("nan")}, {"lr": 0}, {"lr": -1e-3},
                                {"lr_min": float("inf")}, {"iters": True}, {"batch": 2.0}])
def test_surrogate_settings_are_strict(kw):
    from pydantic import ValidationError

    from core.training.surrogate_fit import SurrogateConfig

    with pytest.raises(ValidationError, match=next(iter(kw))):
        SurrogateConfig(**kw)
    assert SurrogateConfig(lr=1).lr == 1.0


@needs_data
@pytest.mark.data
@pytest.mark.parametrize("column,value,expected", [
    ("gauge_lat", "north", "'north'"), ("area", "-5", "area > 0"), ("gauge_lon", "inf", "finite"),
])
def test_caravan_attribute_values_name_file_line_column_and_gauge(tmp_path, data_root, column, value, expected):
    from core.datasets.caravan import ATTRIBUTES_FILE, read_caravan_attributes

    path = tmp_path / ATTRIBUTES_FILE
    path.parent.mkdir(parents=True)
    shutil.copy(data_root / ATTRIBUTES_FILE, path)
    path.chmod(0o644)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))  # gauge names hold commas: quoted
    row = next(i for i, r in enumerate(rows) if r[0] == "camels_01031500")
    rows[row][rows[0].index(column)] = value
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(DataFormatError) as err:
        read_caravan_attributes(tmp_path)
    msg = str(err.value)
    assert str(path) in msg and f"line {row + 1}" in msg and repr(column) in msg and "01031500" in msg
    assert expected in msg
