"""The SMAP benchmark (hydrolens benchmark --preset smap): the run plan, the Table-2 aggregation
over seeds, the target checks, the default-θ reference run, and the whole command on real cells."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_cli
from core.benchmarks.smap import (METHODS, PlannedRun, field_stats, frame_table, long_plan, long_table, plan_runs,
                                  render_report, report_values, run_config, table2, table2_table, target_checks)


def test_plan_trains_one_seed_of_everything_first_and_names_runs_uniquely():
    from core.runs.safety import validate_name

    p = plan_runs(seeds=3)
    names = [r.name("smap") for r in p]
    assert len(set(names)) == len(names)
    for n in names:
        validate_name(n, "run name")
    # seed 0 of the table's direct runs first, SPARSE then DENSE, every method
    assert p[:10] == [PlannedRun(m, ts, "direct", 0) for ts in ("SPARSE", "DENSE") for m in METHODS]
    assert p[10] == PlannedRun("vic_default", "DENSE")
    # the scaling runs reuse the SPARSE/DENSE runs: only SCALE_29 and SCALE_206 are new, 4
    # learners x 3 seeds each; the other seeds' come after everything else
    scale = [r for r in p if r.sites.startswith("SCALE")]
    assert {r.sites for r in scale} == {"SCALE_29", "SCALE_206"} and len(scale) == 24
    assert all(r.sites.startswith("SCALE") for r in p[p.index(next(r for r in scale if r.seed == 1)):])
    assert all(r.learner for r in scale) and not PlannedRun("sceua", "SPARSE").learner
    # surrogate coupling: learners on SPARSE and DENSE; later seeds: SPARSE (both couplings) before DENSE
    sur = [r for r in p if r.coupling == "surrogate"]
    assert all(r.learner for r in sur) and {(r.sites, r.seed) for r in sur} == {
        (ts, s) for ts in ("SPARSE", "DENSE") for s in range(3)}
    later = [r for r in p if r.seed > 0]
    first_dense = next(i for i, r in enumerate(later) if r.sites == "DENSE")
    assert all(r.sites == "SPARSE" for r in later[:first_dense])
    assert PlannedRun("ffn_a", "SPARSE", "surrogate", 1).name("smap") == "smap-ffn_a-surrogate-sparse-s1"
    assert PlannedRun("ffn_a", "SCALE_104").name("smap") == "smap-ffn_a-sparse-s0"
    assert len(plan_runs(["ffn_a"], seeds=1, couplings=("direct",), scaling=False)) == 3  # SPARSE, DENSE, default
    with pytest.raises(ValueError, match="unknown SMAP benchmark methods"):
        plan_runs(["delta1"])
    with pytest.raises(ValueError, match="unknown couplings"):
        plan_runs(couplings=("both",))


def test_longer_training_runs_are_the_learners_on_sparse_with_their_own_epochs():
    longer = long_plan(METHODS, 300)
    assert [r.method for r in longer] == ["ffn_a", "lstm_z", "paraformer_a", "paraformer_z"]  # no SCE-UA
    assert all((r.sites, r.coupling, r.seed, r.epochs) == ("SPARSE", "direct", 0, 300) for r in longer)
    names = {r.name("smap") for r in longer}
    assert "smap-paraformer_z-sparse-s0-e300" in names
    assert not names & {r.name("smap") for r in plan_runs()}        # never one of the table's runs
    assert long_plan(METHODS, None) == []
    with pytest.raises(ValueError, match="long_epochs"):
        long_plan(METHODS, 0)
    # its own epochs win over the benchmark's; the table's runs keep the benchmark's
    assert run_config(longer[0], "smap", 30, 1, None, None, None)["train"]["epochs"] == 300
    assert run_config(PlannedRun("ffn_a", "SPARSE"), "smap", 30, 1, None, None, None)["train"]["epochs"] == 30
    # beside the seed-0 SPARSE direct run of the table (not another seed's, not the surrogate's)
    runs = _runs_frame().assign(epochs=30, train_s=8.0)
    runs = pd.concat([runs, runs.iloc[[0]].assign(coupling="surrogate", NSE_unseen=0.9)], ignore_index=True)
    long_runs = runs.iloc[[0]].assign(epochs=300, train_s=80.0, NSE_trained=0.5, NSE_unseen=0.2)
    lt = long_table(runs, long_runs).set_index("method")
    assert lt.loc["ffn_a", "epochs_short"] == 30 and lt.loc["ffn_a", "epochs_long"] == 300
    assert lt.loc["ffn_a", "NSE_trained_short"] == pytest.approx(0.1)
    assert lt.loc["ffn_a", "NSE_unseen_short"] == pytest.approx(-0.1)
    assert lt.loc["ffn_a", "NSE_unseen_long"] == pytest.approx(0.2)
    # the report prints epoch counts as counts
    md = frame_table(lt.reset_index(), {"method": "method", "epochs_short": "epochs", "epochs_long": "epochs (long)",
                                        "NSE_unseen_long": "NG NSE (long)"}).markdown()
    assert "| FFN_A | 30 | 300 | 0.200 |" in md


def _runs_frame():
    rows = []
    for seed, (sp, ng, de) in enumerate([(0.04, 0.05, 0.03), (0.06, 0.07, 0.05)]):
        rows.append({"method": "ffn_a", "sites": "SPARSE", "coupling": "direct", "seed": seed,
                     "RMSE_trained": sp, "PCC_trained": 0.5, "NSE_trained": 0.1 * (seed + 1),
                     "RMSE_unseen": ng, "PCC_unseen": 0.4, "NSE_unseen": -0.1, "run_id": f"a{seed}"})
        rows.append({"method": "ffn_a", "sites": "DENSE", "coupling": "direct", "seed": seed,
                     "RMSE_trained": de, "PCC_trained": 0.6, "NSE_trained": 0.3, "RMSE_unseen": 0.1,
                     "PCC_unseen": 0.3, "NSE_unseen": -0.2, "run_id": f"b{seed}"})
    rows.append({"method": "sceua", "sites": "SPARSE", "coupling": "–", "seed": 0, "RMSE_trained": 0.03,
                 "PCC_trained": 0.7, "NSE_trained": 0.4, "RMSE_unseen": 0.09, "PCC_unseen": 0.5,
                 "NSE_unseen": -1.0, "run_id": "c0"})
    rows.append({"method": "vic_default", "sites": "DENSE", "coupling": "–", "seed": 0, "RMSE_trained": 0.1,
                 "PCC_trained": 0.2, "NSE_trained": -2.0, "RMSE_unseen": 0.1, "PCC_unseen": 0.2,
                 "NSE_unseen": -2.0, "run_id": "d0"})
    return pd.DataFrame(rows)


def test_table2_is_the_mean_and_sd_over_seeds_of_each_runs_median():
    t = table2(_runs_frame()).set_index("method")
    assert list(t.index) == ["sceua", "ffn_a"]            # the paper's order; the default run is not a row
    f = t.loc["ffn_a"]
    assert f["SPARSE_n"] == 2 and f["SPARSE_RMSE"] == pytest.approx(0.05)
    assert f["SPARSE_RMSE_sd"] == pytest.approx(np.std([0.04, 0.06], ddof=1))
    assert f["SPARSE_NSE"] == pytest.approx(0.15)
    # NG: the unseen cells of the SPARSE runs; DENSE: the trained cells of the DENSE runs
    assert f["NG_RMSE"] == pytest.approx(0.06) and f["NG_NSE"] == pytest.approx(-0.1)
    assert f["DENSE_RMSE"] == pytest.approx(0.04) and f["DENSE_PCC"] == pytest.approx(0.6)
    s = t.loc["sceua"]
    assert s["DENSE_n"] == 0 and np.isnan(s["DENSE_RMSE"]) and np.isnan(s["SPARSE_RMSE_sd"])
    md = table2_table(table2(_runs_frame())).markdown()
    assert "0.050 ± 0.014 / 0.500 ± 0.000 / 0.150 ± 0.071 (n=2)" in md
    assert "0.089 / 0.589 / -1.665" in md                  # the paper's SCE-UA on DAS-S8NG beside ours


def test_target_checks_read_the_runs():
    """Issue 21's targets from the runs: ParaFormer_Z's NG NSE and RMSE (median over seeds), the
    paper's NG order, DENSE ≥ SPARSE on NG per learner, the wall per run; a target whose runs
    are missing is shown on what exists and not met."""
    runs = _runs_frame().assign(train_s=600.0)
    extra = []
    for m, ng in (("lstm_z", 0.2), ("paraformer_a", 0.0), ("paraformer_z", 0.3)):
        for seed, shift in ((0, 0.0), (1, 0.04), (2, 0.02)):
            for ts in ("SPARSE", "DENSE"):
                extra.append({"method": m, "sites": ts, "coupling": "direct", "seed": seed, "RMSE_trained": 0.04,
                              "PCC_trained": 0.6, "NSE_trained": 0.2, "RMSE_unseen": 0.045 + shift / 10,
                              "PCC_unseen": 0.6, "NSE_unseen": ng + shift + (0.05 if ts == "DENSE" else 0.0),
                              "run_id": f"{m}{ts}{seed}", "train_s": 1000.0 + 500 * seed})
    # LSTM_Z through the surrogate on SPARSE: NG 0.25, 0.10, 0.15 (median 0.15, mean 0.167)
    extra += [{"method": "lstm_z", "sites": "SPARSE", "coupling": "surrogate", "seed": seed, "RMSE_trained": 0.04,
               "PCC_trained": 0.6, "NSE_trained": 0.2, "RMSE_unseen": 0.05, "PCC_unseen": 0.6, "NSE_unseen": ng,
               "run_id": f"lstm_z-sur{seed}", "train_s": 600.0} for seed, ng in ((0, 0.25), (1, 0.10), (2, 0.15))]
    runs = pd.concat([runs, pd.DataFrame(extra)], ignore_index=True)
    fstats = pd.DataFrame([{"method": "paraformer_z", "morans_I": 0.6}, {"method": "sceua", "morans_I": 0.1}])
    curve = pd.DataFrame({"method": ["ffn_a", "ffn_a", "lstm_z"], "n_train": [104, 305, 104],
                          "NSE_unseen": [0.1, 0.2, 0.3]})
    checks = {d: (v, ok) for d, v, ok in target_checks(curve, fstats, {
        "median_nse": 0.96, "median_rmse": 0.012, "median_cosine": 0.95, "iteration": 4000}, runs)}

    def check(prefix):
        return checks[next(k for k in checks if k.startswith(prefix))]

    assert check("surrogate gate")[1] is False                          # RMSE 0.012 > 0.01
    # ParaFormer_Z NG NSE over seeds 0.30, 0.34, 0.32: median 0.32 ≥ 0.30; RMSE 0.045, 0.049, 0.047 -> 0.047
    assert check("ParaFormer_Z NG median NSE") == ("0.320 (3 seeds)", True)
    assert check("ParaFormer_Z NG median RMSE") == ("0.0470 (3 seeds)", False)
    # ParaFormer_Z 0.32 > LSTM_Z 0.22 > FFN_A -0.1 > SCE-UA -1.0
    order = check("NG order")
    assert order[1] is True and "LSTM_Z 0.220 (3 seeds)" in order[0] and "SCE-UA -1.000 (1 seed)" in order[0]
    # DENSE − SPARSE on NG: +0.05 for the three, FFN_A -0.2 - (-0.1) = -0.1: not met
    dense = check("DENSE training ≥ SPARSE")
    assert dense[1] is False and "FFN_A -0.100 (2 seeds)" in dense[0] and "ParaFormer_Z +0.050" in dense[0]
    # the longest SPARSE run of each learner: 2000 s = 33.3 min > 30 min
    wall = check("a converged run of any learner")
    assert wall[1] is False and "ParaFormer_Z 33.3 min" in wall[0] and "FFN_A 10.0 min" in wall[0]
    assert check("ParaFormer_Z infiltr smoother") == ("0.600 vs 0.100", True)
    # direct against surrogate, medians over seeds like the other targets: 0.22 − 0.15
    assert check("direct coupling at least as accurate") == ("LSTM_Z +0.070 (3 seeds / 3 seeds)", True)
    # a learner with one training set has no curve yet: said so, and the target is not met
    assert check("scaling curve rises") == ("FFN_A rises, LSTM_Z one training set only", False)
    # missing runs: reported on what exists, never met
    part = runs[~((runs["method"] == "paraformer_z") & (runs["sites"] == "DENSE")) & (runs["method"] != "sceua")]
    checks = {d: (v, ok) for d, v, ok in target_checks(pd.DataFrame(), fstats, None, part)}
    assert check("NG order")[1] is False and "no run yet: SCE-UA" in check("NG order")[0]
    assert check("DENSE training ≥ SPARSE")[1] is False and "no DENSE run yet: ParaFormer_Z" in \
        check("DENSE training ≥ SPARSE")[0]


def test_report_template_places_every_section():
    """The report (templates/benchmark_smap.md.j2) from synthetic scores: settings from the
    config, the Table-2 analogue beside the paper, targets, notes, cost, the longer-training
    check, the gate line and the runs; empty scores leave their sections' placeholders."""
    from core.benchmarks.smap.score import coupling_cost
    from core.training.config import preset_config

    runs = _runs_frame().assign(epochs=30.0, updates=1620, train_s=8.0, s_per_epoch=2.5)
    t = table2(runs)
    cfg = preset_config("smap").to_dict()
    cfg["train"]["sceua_evaluations"] = 123
    curve = pd.DataFrame({"epoch": [1, 2], "loss": [0.5, 0.25], "test_median_nse": [np.nan, 0.4]})
    long_t = long_table(runs, runs.iloc[[0]].assign(epochs=300.0, NSE_unseen=0.2))
    empty = pd.DataFrame()
    values = report_values("smap", runs, t, coupling_cost(runs), pd.DataFrame(), empty, empty,
                           {"median_nse": 0.97, "iteration": 40}, [("a target", "0.1", True)], cfg,
                           "hydrolens benchmark --preset smap --seeds 2", "Notes.\n",
                           {"learning_curves": "learning_curves.png"}, {"FFN_A direct": curve}, long_t,
                           {"FFN_A direct": curve})
    text = render_report(values, "img/smap_")
    assert text.startswith("# Benchmark: ParaFormer and the dPL learners on SMAP soil moisture (`smap`)\n\n")
    assert "```bash\nhydrolens benchmark --preset smap --seeds 2\n```" in text
    assert f"- learners: at most {cfg['train']['epochs']} epochs;" in text and "at most 123 VIC runs per cell" in text
    # the couplings the runs have: direct only here
    assert "- couplings: direct (dPL: gradients through the differentiable VIC) only;" in text
    assert "- seeds: 0, 1 (n per cell in the table)" in text
    assert "| FFN_A | direct | 0.050 ± 0.014 / 0.500 ± 0.000 / 0.150 ± 0.071 (n=2) |" in text
    assert "| a target | 0.1 | yes |\n\n## Discussion\n\nNotes.\n\n## Coupling cost" in text
    assert "| FFN_A | direct | SPARSE | 2.50 |" in text
    assert ("## Data scaling (dPL; tested on NG)\n\n(no scaling runs yet)\n\n"
            "## The learned `infiltr` field\n\n\n## Evapotranspiration") in text
    assert "## Learning curves\n\n![learning curves](img/smap_learning_curves.png)\n\n" in text
    assert ("| run (SPARSE, seed 0) | epoch 2 |\n|---|---|\n"
            "| FFN_A direct NSE | 0.400 |\n| FFN_A direct loss | 0.250 |") in text
    assert "## Longer training (300 epochs, SPARSE, direct, seed 0)" in text
    assert "| run (SPARSE, seed 0, 300 epochs) | epoch 2 |" in text
    assert "Surrogate used by the surrogate coupling: gate iteration 40, median_nse 0.97.\n\n## Runs\n\n" in text
    assert text.endswith("| VIC default θ | – | DENSE | 0 | 30 | 1620 | 8.000 | 0.100 | -2.000 | -2.000 | d0 |\n")
    # nothing but the default run: no table, no notes, no gate, no curves; the report directory's links
    only = runs[runs["method"] == "vic_default"]
    text = render_report(report_values("smap", only, table2(only), coupling_cost(only), pd.DataFrame(), empty,
                                       empty, None, [], cfg))
    assert "(no runs yet)" in text and "## Discussion" not in text and "Surrogate used" not in text
    assert "```bash\nhydrolens benchmark --preset smap\n```" in text and "![" not in text
    assert "## Learning curves\n\n## Runs\n\n" in text


