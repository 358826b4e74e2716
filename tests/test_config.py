"""One path from presets, config files and overrides to a RunConfig (core.training.config.
compose_config), one YAML reader for config files and run directories, and the callers that
all go through them (CLI train and jobs submit, the explorer's Launch panel, both benchmarks)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.runs import RunStore
from core.training.config import PRESETS, SET_NONE, ConfigError, RunConfig, compose_config, merge_config
from tests.conftest import needs_data


def test_a_partial_file_starts_from_the_preset_it_names(tmp_path):
    """`preset: smap` plus two train keys is the smap preset with those two changed (before,
    the file started from the defaults and failed: 'data.source caravan gives streamflow')."""
    f = tmp_path / "partial.yaml"
    f.write_text("preset: smap\ntrain: {epochs: 7, lr: 0.3}\n")
    cfg = compose_config(file=f)
    smap = compose_config("smap")
    assert (cfg.data.source, cfg.data.sites, cfg.data.test_sites) == ("smap", "SPARSE", "NG")
    assert (cfg.train.epochs, cfg.train.lr) == (7, 0.3)
    assert cfg.train.optimizer == smap.train.optimizer == "adadelta"
    assert cfg.model.variant == smap.model.variant and cfg.data.train_start == smap.data.train_start
    assert RunConfig.from_yaml(f) == cfg  # the file reader is the same path


def test_layers_preset_then_file_then_overrides(tmp_path):
    """--preset names the base of a file without one; command-line values win over both."""
    f = tmp_path / "few.yaml"
    f.write_text("train: {epochs: 3, seed: 5}\n")
    cfg = compose_config("smap", f, {"train.epochs": 9, "data.sites": "NG", "train.seed": None,
                                     "model.variant": "ffn_a"})
    assert cfg.preset == "smap" and cfg.data.source == "smap"
    assert (cfg.train.epochs, cfg.train.seed, cfg.data.sites, cfg.model.variant) == (9, 5, "NG", "ffn_a")
    # a file without a preset and no --preset: the RunConfig defaults under the file
    assert compose_config(file=f).train.epochs == 3 and compose_config(file=f).preset is None
    # SET_NONE clears a setting (None alone means "not given")
    assert compose_config("smap").data.test_sites == "NG"
    assert compose_config("smap", overrides={"data.test_sites": SET_NONE}).data.test_sites is None


def test_site_overrides_as_text_are_read_for_the_source():
    assert compose_config("demo", overrides={"data.sites": "1022500, 01031500"}).data.sites == \
        ["01022500", "01031500"]
    assert compose_config("demo", overrides={"data.sites": "12"}).data.sites == 12
    assert compose_config("demo", overrides={"data.sites": "all"}).data.sites is None
    assert compose_config("smap", overrides={"data.sites": "dense"}).data.sites == "DENSE"
    assert compose_config("smap", overrides={"data.sites": "0, 2 ,14"}).data.sites == ["0", "2", "14"]


@pytest.mark.parametrize("overrides, words", [
    ({"train.epochz": 3}, "train.epochz: unknown setting"),
    ({"optim.lr": 1.0}, "unknown setting 'optim.lr'"),
    ({"train.epochs": True}, "train.epochs"),
    ({"train.lr": float("inf")}, "train.lr"),
])
def test_bad_overrides_name_the_setting(overrides, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        compose_config("demo", overrides=overrides)


def test_a_file_naming_an_unknown_preset_is_refused(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: demo2\n")
    with pytest.raises(ConfigError, match="unknown preset 'demo2'"):
        compose_config(file=f)


def test_an_old_file_with_basins_over_a_preset_keeps_its_basins(tmp_path):
    """The older key data.basins renames to data.sites before the merge, so the preset's
    `sites: 50` cannot win over the run's own basin list."""
    f = tmp_path / "config.yaml"
    f.write_text("preset: demo\ndata: {basins: [1022500, 01031500]}\n")
    assert compose_config(file=f).data.sites == ["01022500", "01031500"]
    assert merge_config({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}, "c": 4}) == \
        {"a": {"x": 1, "y": 3}, "b": 1, "c": 4}


