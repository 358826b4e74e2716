"""The bad-input corpus: malformed, missing, mislabelled and implausible data files, bad configs,
corrupt run directories and hostile names, each run through the real CLI.

Every case asserts the exit code, that the message names the file or field at fault, that no
Python traceback reaches the user, and that nothing already written changed (SHA-256 of every
file of the data root and of the run store, before and after; ``.lock`` files excluded: they
are lock handles, not results). The data are copies of real Caravan / CAMELS-US files from the
shared data root, corrupted in a temporary folder; nothing is written into the shared data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import netCDF4
import numpy as np
import pytest
from typer.testing import CliRunner

from core.cli import app
from tests.conftest import REPO, needs_data

pytestmark = [needs_data, pytest.mark.data]

BASINS = ("01022500", "01031500", "01047000")
RAW_BASINS = ("01022500", "01547700", "02064000", "03015500")
CARAVAN_DIR = Path("caravan") / "timeseries" / "netcdf" / "camels"

TINY = {
    "data": "{basins: [%s], train_start: 1990-10-01, train_end: 1992-09-30, "
            "test_start: 1992-10-01, test_end: 1993-09-30}" % ", ".join(BASINS),
    "model": "{variant: delta_n, nmul: 2, hidden: 8}",
    "train": "{epochs: 1, batch_size: 3, iters_per_epoch: 2, warmup: 60, rho: 120, optimizer: adam}",
}


def digest(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (symlinks followed), ``.lock`` excluded."""
    out = {}
    for root in roots:
        if not root.exists():
            continue
        for p in [root] if root.is_file() else sorted(root.rglob("*")):
            if p.is_file() and p.name != ".lock":
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass
class Ctx:
    """One case's sandbox: a data root of copied real files, a run store, a config file."""

    tmp: Path
    shared: Path
    trained: Path
    data: Path = field(init=False)
    store: Path = field(init=False)

    def __post_init__(self):
        self.data = self.tmp / "data"
        self.store = self.tmp / "runs"
        cdir = self.data / CARAVAN_DIR
        cdir.mkdir(parents=True)
        for b in BASINS:
            shutil.copy(self.shared / CARAVAN_DIR / f"camels_{b}.nc", cdir / f"camels_{b}.nc")
        (self.data / "camels_us").mkdir()
        os.symlink(self.shared / "camels_us" / "camels_attributes_v2.0",
                   self.data / "camels_us" / "camels_attributes_v2.0")

    def nc(self, basin: str = BASINS[0]) -> Path:
        return self.data / CARAVAN_DIR / f"camels_{basin}.nc"

    def edit(self, basin: str, fn: Callable[[netCDF4.Dataset], None]) -> None:
        """Change a copied Caravan file in place with netCDF4 (packing applied by the library)."""
        with netCDF4.Dataset(self.nc(basin), "r+") as nc:
            fn(nc)

    def scale(self, var: str, factor: float = 1.0, offset: float = 0.0, basin: str = BASINS[0]) -> None:
        def fn(nc):
            v = nc[var]
            v[:] = v[:] * factor + offset
        self.edit(basin, fn)

    def config(self, **sections: str) -> Path:
        text = "\n".join(f"{k}: {v}" for k, v in {**TINY, **sections}.items() if v is not None) + "\n"
        path = self.tmp / "cfg.yaml"
        path.write_text(text)
        return path

    def train(self, **sections: str) -> list[str]:
        return ["train", "--config", str(self.config(**sections)), "--data-root", str(self.data),
                "--out", str(self.store), "--no-progress"]

    def run(self) -> str:
        """A copy of the session's trained run in this case's store; returns its id."""
        dst = self.store / self.trained.name
        if not dst.exists():
            shutil.copytree(self.trained, dst, ignore=shutil.ignore_patterns(".lock"))
        return dst.name

    def raw_root(self, forcing: str = "daymet") -> None:
        """Copy the raw CAMELS-US forcing and streamflow of the 4 basins into the root."""
        for sub in (f"basin_mean_forcing/{forcing}", "usgs_streamflow"):
            shutil.copytree(self.shared / "camels_us" / sub, self.data / "camels_us" / sub)


