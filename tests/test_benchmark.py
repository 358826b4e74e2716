"""`hydrolens benchmark` and `hydrolens predict`: scores by hand, MODIS compositing, the whole
command on real data (train, reuse, resume), prediction on unseen basins and periods."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from core.benchmarks.delta import BenchmarkRow, render_report, report_values, target_checks, water_balance_et
from core.benchmarks.modis import modis_composites, modis_scores, read_modis
from core.jobs import JobRunner
from core.metrics import pcc
from core.runs import RunStore
from tests.conftest import needs_data, run_cli


def _et(values: dict[str, np.ndarray], start: str) -> xr.DataArray:
    n = len(next(iter(values.values())))
    time = pd.date_range(start, periods=n, freq="D")
    return xr.DataArray(np.stack(list(values.values())), dims=("site", "time"),
                        coords={"site": list(values), "time": time})


def test_modis_composites_by_hand():
    # 2000-12-20 .. 2001-01-20: composite 2000-12-18 is cut at the start and 2001-01-17 at the
    # end (dropped); 2000-12-26 is the leap year's last composite (6 days)
    n = 32
    et = _et({"A": np.ones(n), "B": np.arange(n, dtype=float)}, "2000-12-20")
    c = modis_composites(et).set_index(["site", "date"])["ET"]
    assert list(c.loc["A"].index.strftime("%Y-%m-%d")) == ["2000-12-26", "2001-01-01", "2001-01-09"]
    assert list(c.loc["A"].values) == [6.0, 8.0, 8.0]
    # B: day index 6..11 for 12-26..12-31, 12..19 for 01-01..01-08, 20..27 for 01-09..01-16
    assert list(c.loc["B"].values) == [sum(range(6, 12)), sum(range(12, 20)), sum(range(20, 28))]


def test_modis_scores_and_reader(tmp_path):
    rng = np.random.default_rng(0)
    days = 3 * 365
    et = {f"0{i}000000": 1 + i * 0.3 + np.sin(np.arange(days) / 58.0) + 0.1 * rng.random(days)
          for i in range(1, 5)}
    out = xr.Dataset({"ET": _et(et, "2001-01-01")})
    sim = modis_composites(out["ET"])
    sim["ET"] = sim["ET"] * 0.8 + rng.normal(0, 0.05, len(sim))
    sim["date"] = sim["date"].dt.strftime("%Y-%m-%d")
    sim.to_csv(tmp_path / "modis.csv", index=False)
    modis = read_modis(tmp_path / "modis.csv")
    assert modis["site"].str.len().eq(8).all()
    temporal, spatial = modis_scores(out, modis)
    assert temporal > 0.99 and spatial > 0.99
    pd.DataFrame({"site": ["1"], "time": ["2001-01-01"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="missing \\['ET', 'date'\\]"):
        read_modis(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError):
        read_modis(tmp_path / "none.csv")


def test_water_balance_and_pearson_by_hand():
    t = pd.date_range("2001-01-01", periods=4)
    ds = xr.Dataset({
        "RAIN": (("site", "time"), [[2.0, 2, 0, 0], [1, 1, 1, 1]]),
        "SNOW": (("site", "time"), [[0.0, 0, 2, 0], [0, 0, 0, 0]]),
        "Q_obs": (("site", "time"), [[1.0, np.nan, 0, 0], [0.5, 0.5, 0.5, 0.5]]),
    }, coords={"site": ["a", "b"], "time": t})
    np.testing.assert_allclose(water_balance_et(ds).values, [1.5 - 1 / 3, 0.5])
    assert pcc([1, 2, 3, np.nan], [2, 4, 6, 1], min_pairs=3) == pytest.approx(1.0)
    assert np.isnan(pcc([1, 2], [1, 2], min_pairs=3))
    assert np.isnan(pcc([1, 1, 1], [1, 2, 3], min_pairs=3))  # constant: no r


def test_target_checks_report_gaps():
    def row(v, nse, bfi=0.7):
        return BenchmarkRow(v, v, nse, 0.0, bfi, 0.0, 10, 1, 1, 0.0)
    checks = {d: (ok, val) for d, ok, val in target_checks(
        [row("delta1", 0.50), row("delta_n", 0.55), row("delta_n_gamma_beta", 0.56, 0.65), row("lstm", 0.60)])}
    assert checks["ordering δ1 < δn ≤ δn(γᵗ,βᵗ)"][0] is True
    assert checks["δn(γᵗ,βᵗ) − δ1 ≥ 0.05 median NSE"] == (True, "+0.060")
    assert checks["δn(γᵗ,βᵗ) within 0.03 median NSE of the LSTM"][0] is False
    assert checks["BFI spatial r ≥ 0.6 for δn(γᵗ,βᵗ)"][0] is True
    # the paper-protocol targets
    assert checks["δn(γᵗ,βᵗ) median test NSE ≥ 0.62"] == (False, "0.560")
    assert checks["LSTM median test NSE ≥ 0.65"] == (False, "0.600")
    assert dict((d, ok) for d, ok, _ in target_checks([row("lstm", 0.66)]))["LSTM median test NSE ≥ 0.65"] is True
    # an under-trained LSTM far below the δ model is not "within 0.03" either
    checks = {d: ok for d, ok, _ in target_checks([row("delta_n_gamma_beta", 0.56), row("lstm", 0.50)])}
    assert checks["δn(γᵗ,βᵗ) within 0.03 median NSE of the LSTM"] is False


def test_report_template_shows_settings_results_targets_and_curves():
    """The report (templates/benchmark.md.j2) from synthetic rows: the settings of the config,
    the results table with the MODIS columns, the targets, the notes as the Discussion, the
    learning curves and the figure links under the image prefix."""
    from core.training.config import preset_config

    def row(v, label, nse):
        return BenchmarkRow(v, label, nse, nse - 0.05, 0.7, 0.8, 432, 10, 1000, 1.5, 0.71, float("nan"), "bf16")

    rows = [row("delta1", "δ1", 0.60), row("delta_n_gamma_beta", "δn(γᵗ,βᵗ)", 0.68), row("lstm", "LSTM", 0.72)]
    curve = pd.DataFrame({"epoch": [1, 2, 3], "loss": [1.0, 0.5, 0.25], "test_median_nse": [0.3, np.nan, 0.6]})
    cfg = preset_config("bench432").to_dict()
    runs = {r.variant: SimpleNamespace(run_id=f"run-{r.variant}") for r in rows}
    values = report_values("bench432", rows, {r.variant: curve for r in rows}, runs, cfg, True,
                           "hydrolens benchmark --preset bench432", "  **Why.** Because.\n\n")
    text = render_report(values, "img/bench432_")
    assert text.startswith("# Benchmark: the δ family and the LSTM on 432 basins (`bench432`)\n\n")
    assert text.endswith("Runs: `run-delta1`, `run-delta_n_gamma_beta`, `run-lstm`\n")
    assert "```bash\nhydrolens benchmark --preset bench432\n```" in text
    assert (f"- windows: batch {cfg['train']['batch_size']} basins × ({cfg['train']['warmup']} warm-up + "
            f"{cfg['train']['rho']}) days;") in text
    assert f"{cfg['train']['iters_per_epoch']} iterations per epoch" in text
    assert "| model | median NSE | median KGE | BFI r | ET r (P − Q) | MODIS ET r (temporal, median) |" in text
    assert "| δ1 | 0.600 | 0.550 | 0.700 | 0.800 | 0.710 | – | 0.640 | 432 | 1000 | bf16 | 1.50 |" in text
    assert "| δn(γᵗ,βᵗ) within 0.03 median NSE of the LSTM | LSTM − δn(γᵗ,βᵗ) = +0.040 | no |" in text
    assert "| BFI spatial r ≥ 0.6 for δn(γᵗ,βᵗ) | r = 0.700 | yes |" in text
    assert "\n## Targets\n\n| target | measured | met |\n|---|---|---|\n" in text
    assert "\n\n## Discussion\n\n**Why.** Because.\n\n## Learning curves\n\n" in text
    assert "![NSE CDF](img/bench432_nse_cdf.png)" in text and "](img/bench432_learning_curve.png)" in text
    assert "| model | epoch 1 | epoch 2 | epoch 3 |\n|---|---|---|---|\n| δ1 loss | 1.000 | 0.500 | 0.250 |" in text
    assert "| LSTM test median NSE | 0.300 | – | 0.600 |" in text
    # no notes: no Discussion; no MODIS, no dPL iteration count; the report directory's own links
    cfg["train"]["iters_per_epoch"] = None
    text = render_report(report_values("bench432", rows[:1], {"delta1": curve}, runs, cfg, False), "")
    assert "## Discussion" not in text and "MODIS" not in text and "dPL-rule iterations per epoch" in text
    assert "hydrolens benchmark --preset bench432\n```" in text and "![NSE CDF](nse_cdf.png)" in text
    # δ1 alone: no target names only it, and the page says so instead of an empty table
    assert ("## Targets\n\nNone of the benchmark's targets (core/benchmarks/delta.py, `target_checks`) names "
            "only these models.\n\n## Learning curves") in text


def test_a_models_own_settings_are_named_in_the_report():
    """paper432 trains the LSTM at neuralhydrology's settings (its variants block), so the report
    does not claim identical settings: it names the LSTM's own; bench432's models share theirs."""
    from core.benchmarks.delta import setting_differences, train_config
    from core.training.config import preset_config

    rows = [BenchmarkRow(v, label, 0.5, 0.5, 0.6, 0.8, 432, 10, 1000, 1.0, float("nan"), float("nan"))
            for v, label in (("delta_n_gamma_beta", "δn(γᵗ,βᵗ)"), ("lstm", "LSTM"))]
    paper = {r.variant: train_config("paper432", r.variant, None, None, None) for r in rows}
    lines = setting_differences(rows, paper)
    assert lines == ["LSTM: dropout 0.4, initial forget-gate bias 3.0, optimiser adam, lr 0.001, lr stepping "
                     "down to 0.0005 at epoch 21, 0.0001 at epoch 41, gradient norm clipped at 1.0"]
    assert setting_differences(rows, {r.variant: train_config("bench432", r.variant, None, None, None)
                                      for r in rows}) == []
    curve = pd.DataFrame({"epoch": [1], "loss": [1.0], "test_median_nse": [0.5]})
    runs = {r.variant: SimpleNamespace(run_id=f"run-{r.variant}") for r in rows}
    cfg = preset_config("paper432").to_dict()
    text = render_report(report_values("paper432", rows, {r.variant: curve for r in rows}, runs, cfg, False,
                                       differences=lines), "")
    assert "## Settings\n\n- data:" in text and "identical for every model" not in text
    assert "optimiser adadelta (lr 1.0, the default);" in text  # paper432 leaves Adadelta's rate unset
    assert ("seed 0;\n- where a model's own settings differ from these (the preset's per-model settings):\n"
            f"  - {lines[0]}.\n\n## Results") in text
    text = render_report(report_values("paper432", rows, {r.variant: curve for r in rows}, runs, cfg, False), "")
    assert "## Settings (identical for every model)" in text and "seed 0.\n\n## Results" in text


@needs_data
@pytest.mark.data
def test_benchmark_command_trains_reuses_and_resumes(tmp_path, data_root):
    cfg = {
        "data": {"root": str(data_root), "basins": ["01022500", "02064000", "06431500", "12025000"]},
        "model": {"hidden": 8, "dropout": 0.0},
        "train": {"epochs": 2, "iters_per_epoch": 2, "batch_size": 4, "rho": 60, "warmup": 30,
                  "optimizer": "adam", "lr": 0.01, "threads": 1},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    store = tmp_path / "runs"
    args = ["benchmark", "--preset", str(tmp_path / "tiny.yaml"), "--variants", "delta1,lstm",
            "--out", str(store), "--curve-every", "1", "--jobs", "2", "--doc", str(tmp_path / "doc" / "b.md")]
    p = run_cli(*args, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    table = pd.read_csv(store / "benchmarks" / "tiny" / "table.csv")
    assert list(table["variant"]) == ["delta1", "lstm"]
    d1, lstm = table.iloc[0], table.iloc[1]
    assert np.isfinite(d1["median_NSE"]) and np.isfinite(d1["BFI_r"]) and np.isfinite(d1["ET_r_P_minus_Q"])
    assert np.isnan(lstm["BFI_r"]) and np.isfinite(lstm["median_NSE"])
    assert d1["steps"] == 4 and d1["basins"] == 4
    for f in ("nse_cdf.png", "learning_curve.png", "report.md", "table.md"):
        assert (store / "benchmarks" / "tiny" / f).stat().st_size > 200, f
    curve = pd.read_csv(store / "benchmarks" / "tiny" / "learning_curve_delta1.csv")
    assert list(curve["epoch"]) == [1, 2] and curve["test_median_nse"].notna().all()
    # the curves were jobs of the runner's queue, each after its run's training
    jobs = sorted(JobRunner(store).jobs(pump=False), key=lambda j: j.job_id)
    curve_jobs = [j for j in jobs if j.args[0] == "learning-curve"]
    assert len(curve_jobs) == 2 and all(j.state == "done" for j in curve_jobs)
    for cj in curve_jobs:
        trained = next(j for j in jobs if j.args[0] == "train" and j.run_id == cj.run_id)
        assert cj.info["started"] >= trained.info["ended"]
    # the last checkpoint's curve point is the run's own evaluation
    runs = {r.name: r for r in RunStore(store).list()}
    assert curve["test_median_nse"].iloc[-1] == pytest.approx(runs["tiny-delta1"].median_nse, abs=1e-6)
    doc = (tmp_path / "doc" / "b.md").read_text()
    assert "| δ1 |" in doc and "| LSTM |" in doc and "img/b_nse_cdf.png" in doc
    assert (tmp_path / "doc" / "img" / "b_nse_cdf.png").exists()
    # the results beside the doc, for a script: one row per run, the columns the issue names
    res = pd.read_csv(tmp_path / "doc" / "b.csv")
    assert list(res.columns) == ["model", "conventions", "updates", "hidden", "precision", "wall_s",
                                 "median_nse", "median_kge", "bfi_r"]
    assert list(res["model"]) == ["delta1", "lstm"] and list(res["updates"]) == [4, 4]
    assert list(res["hidden"]) == [8, 8] and set(res["conventions"]) == {"hydrolens"}
    assert set(res["precision"]) <= {"fp32", "bf16"} and (res["wall_s"] >= 0).all() and res["wall_s"].notna().all()
    assert res["median_nse"].iloc[0] == pytest.approx(d1["median_NSE"]) and np.isnan(res["bfi_r"].iloc[1])

    # report only: reuses the runs, trains nothing
    ids = sorted(r.run_id for r in RunStore(store).list())
    p = run_cli("benchmark", "--preset", str(tmp_path / "tiny.yaml"), "--variants", "delta1,lstm",
                "--out", str(store), "--no-train")
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(r.run_id for r in RunStore(store).list()) == ids
    # more epochs: the same runs are resumed
    p = run_cli(*args[:5], "--out", str(store), "--epochs", "3", "--curve-every", "1", timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    infos = RunStore(store).list()
    assert sorted(r.run_id for r in infos) == ids and all(r.epochs_done == 3 for r in infos)
    # unknown variant: a clear error
    p = run_cli("benchmark", "--preset", "bench432", "--variants", "delta9", "--out", str(store))
    assert p.returncode == 2 and "unknown variants ['delta9']" in p.stderr


@needs_data
@pytest.mark.data
def test_predict_unseen_basin_and_period(trained_run, data_root):
    trained = set(trained_run.config()["data"]["sites"])
    unseen = next(b for b in ("01022500", "02064000", "06431500", "12025000", "09447800") if b not in trained)
    store = trained_run.path.parent
    p = run_cli("predict", trained_run.run_id, "--out", str(store), "--data-root", str(data_root),
                "--basins", unseen, "--start", "2005-01-01", "--end", "2006-12-31", "--name", "unseen")
    assert p.returncode == 0, p.stdout + p.stderr
    out = trained_run.path / "predictions" / "unseen"
    sim = xr.open_dataset(out / "outputs.nc")
    try:
        assert list(sim.site.values) == [unseen]
        assert str(sim.time.values[0])[:10] == "2005-01-01" and sim.sizes["time"] == 730
        assert np.isfinite(sim["Q_sim"]).all() and (sim["Q_sim"] >= 0).all()
    finally:
        sim.close()
    m = pd.read_csv(out / "metrics.csv", dtype={"site": str})
    assert m["n_obs"].iloc[0] > 600 and np.isfinite(m["NSE"].iloc[0])
    assert "median NSE" in p.stdout
    p = run_cli("predict", trained_run.run_id, "--out", str(store), "--data-root", str(data_root),
                "--basins", "99999999")
    assert p.returncode == 2 and "99999999" in p.stderr


def test_learning_curve_figure_script_draws_and_tables_a_runs_checkpoints(trained_run, tmp_path):
    """scripts/learning_curve_figure.py (docs/demo_tuning.md's curve): the one-epoch run's only
    checkpoint is its final model, so the curve's test median NSE equals the run's own; a
    directory that is not a run is named, without a traceback."""
    import shutil
    import subprocess
    import sys

    from conftest import REPO

    run_dir = tmp_path / "store" / trained_run.run_id      # a copy: the curve caches into the run
    shutil.copytree(trained_run.path, run_dir)
    png, csv = tmp_path / "curve.png", tmp_path / "curve.csv"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "learning_curve_figure.py"), str(run_dir),
                           "--every", "1", "--png", str(png), "--csv", str(csv)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert png.stat().st_size > 10_000
    curve = pd.read_csv(csv)
    assert list(curve.columns) == ["run", "epoch", "updates", "loss", "test_median_nse"]
    assert curve["epoch"].tolist() == [1]
    assert curve["test_median_nse"].iloc[0] == pytest.approx(trained_run.metrics()["NSE"].median(), abs=1e-4)
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "learning_curve_figure.py"), str(tmp_path),
                          "--png", str(png)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_learning_curve_steps_are_each_runs_own_updates():
    """Two runs with different iterations per epoch on one figure: each curve's x is its own
    updates column; a curve without it falls back to epoch x iters."""
    from core.benchmarks.figures import curve_steps

    a = pd.DataFrame({"epoch": [1, 2], "updates": [57, 114]})
    b = pd.DataFrame({"epoch": [1, 2], "updates": [135, 270]})
    assert list(curve_steps(a, 135)) == [57, 114] and list(curve_steps(b, 57)) == [135, 270]
    assert list(curve_steps(pd.DataFrame({"epoch": [1, 3]}), 100)) == [100, 300]
    assert list(curve_steps(pd.DataFrame({"epoch": [1, 2], "updates": [50, None]}), 60)) == [60, 120]