def test_a_run_config_is_read_by_the_same_yaml_reader(tmp_path):
    """A hand-edited config.yaml with unquoted gauge ids: Run.config() keeps them as ids (before,
    yaml.safe_load read 01022500 as the octal integer 271680)."""
    store = RunStore(tmp_path)
    run = store.create("edited")
    run.config_path.write_text("preset: demo\ndata:\n  sites: [01022500, 1031500]\n  source: caravan\n"
                               "train: {lr: 1e-3}\n")
    cfg = run.config()
    assert cfg["data"]["sites"] == ["01022500", "01031500"]
    assert cfg["train"]["lr"] == pytest.approx(1e-3)  # YAML 1.2 exponent: a number, not text
    smap = store.create("cells")
    smap.config_path.write_text("data: {source: smap, sites: [12, 0014]}\n")
    assert smap.config()["data"]["sites"] == ["12", "0014"]


def test_callers_compose_the_same_configs():
    """The benchmarks build their runs through compose_config: the preset with the run's
    variant, name, seed and cells."""
    from core.benchmarks.delta import train_config
    from core.benchmarks.smap.plan import PlannedRun, run_config

    cfg = train_config("bench432", "delta1", epochs=3, threads=None, data_root="/x")
    assert cfg == compose_config("bench432", overrides={"model.variant": "delta1", "name": "bench432-delta1",
                                                        "train.epochs": 3, "data.root": "/x"}).to_dict()
    r = run_config(PlannedRun("ffn_a", "DENSE", "surrogate", 2), "smap", None, 1, None, "/s", None)
    assert (r["model"]["variant"], r["data"]["sites"], r["train"]["seed"], r["model"]["coupling"],
            r["model"]["surrogate"], r["train"]["epochs"]) == ("ffn_a", "DENSE", 2, "surrogate", "/s",
                                                                PRESETS["smap"]["train"]["epochs"])
    cal = run_config(PlannedRun("sceua", "SPARSE", "direct", 0), "smap", 50, None, None, None, 20)
    assert cal["train"]["epochs"] == 1 and cal["train"]["sceua_evaluations"] == 20


@needs_data
@pytest.mark.data
@pytest.mark.slow
def test_cli_trains_from_a_partial_config_with_its_preset(tmp_path, data_root):
    """`hydrolens train --config partial.yaml` where the file says `preset: smap` and two train
    keys: the run's config is the smap preset with them (and the CLI's options over both)."""
    f = tmp_path / "partial.yaml"
    f.write_text("preset: smap\nmodel: {variant: ffn_a}\ntrain: {epochs: 1, lr: 0.4}\n")
    res = CliRunner().invoke(app, ["train", "--config", str(f), "--sites", "0,2,14", "--test-sites", "16",
                                   "--seed", "3", "--no-evaluate", "--no-progress", "--data-root", str(data_root),
                                   "--out", str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output
    run = RunStore(tmp_path / "runs").list()[0]
    cfg = RunConfig.from_dict(RunStore(tmp_path / "runs").get(run.run_id).config())
    assert (cfg.preset, cfg.data.source, cfg.model.variant, cfg.train.epochs, cfg.train.lr, cfg.train.seed) == \
        ("smap", "smap", "ffn_a", 1, 0.4, 3)
    assert cfg.data.sites == ["0", "2", "14"] and cfg.data.test_sites == ["16"]
    assert cfg.train.optimizer == "adadelta"


def test_a_preset_carries_settings_for_one_variant_under_the_file_and_the_overrides(tmp_path):
    """The smap preset's ``variants`` block: LSTM_Z and ParaFormer_A train with Adam (their
    validation's pick, docs/smap_tuning.md), the others with Adadelta; a config file or an
    override still wins."""
    from core.training.config import compose_config

    assert compose_config("smap").train.optimizer == "adadelta"  # ParaFormer_Z
    lz = compose_config("smap", overrides={"model.variant": "lstm_z"})
    assert (lz.train.optimizer, lz.train.lr, lz.train.grad_clip) == ("adam", 0.001, 1.0)
    assert compose_config("smap", overrides={"model.variant": "paraformer_a"}).train.lr == 0.0001
    assert compose_config("smap", overrides={"model.variant": "ffn_a"}).train.optimizer == "adadelta"
    f = tmp_path / "c.yaml"
    f.write_text("preset: smap\nmodel: {variant: lstm_z}\ntrain: {optimizer: adadelta, lr: 0.5}\n")
    assert compose_config(file=f).train.optimizer == "adadelta"
    f.write_text("preset: smap\nmodel: {variant: lstm_z}\n")
    assert compose_config(file=f).train.optimizer == "adam"
    assert compose_config(file=f, overrides={"train.lr": 0.01}).train.lr == 0.01