def raw_config(ctx: Ctx, forcing: str = "daymet") -> list[str]:
    ctx.raw_root(forcing)
    cfg = ctx.tmp / "raw.yaml"
    cfg.write_text(
        "data: {source: camels_us/%s, basins: [%s], train_start: 2000-01-01, "
        "train_end: 2001-12-31, test_start: 2002-01-01, test_end: 2002-12-31}\n"
        "model: {variant: delta_n, nmul: 2, hidden: 8}\n"
        "train: {epochs: 1, batch_size: 4, iters_per_epoch: 2, warmup: 60, rho: 120, optimizer: adam}\n"
        % (forcing, ", ".join(RAW_BASINS)))
    return ["train", "--config", str(cfg), "--data-root", str(ctx.data), "--out", str(ctx.store),
            "--no-progress"]


def _first_forcing(ctx: Ctx) -> Path:
    return next((ctx.data / "camels_us" / "basin_mean_forcing" / "daymet").rglob("01022500_*.txt"))


def _first_flow(ctx: Ctx) -> Path:
    return next((ctx.data / "camels_us" / "usgs_streamflow").rglob("01022500_*.txt"))


def _replace_line(path: Path, index: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[index] = text
    path.write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------- the cases
@dataclass
class Case:
    id: str
    prepare: Callable[[Ctx], list[str]]   # corrupts what it needs, returns the CLI arguments
    expect: tuple[str, ...]               # substrings of the message ({nc}, {data}, {run} filled in)
    code: int = 2


def _set(ctx, var, index, value, basin=BASINS[0]):
    def fn(nc):
        v = nc[var]
        a = v[:]
        a[index] = value
        v[:] = a
    ctx.edit(basin, fn)


def _mask(ctx, var, sl, basin=BASINS[0]):
    def fn(nc):
        v = nc[var]
        a = np.ma.array(v[:])
        a[sl] = np.ma.masked
        v[:] = a
    ctx.edit(basin, fn)


def _dates_swapped(nc):
    d = nc["date"][:]
    d[100], d[101] = d[101], d[100]
    nc["date"][:] = d


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _bad_status(ctx):
    run = ctx.run()
    (ctx.store / run / "status.json").write_text('{"state": "done", "epoch": ')
    return ["evaluate", run, "--out", str(ctx.store)]


CASES: list[Case] = [
    # --- malformed data files
    Case("netcdf-truncated", lambda c: (_truncate(c.nc()), c.train())[1], ("{nc}", "netCDF")),
    Case("netcdf-is-text", lambda c: (c.nc().write_text("not a netCDF file\n"), c.train())[1], ("{nc}",)),
    Case("netcdf-empty", lambda c: (c.nc().write_bytes(b""), c.train())[1], ("{nc}",)),
    Case("netcdf-dates-not-increasing", lambda c: (c.edit(BASINS[0], _dates_swapped), c.train())[1],
         ("{nc}", "strictly increasing")),
    Case("netcdf-date-without-units", lambda c: (c.edit(BASINS[0], lambda nc: nc["date"].delncattr("units")),
                                                 c.train())[1], ("{nc}", "'date'", "units")),
    # --- missing
    Case("variable-missing", lambda c: (c.edit(BASINS[0], lambda nc: nc.renameVariable("streamflow", "q")),
                                        c.train())[1], ("{nc}", "streamflow")),
    Case("basin-file-missing", lambda c: (c.nc(BASINS[1]).unlink(), c.train())[1], (BASINS[1], "not found")),
    Case("unknown-basin-id", lambda c: c.train() + ["--basins", "01022500,99999999"], ("99999999",)),
    Case("attributes-folder-missing",
         lambda c: ((c.data / "camels_us" / "camels_attributes_v2.0").unlink(), c.train())[1],
         ("camels_attributes_v2.0",)),
    Case("data-root-empty", lambda c: (c.tmp.joinpath("empty").mkdir(), c.train()[:-5] +
                                       ["--data-root", str(c.tmp / "empty"), "--out", str(c.store), "--no-progress"])[1],
         ("empty", "caravan")),
    # --- mislabelled
    Case("temperature-units-kelvin-label", lambda c: (c.edit(BASINS[0], lambda nc: nc["temperature_2m_mean"]
                                                              .setncattr("units", "K")), c.train())[1],
         ("{nc}", "temperature_2m_mean", "'K'")),
    Case("streamflow-units-cfs-label", lambda c: (c.edit(BASINS[0], lambda nc: nc["streamflow"]
                                                          .setncattr("units", "ft3/s")), c.train())[1],
         ("{nc}", "streamflow", "ft3/s")),
    # --- implausible values
    Case("temperature-in-kelvin", lambda c: (c.scale("temperature_2m_mean", offset=273.15), c.train())[1],
         ("{nc}", "temperature_2m_mean", "T of basin 01022500", "degC")),
    Case("negative-precipitation", lambda c: (_set(c, "total_precipitation_sum", slice(3600, 3605), -3.0),
                                              c.train())[1],
         ("{nc}", "total_precipitation_sum", "P of basin 01022500", "on 5 day(s)", "1990-11-10")),
    Case("negative-streamflow", lambda c: (_set(c, "streamflow", slice(3700, 3702), -1.0), c.train())[1],
         ("{nc}", "streamflow", "Q of basin 01022500", "0 ≤ Q")),
    Case("precipitation-in-metres", lambda c: (c.scale("total_precipitation_sum", 0.001), c.train())[1],
         ("{nc}", "mean P of basin 01022500", "p_mean")),
    Case("pet-in-watts", lambda c: (c.scale("potential_evaporation_sum", 28.4),
                                    c.train(data=TINY["data"][:-1] + ", pet: source}"))[1],
         ("{nc}", "potential_evaporation_sum", "PET of basin 01022500")),
    Case("camels-maurer-tmax-equals-tmin", lambda c: raw_config(c, "maurer"),
         ("01022500_lump_maurer_forcing_leap.txt", "PET of basin 01022500 is 0 on every day", "pet: oudin")),
    Case("streamflow-twenty-times-too-large", lambda c: (c.scale("streamflow", 20.0), c.train())[1],
         ("{nc}", "streamflow of basin 01022500", "runoff ratio")),
    Case("forcing-gap-in-test-period", lambda c: (_mask(c, "total_precipitation_sum", slice(4400, 4410)),
                                                  c.train())[1],
         ("{nc}", "P of basin 01022500 is missing", "1993-01-18")),
    # --- raw CAMELS-US files
    Case("camels-forcing-short-line", lambda c: (lambda a: (_replace_line(_first_forcing(c), 10, "2000 1 1 12"),
                                                            a)[1])(raw_config(c)), ("01022500_lump", "line")),
    Case("camels-streamflow-not-numeric", lambda c: (lambda a: (_replace_line(_first_flow(c), 5,
                                                                              "01022500 2000 01 06 abc A"), a)[1])(raw_config(c)),
         ("01022500_streamflow_qc.txt", "non-numeric")),
    # --- bad configs
    Case("config-empty", lambda c: ["train", "--config", str((c.tmp / "e.yaml", (c.tmp / "e.yaml").write_text(""))[0]),
                                    "--out", str(c.store)], ("e.yaml", "empty")),
    Case("config-not-a-mapping", lambda c: ["train", "--config", str((c.tmp / "l.yaml", (c.tmp / "l.yaml")
                                                                      .write_text("- 1\n- 2\n"))[0]), "--out", str(c.store)],
         ("l.yaml", "mapping")),
    Case("config-invalid-yaml", lambda c: ["train", "--config", str((c.tmp / "y.yaml", (c.tmp / "y.yaml")
                                                                     .write_text("model: {variant: [\n"))[0]), "--out", str(c.store)],
         ("y.yaml", "not valid YAML")),
    Case("config-unknown-field", lambda c: c.train(model="{variant: delta_n, hiden: 8}"), ("model.hiden",)),
    Case("config-wrong-type", lambda c: c.train(train="{epochs: many}"), ("train.epochs",)),
    Case("config-unknown-variant", lambda c: c.train(model="{variant: delta_9}"), ("model.variant", "delta_9")),
    Case("config-test-end-beyond-data",
         lambda c: c.train(data=TINY["data"].replace("test_end: 1993-09-30", "test_end: 2015-09-30")),
         ("data.test_end", "2015-09-30", "2010-09-30")),
    Case("config-train-start-before-data",
         lambda c: c.train(data=TINY["data"].replace("train_start: 1990-10-01", "train_start: 1970-10-01")),
         ("data.train_start", "1970-10-01")),
    Case("config-periods-overlap",
         lambda c: c.train(data=TINY["data"].replace("test_start: 1992-10-01", "test_start: 1992-01-01")),
         ("test period",)),
    Case("config-hostile-name", lambda c: c.train() + ["--name", "../../evil"], ("name", "../../evil")),
    Case("cli-unknown-preset", lambda c: ["train", "--preset", "nope", "--out", str(c.store)], ("nope", "demo")),
    # --- corrupt run directories
    Case("resume-empty-last-pt-no-epochs", lambda c: (lambda r: (
        [p.unlink() for p in (c.store / r / "checkpoints").glob("epoch_*.pt")],
        (c.store / r / "checkpoints" / "last.pt").write_bytes(b""),
        ["train", "--resume", r, "--out", str(c.store), "--no-progress"])[2])(c.run()),
        ("last.pt", "empty", "no intact checkpoint")),
    Case("evaluate-truncated-last-pt", lambda c: (lambda r: (
        _truncate(c.store / r / "checkpoints" / "last.pt"),
        ["evaluate", r, "--out", str(c.store)])[1])(c.run()),
        ("last.pt", "not a readable checkpoint", "--resume")),
    Case("evaluate-invalid-config-yaml", lambda c: (lambda r: (
        (c.store / r / "config.yaml").write_text("model: [unclosed\n"), ["evaluate", r, "--out", str(c.store)])[1])(c.run()),
        ("config.yaml", "not valid YAML")),
    Case("evaluate-config-bad-value", lambda c: (lambda r: (
        (c.store / r / "config.yaml").write_text((c.store / r / "config.yaml").read_text()
                                                 .replace("hidden: 64", "hidden: -1").replace("hidden: 256", "hidden: -1")),
        ["evaluate", r, "--out", str(c.store)])[1])(c.run()),
        ("config.yaml", "model.hidden")),
    Case("evaluate-config-changed-architecture", lambda c: (lambda r: (
        (c.store / r / "config.yaml").write_text((c.store / r / "config.yaml").read_text()
                                                 .replace("hidden: 64", "hidden: 32").replace("hidden: 256", "hidden: 32")),
        ["evaluate", r, "--out", str(c.store)])[1])(c.run()),
        ("last.pt", "does not fit")),
    Case("evaluate-normalization-invalid", lambda c: (lambda r: (
        (c.store / r / "normalization.json").write_text('{"dynamic": {"P": {"mean": 0, "std": 0}}, "static": {}}'),
        ["evaluate", r, "--out", str(c.store)])[1])(c.run()),
        ("normalization.json", "'P'", "std")),
    Case("evaluate-status-invalid-json-still-listed", _bad_status, ("status.json",), code=0),
    Case("evaluate-wrong-data-root-leaves-done-run", lambda c: (c.tmp.joinpath("nodata").mkdir(),
                                                                ["evaluate", c.run(), "--data-root", str(c.tmp / "nodata"),
                                                                 "--out", str(c.store)])[1],
         ("nodata", "caravan")),
    # --- hostile names
    Case("evaluate-run-id-traversal", lambda c: ["evaluate", "../outside/RID", "--out", str(c.store)],
         ("invalid run id", "../outside/RID")),
    Case("evaluate-run-id-absolute", lambda c: ["evaluate", str(c.tmp / "x"), "--out", str(c.store)],
         ("invalid run id",)),
    Case("resume-run-id-dotdot", lambda c: ["train", "--resume", "..", "--out", str(c.store)], ("invalid run id", "'..'")),
    Case("predict-name-dotdot", lambda c: ["predict", c.run(), "--name", "..", "--out", str(c.store),
                                           "--basins", BASINS[0]], ("invalid prediction name", "'..'")),
    Case("predict-name-traversal", lambda c: ["predict", c.run(), "--name", "../../x", "--out", str(c.store),
                                              "--basins", BASINS[0]], ("invalid prediction name",)),
    Case("predict-period-beyond-data", lambda c: ["predict", c.run(), "--start", "2011-01-01", "--end", "2012-01-01",
                                                  "--out", str(c.store), "--basins", BASINS[0]],
         ("2011-01-01", "outside the data", "2010-09-30")),
]


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, runner, tmp_path, data_root, trained_run):
    ctx = Ctx(tmp_path, data_root, trained_run.path)
    args = case.prepare(ctx)
    before = digest(ctx.data, ctx.store)
    outside = sorted(p.name for p in tmp_path.iterdir() if p.name != "runs")
    result = runner.invoke(app, args)
    text = result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {result.exception!r}:\n{text}")
    assert "Traceback" not in text
    assert result.exit_code == case.code, text
    fill = {"nc": str(ctx.nc()), "data": str(ctx.data)}
    for want in case.expect:
        assert want.format(**fill) in text, f"{want.format(**fill)!r} not in:\n{text}"
    if case.code:
        assert text.lstrip().startswith("error:") or "\nerror:" in text
    if case.id != "evaluate-status-invalid-json-still-listed":
        assert digest(ctx.data, ctx.store) == before, "a failing command changed files already written"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "runs") == outside, \
        "something was written beside the store"