def test_optimiser_text_names_steps_clip_and_loss():
    from core.benchmarks.smap.score import optimiser_text
    from core.training.config import compose_config

    pz = compose_config("smap", overrides={"model.variant": "paraformer_z"}).to_dict()["train"]
    assert optimiser_text(pz) == ("adadelta (lr 0.5, then 0.25 from epoch 13, 0.1 from epoch 21, 0.05 from epoch 29, "
                                  "gradient norm clipped at 1.0; NSE* loss)")
    assert optimiser_text({"optimizer": "adam", "lr": 0.001}) == "adam (lr 0.001; masked RMSE loss)"


def test_field_stats_moran_i_separates_smooth_from_noisy_fields():
    rng = np.random.default_rng(0)
    lat, lon = np.meshgrid(np.arange(30, 45, 1.5), np.arange(-120, -80, 1.5), indexing="ij")
    lat, lon = lat.ravel(), lon.ravel()
    smooth = pd.DataFrame({"lat": lat, "lon": lon, "infiltr": (lon + 120) / 40})
    noisy = smooth.assign(infiltr=rng.uniform(0, 1, lat.size))
    flat = smooth.assign(infiltr=0.2)
    s = field_stats({"paraformer_z": smooth, "sceua": noisy, "vic_default": flat}).set_index("method")
    assert s.loc["paraformer_z", "morans_I"] > 0.8 and abs(s.loc["sceua", "morans_I"]) < 0.15
    assert np.isnan(s.loc["vic_default", "morans_I"]) and s.loc["vic_default", "max"] == pytest.approx(0.2)