def test_corrupt_status_is_listed_and_repaired_by_evaluate(runner, tmp_path, data_root, trained_run):
    """A run with an unreadable status.json is `corrupt` in `hydrolens runs` (with the reason);
    `hydrolens evaluate` rewrites it, after which the run is `done` again."""
    ctx = Ctx(tmp_path, data_root, trained_run.path)
    rid = ctx.run()
    (ctx.store / rid / "status.json").write_text("{not json")
    res = runner.invoke(app, ["runs", "--out", str(ctx.store)])
    assert res.exit_code == 0 and "corrupt" in res.stdout and "status.json: not valid JSON" in res.stdout
    res = runner.invoke(app, ["evaluate", rid, "--out", str(ctx.store)])
    assert res.exit_code == 0, res.stdout + res.stderr
    res = runner.invoke(app, ["runs", "--out", str(ctx.store)])
    assert "done" in res.stdout and "corrupt" not in res.stdout


def test_debug_flag_shows_the_traceback(runner, tmp_path):
    (tmp_path / "e.yaml").write_text("")
    res = runner.invoke(app, ["--debug", "train", "--config", str(tmp_path / "e.yaml")])
    assert res.exception is not None and "empty" in str(res.exception)


def test_zero_byte_checkpoint_in_a_real_process_is_a_message_not_aborted(tmp_path, data_root, trained_run):
    """The console script itself: a 0-byte last.pt once printed only `Aborted.`."""
    ctx = Ctx(tmp_path, data_root, trained_run.path)
    rid = ctx.run()
    (ctx.store / rid / "checkpoints" / "last.pt").write_bytes(b"")
    before = digest(ctx.store)
    proc = subprocess.run([sys.executable, "-m", "core.cli", "evaluate", rid, "--out", str(ctx.store)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2
    assert "last.pt: empty file" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert "Aborted" not in proc.stderr
    assert digest(ctx.store) == before


def test_busy_run_names_the_process_holding_it(runner, tmp_path, data_root, trained_run):
    """A second train/evaluate/predict of a run that another process holds is refused with its pid."""
    ctx = Ctx(tmp_path, data_root, trained_run.path)
    rid = ctx.run()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from core.runs import RunLock
            with RunLock({str(ctx.store / rid)!r}, "training"):
                print("locked", flush=True)
                time.sleep(120)
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = digest(ctx.store)
        for args in (["evaluate", rid], ["train", "--resume", rid, "--no-progress"],
                     ["predict", rid, "--basins", BASINS[0]]):
            res = runner.invoke(app, [*args, "--out", str(ctx.store)])
            assert res.exit_code == 2, res.stdout + res.stderr
            assert f"run {rid} is busy (pid {holder.pid}" in res.stderr and "training" in res.stderr
        assert digest(ctx.store) == before
        res = runner.invoke(app, ["runs", "--out", str(ctx.store)])
        assert "done" in res.stdout
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the lock with the process: the run is usable again at once
    res = runner.invoke(app, ["predict", rid, "--basins", BASINS[0], "--out", str(ctx.store),
                              "--name", "after-kill"])
    assert res.exit_code == 0, res.stdout + res.stderr
    assert (ctx.store / rid / "predictions" / "after-kill" / "outputs.nc").exists()


def test_predict_names_cannot_reach_the_runs_own_results(runner, tmp_path, data_root, trained_run):
    """Every name is a folder under RUN/predictions/; the run's outputs.nc and metrics.csv stay."""
    ctx = Ctx(tmp_path, data_root, trained_run.path)
    rid = ctx.run()
    own = digest(ctx.store / rid / "outputs.nc", ctx.store / rid / "metrics.csv")
    for name in ("..", ".", "../..", "/tmp/x", "a/b", "", ".hidden", "x" * 200):
        res = runner.invoke(app, ["predict", rid, "--name", name, "--basins", BASINS[0],
                                  "--out", str(ctx.store)])
        assert res.exit_code == 2 and "invalid prediction name" in res.stderr, (name, res.stderr)
    res = runner.invoke(app, ["predict", rid, "--name", "ok.1", "--basins", BASINS[0], "--out", str(ctx.store)])
    assert res.exit_code == 0, res.stderr
    assert digest(ctx.store / rid / "outputs.nc", ctx.store / rid / "metrics.csv") == own