def test_default_variant_gives_every_cell_the_default_theta():
    from core.models.factory import build_model
    from core.physics.vic import VIC_DEFAULT_PARAMETERS
    from core.training.config import RunConfig

    cfg = RunConfig.from_dict({"data": {"source": "smap"}, "model": {"variant": "vic_default"}})
    m = build_model(cfg.model, 0, 4)
    data = SimpleNamespace(sites=["0", "2"], site_static=np.array([[1.4, 20, 40, 0.5, 44.0, -110.0],
                                                                   [1.5, 30, 30, 0.3, 35.0, -90.0]]))
    res = m.calibrate(data, cfg)
    assert res["median_evaluations"] == 0
    out = m(None, None, torch.rand(20, 2, 3).double() * torch.tensor([5.0, 10.0, 3.0]).double(), 5,
            site_static=torch.tensor(data.site_static))
    for name, v in VIC_DEFAULT_PARAMETERS.items():
        assert torch.allclose(out.params[name], torch.tensor(v, dtype=torch.float64)), name
    with pytest.raises(ValueError, match="must be 'sceua' or 'default'"):
        type(m)(m.backbone, method="nelder")


def test_smap_benchmark_command_writes_the_table_from_its_runs(tmp_path, data_root):
    """The whole command on real cells with tiny settings: FFN_A (1 epoch) and SCE-UA (20 runs per
    cell) on SPARSE and DENSE, the default-θ run; the table holds each run's medians."""
    from core.runs import RunStore

    out, doc = tmp_path / "runs", tmp_path / "docs" / "benchmark_smap.md"
    args = ["benchmark", "--preset", "smap", "--variants", "ffn_a,sceua", "--epochs", "1", "--seeds", "1",
            "--couplings", "direct", "--no-scaling", "--sceua-evaluations", "20", "--threads", "1", "--jobs", "2",
            "--long-epochs", "2", "--out", str(out), "--data-root", str(data_root), "--doc", str(doc)]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    store = RunStore(out)
    names = sorted(i.name for i in store.list())
    assert names == ["smap-ffn_a-dense-s0", "smap-ffn_a-sparse-s0", "smap-ffn_a-sparse-s0-e2", "smap-sceua-dense-s0",
                     "smap-sceua-sparse-s0", "smap-vic_default-dense-s0"]
    table = pd.read_csv(out / "benchmarks" / "smap" / "table.csv").set_index("method")
    sparse = next(store.get(i.run_id) for i in store.list() if i.name == "smap-ffn_a-sparse-s0").metrics()
    assert table.loc["ffn_a", "SPARSE_RMSE"] == pytest.approx(sparse.loc[sparse["split"] == "trained", "RMSE"].median())
    assert table.loc["ffn_a", "NG_NSE"] == pytest.approx(sparse.loc[sparse["split"] == "unseen", "NSE"].median())
    assert (sparse["split"] == "unseen").sum() == 102
    # the scaling curve from the table's runs: medians over seeds, and what picked each model
    sc = pd.read_csv(out / "benchmarks" / "smap" / "scaling.csv").set_index("cells")
    assert list(sc["n_train"]) == [104, 305] and (sc["seeds"] == 1).all()
    assert sc.loc["SPARSE", "validation"] == "VAL cells" and sc.loc["DENSE", "validation"] == "own cells"
    assert sc.loc["SPARSE", "NSE_unseen"] == pytest.approx(table.loc["ffn_a", "NG_NSE"])
    fields = pd.read_csv(out / "benchmarks" / "smap" / "infiltr.csv").set_index("method")
    assert set(fields.index) == {"vic_default", "ffn_a", "sceua"} and (fields["cells"] == 407).all()
    assert fields.loc["vic_default", "min"] == pytest.approx(0.2)
    et = pd.read_csv(out / "benchmarks" / "smap" / "et.csv").set_index("method")
    assert np.isfinite(et.loc["sceua", "r_vs_default"]) and (et["share_ET_gt_PET"] == 0).all()
    text = doc.read_text()
    assert "| SCE-UA | – |" in text and "Moran's I" in text and "(img/benchmark_smap_infiltr_maps.png)" in text
    # settings read from the learner's run and the SCE-UA run; the learning curve's checkpoint NSE
    assert "learners: at most 1 epochs" in text and "at most 20 VIC runs per cell" in text
    # each learner's optimiser, rate steps, clipping and data loss, read from its run
    assert "optimiser FFN_A adadelta (lr 0.5, gradient norm clipped at 1.0; masked RMSE loss)" in text
    assert "loss: the data loss named with each optimiser against SMAP" in text
    assert f"| FFN_A direct NSE | {sparse.loc[sparse['split'] == 'trained', 'NSE'].median():.3f} |" in text
    assert (doc.parent / "img" / "benchmark_smap_budyko.png").stat().st_size > 10_000
    # the results beside the doc: one row per run and split, the medians of its metrics.csv
    res = pd.read_csv(doc.with_suffix(".csv"))
    assert list(res.columns) == ["method", "coupling", "train_set", "seed", "updates", "wall_s", "split",
                                 "median_nse", "median_rmse", "median_pcc", "morans_i"]
    row = res[(res["method"] == "ffn_a") & (res["train_set"] == "SPARSE") & (res["split"] == "NG")].iloc[0]
    assert row["median_nse"] == pytest.approx(sparse.loc[sparse["split"] == "unseen", "NSE"].median())
    assert row["coupling"] == "direct" and row["updates"] > 0 and row["wall_s"] > 0
    assert np.isfinite(row["morans_i"]) and -1 <= row["morans_i"] <= 1
    assert set(res.loc[res["method"] == "sceua", "coupling"]) == {"none"}
    assert (res.loc[res["method"] == "sceua", "updates"] == 0).all()
    # the longer-training run: 2 epochs, beside the 1-epoch run; not part of the table
    long_run = next(store.get(i.run_id) for i in store.list() if i.name == "smap-ffn_a-sparse-s0-e2")
    assert int(long_run.train_log()["epoch"].max()) == 2
    lm = long_run.metrics()
    lt = pd.read_csv(out / "benchmarks" / "smap" / "long.csv").set_index("method")
    assert lt.loc["ffn_a", "epochs_short"] == 1 and lt.loc["ffn_a", "epochs_long"] == 2
    assert lt.loc["ffn_a", "NSE_unseen_long"] == pytest.approx(lm.loc[lm["split"] == "unseen", "NSE"].median())
    assert table.loc["ffn_a", "SPARSE_n"] == 1
    assert "## Longer training (2 epochs, SPARSE, direct, seed 0)" in text
    assert (doc.parent / "img" / "benchmark_smap_learning_curves_long.png").exists()
    # the learning curves of the two seed-0 SPARSE learner runs were jobs of the runner's queue
    from core.jobs import JobRunner

    curve_jobs = [j for j in JobRunner(store).jobs(pump=False) if j.args[0] == "learning-curve"]
    assert len(curve_jobs) == 2 and all(j.state == "done" for j in curve_jobs)
    assert sorted(j.args[j.args.index("--every") + 1] for j in curve_jobs) == ["5", "5"]
    # scripts/smap_tuning_table.py (docs/smap_tuning.md, docs/smap_cells.csv) reads the same runs
    import subprocess
    import sys
    from pathlib import Path

    ids = {i.name: i.run_id for i in store.list()}
    dirs = [out / ids["smap-ffn_a-sparse-s0"], out / ids["smap-ffn_a-dense-s0"]]
    script = Path(__file__).resolve().parents[1] / "scripts" / "smap_tuning_table.py"
    proc = subprocess.run([sys.executable, str(script), *map(str, dirs), "--csv", str(tmp_path / "cells.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cells = pd.read_csv(tmp_path / "cells.csv").set_index("train_cells")
    assert list(cells.index) == [104, 305] and list(cells["val_cells"]) == [100, 61]
    assert list(cells["validation"]) == ["VAL cells, NSE", "0.2 of training cells, NSE"]
    assert cells.loc[104, "test_ng_median_nse"] == pytest.approx(table.loc["ffn_a", "NG_NSE"], abs=5e-4)
    # a second call trains nothing and rewrites the report from the same runs
    again = run_cli(*args[:-2], "--no-train")
    assert again.returncode == 0 and "training" not in again.stdout
    assert len(store.list()) == 6
