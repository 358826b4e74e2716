"""The bad-input corpus: malformed, missing, mislabelled and implausible data files, values in
them that are not numbers, bad configs (wrong types, non-finite rates, dates the wrong way round),
command-line numbers out of range, corrupt run directories and hostile names, each run through
the real CLI.

Every case asserts the exit code, that the message names the file or field at fault, that no
Python traceback reaches the user, and that nothing already written changed (SHA-256 of every
file of the data root and of the run store, before and after; ``.lock`` files excluded: they
are lock handles, not results). The data are copies of real Caravan / CAMELS-US files from the
shared data root, corrupted in a temporary folder; nothing is written into the shared data.
"""

from __future__ import annotations

import hashlib
import os
import re
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


def _setting(section: str, key: str, value: str) -> Callable[[Ctx], list[str]]:
    """Train with TINY whose ``section`` has ``key: value`` (YAML text), replaced or added."""
    text = TINY[section]
    if re.search(rf"\b{key}: ", text):
        text = re.sub(rf"\b{key}: [^,}}]+", f"{key}: {value}", text)
    else:
        text = text[:-1] + f", {key}: {value}}}"
    return lambda c: c.train(**{section: text})


def _data(old: str, new: str) -> Callable[[Ctx], list[str]]:
    """Train with TINY whose data section has ``old`` replaced by ``new``."""
    assert old in TINY["data"], old
    return lambda c: c.train(data=TINY["data"].replace(old, new))


def _config_text(text: str) -> Callable[[Ctx], list[str]]:
    """Train with a config file of exactly ``text``."""
    def prepare(ctx: Ctx) -> list[str]:
        path = ctx.tmp / "cfg.yaml"
        path.write_text(text)
        return ["train", "--config", str(path), "--data-root", str(ctx.data), "--out", str(ctx.store),
                "--no-progress"]
    return prepare


def _attribute_file(ctx: Ctx, part: str) -> Path:
    """``camels_<part>.txt`` of a private copy of the CAMELS attribute folder (Ctx links the shared
    one, which must never be written)."""
    folder = ctx.data / "camels_us" / "camels_attributes_v2.0"
    if folder.is_symlink():
        folder.unlink()
        shutil.copytree(ctx.shared / "camels_us" / "camels_attributes_v2.0", folder)
        folder.chmod(0o755)
        for p in folder.iterdir():
            p.chmod(0o644)
    return folder / f"camels_{part}.txt"


def _attribute(part: str, gauge: str, column: str, value: str) -> Callable[[Ctx], list[str]]:
    """Train after setting ``column`` of ``gauge`` in camels_<part>.txt to the text ``value``."""
    def prepare(ctx: Ctx) -> list[str]:
        path = _attribute_file(ctx, part)
        lines = path.read_text().splitlines()
        j = lines[0].split(";").index(column)
        i = next(i for i, line in enumerate(lines) if line.startswith(gauge + ";"))
        cells = lines[i].split(";")
        cells[j] = value
        lines[i] = ";".join(cells)
        path.write_text("\n".join(lines) + "\n")
        return ctx.train()
    return prepare


def _attribute_rows(part: str, fn: Callable[[list[str]], list[str]]) -> Callable[[Ctx], list[str]]:
    """Train after rewriting the lines of camels_<part>.txt with ``fn``."""
    def prepare(ctx: Ctx) -> list[str]:
        path = _attribute_file(ctx, part)
        path.write_text("\n".join(fn(path.read_text().splitlines())) + "\n")
        return ctx.train()
    return prepare


def _raw(fn: Callable[[Ctx], Path], index: int, edit: Callable[[str], str]) -> Callable[[Ctx], list[str]]:
    """A raw CAMELS-US training whose file ``fn(ctx)`` has line ``index`` (0-based) rewritten."""
    def prepare(ctx: Ctx) -> list[str]:
        args = raw_config(ctx)
        path = fn(ctx)
        _replace_line(path, index, edit(path.read_text().splitlines()[index]))
        return args
    return prepare


def _fields(line: str, index: int, value: str) -> str:
    """``line`` (whitespace-separated) with field ``index`` replaced by ``value``."""
    cells = line.split()
    cells[index] = value
    return " ".join(cells)


def _text_variable(nc: netCDF4.Dataset, name: str) -> None:
    """Replace a numeric variable by a text one of the same name and dims (a broken export)."""
    dims = nc[name].dimensions
    shape = nc[name].shape
    nc.renameVariable(name, f"{name}_old")
    v = nc.createVariable(name, str, dims)
    v[:] = np.full(shape, "1.5", dtype=object)


#: a data root that does not exist: a command that should have been refused and was not ends fast
#: (no surrogate fit, benchmark or background job on the real data)
NO_DATA = ("--data-root", "/nonexistent/hydrolens-data")

SMAP_CFG = ("data: {source: smap, sites: ['0', '2', '14']}\n"
            "model: {variant: ffn_a, hidden: 8}\n"
            "train: {epochs: 1, iters_per_epoch: 1, warmup: 30, rho: 60, batch_size: 3}\n")


def _smap(edit: Callable[[netCDF4.Dataset], None]) -> Callable[[Ctx], list[str]]:
    """A SMAP training on a copy of the SMAP file changed by ``edit``."""
    def prepare(ctx: Ctx) -> list[str]:
        path = ctx.data / "smap_conus" / "smap_nldas_conus_412.nc"
        path.parent.mkdir()
        shutil.copy(ctx.shared / "smap_conus" / "smap_nldas_conus_412.nc", path)
        path.chmod(0o644)
        with netCDF4.Dataset(path, "r+") as nc:
            edit(nc)
        return _config_text(SMAP_CFG)(ctx)
    return prepare


def _smap_set(var: str, index: int, value) -> Callable[[netCDF4.Dataset], None]:
    def edit(nc):
        a = nc[var][:]
        a[index] = value
        nc[var][:] = a
    return edit


# ----------------------------------------------------------------------------------- the cases
@dataclass
class Case:
    id: str
    prepare: Callable[[Ctx], list[str]]   # corrupts what it needs, returns the CLI arguments
    expect: tuple[str, ...]               # substrings of the message ({nc}, {data}, {run} filled in)
    code: int = 2
    one_line: bool = False                # the whole message is one line `error: ...` (usage errors)


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
    # --- strictly typed config values: no bool -> int, no float -> int, finite rates > 0
    Case("config-epochs-true", _setting("train", "epochs", "true"),
         ("cfg.yaml", "train.epochs", "valid integer", "found True")),
    Case("config-epochs-fractional", _setting("train", "epochs", "2.5"), ("cfg.yaml", "train.epochs", "found 2.5")),
    Case("config-epochs-whole-float", _setting("train", "epochs", "2.0"), ("cfg.yaml", "train.epochs", "found 2.0")),
    Case("config-iters-yes", _setting("train", "iters_per_epoch", "yes"),  # YAML 1.1: yes is true
         ("train.iters_per_epoch", "valid integer", "found True")),
    Case("config-batch-size-zero", _setting("train", "batch_size", "0"),
         ("train.batch_size", "greater than or equal to 1", "found 0")),
    Case("config-lr-inf", _setting("train", "lr", ".inf"), ("cfg.yaml", "train.lr", "finite number", "found inf")),
    Case("config-lr-nan", _setting("train", "lr", ".nan"), ("cfg.yaml", "train.lr", "finite number", "found nan")),
    Case("config-lr-zero", _setting("train", "lr", "0"), ("cfg.yaml", "train.lr", "greater than 0", "found 0")),
    Case("config-lr-negative", _setting("train", "lr", "-1e-3"), ("train.lr", "greater than 0", "found -0.001")),
    Case("config-lr-text", _setting("train", "lr", "fast"), ("train.lr", "valid number", "found 'fast'")),
    Case("config-lr-bool", _setting("train", "lr", "true"), ("train.lr", "valid number", "found True")),
    Case("config-weight-decay-negative", _setting("train", "weight_decay", "-1e-5"),
         ("train.weight_decay", "greater than or equal to 0", "found -1e-05")),
    Case("config-alpha-inf", _setting("train", "alpha", ".inf"), ("train.alpha", "finite number")),
    Case("config-seed-negative", _setting("train", "seed", "-1"), ("train.seed", "greater than or equal to 0")),
    Case("config-unknown-optimizer", _setting("train", "optimizer", "sgd"),
         ("train.optimizer", "'adadelta' or 'adam'", "found 'sgd'")),
    Case("config-hidden-true", _setting("model", "hidden", "true"), ("model.hidden", "valid integer", "found True")),
    Case("config-nmul-fractional", _setting("model", "nmul", "1.5"), ("model.nmul", "valid integer", "found 1.5")),
    Case("config-dropout-nan", _setting("model", "dropout", ".nan"), ("model.dropout", "finite number")),
    Case("config-variant-learns-soil-moisture", _setting("model", "variant", "paraformer_z"),
         ("model.variant paraformer_z", "soil moisture", "source: smap")),
    Case("config-unknown-source", _setting("data", "source", "camels"), ("data.source", "'camels'", "caravan")),
    # --- sites and periods a new user gets wrong
    Case("config-sites-count-zero", _data("basins: [%s]" % ", ".join(BASINS), "basins: 0"),
         ("data.sites", "count must be ≥ 1")),
    Case("config-sites-true", _data("basins: [%s]" % ", ".join(BASINS), "basins: true"),
         ("data.sites", "found True")),
    Case("config-basin-listed-twice", _data(BASINS[1], BASINS[0]), ("data.sites", BASINS[0], "more than once")),
    Case("config-one-gauge-not-a-list", _data("basins: [%s]" % ", ".join(BASINS), f"basins: {BASINS[0]}"),
         ("data.sites", f"[{BASINS[0]}]")),
    Case("config-date-day-first", _data("train_start: 1990-10-01", "train_start: 01-10-1990"),
         ("data.train_start", "YYYY-MM-DD", "'01-10-1990'")),
    Case("config-date-impossible", _data("test_end: 1993-09-30", "test_end: 1993-02-30"),
         ("data.test_end", "valid date", "'1993-02-30'")),
    Case("config-date-a-number", _data("train_start: 1990-10-01", "train_start: 19901001"),
         ("data.train_start", "YYYY-MM-DD", "19901001")),
    Case("config-test-before-train",
         _data("train_start: 1990-10-01, train_end: 1992-09-30, test_start: 1992-10-01, test_end: 1993-09-30",
               "train_start: 1991-10-01, train_end: 1993-09-30, test_start: 1990-10-01, test_end: 1991-09-30"),
         ("data", "test period (1990-10-01) must start after the training period ends (1993-09-30)")),
    Case("config-train-end-before-start", _data("train_end: 1992-09-30", "train_end: 1989-09-30"),
         ("train_start 1990-10-01 must be before train_end 1989-09-30",)),
    # --- config files that are not what they should be
    Case("config-section-is-a-list", lambda c: c.train(train="[1, 2]"), ("cfg.yaml", "train", "valid dictionary")),
    Case("config-yaml-is-a-scalar", _config_text("delta_n\n"), ("cfg.yaml", "mapping", "found str")),
    Case("config-tab-indentation", _config_text("train:\n\tepochs: 1\n"),
         ("cfg.yaml", "not valid YAML", "line 2", "tabs")),
    Case("config-key-twice", _config_text(f"data: {TINY['data']}\nmodel: {TINY['model']}\n"
                                          "train: {epochs: 1, batch_size: 3, epochs: 5}\n"),
         ("cfg.yaml", "'epochs' appears twice", "line 3")),
    # --- numbers on the command line: typer's min=/max=, one line, nothing started
    Case("cli-epochs-zero", lambda c: c.train() + ["--epochs", "0"],
         ("--epochs", "greater than or equal to 1"), one_line=True),
    Case("cli-epochs-fractional", lambda c: c.train() + ["--epochs", "2.5"], ("--epochs", "valid integer"),
         one_line=True),
    Case("cli-threads-zero", lambda c: c.train() + ["--threads", "0"], ("--threads",), one_line=True),
    Case("cli-seed-negative", lambda c: c.train() + ["--seed", "-1"],
         ("--seed", "greater than or equal to 0"), one_line=True),
    Case("cli-basins-count-zero", lambda c: c.train() + ["--basins", "0"], ("data.sites", "count must be ≥ 1")),
    Case("cli-basin-given-twice", lambda c: c.train() + ["--basins", f"{BASINS[0]},{BASINS[0]}"],
         ("data.sites", BASINS[0], "more than once")),
    Case("cli-unknown-variant", lambda c: c.train() + ["--variant", "delta_9"], ("delta_9", "known:", "delta_n")),
    Case("cli-unknown-command", lambda c: ["trian"], ("No such command 'trian'", "train"), one_line=True),
    Case("cli-unknown-option", lambda c: c.train() + ["--epoch", "3"], ("No such option: --epoch",), one_line=True),
    Case("cli-config-not-found", lambda c: ["train", "--config", str(c.tmp / "nothere.yaml"), "--out", str(c.store)],
         ("--config", "nothere.yaml", "does not exist"), one_line=True),
    Case("cli-config-is-a-folder", lambda c: ["train", "--config", str(c.data), "--out", str(c.store)],
         ("--config", "is a directory"), one_line=True),
    Case("cli-data-root-is-a-file", lambda c: c.train()[:3] + ["--data-root", str(c.nc()), "--out", str(c.store)],
         ("--data-root", "camels_01022500.nc", "is a file"), one_line=True),
    Case("cli-out-is-a-file", lambda c: ["runs", "--out", str(c.nc())], ("--out", "is a file"), one_line=True),
    Case("predict-warmup-negative", lambda c: ["predict", c.run(), "--warmup-days", "-5", "--out", str(c.store)],
         ("--warmup-days", "greater than or equal to 0"), one_line=True),
    Case("predict-start-month-13", lambda c: ["predict", c.run(), "--start", "2001-13-01", "--out", str(c.store)],
         ("--start", "YYYY-MM-DD", "month must be in 1..12", "'2001-13-01'"), one_line=True),
    Case("predict-end-day-first", lambda c: ["predict", c.run(), "--end", "30-09-2002", "--out", str(c.store)],
         ("--end", "YYYY-MM-DD", "year first", "'30-09-2002'"), one_line=True),
    Case("benchmark-jobs-zero", lambda c: ["benchmark", "--jobs", "0", "--out", str(c.store), "--no-train", *NO_DATA],
         ("--jobs", "greater than or equal to 1"), one_line=True),
    Case("benchmark-seeds-zero", lambda c: ["benchmark", "--preset", "smap", "--seeds", "0", "--out", str(c.store), "--no-train", *NO_DATA],
         ("--seeds",), one_line=True),
    Case("surrogate-lr-zero", lambda c: ["surrogate", "--lr", "0", "--out", str(c.tmp / "sur"), *NO_DATA],
         ("--lr", "finite number > 0", "found 0.0"), one_line=True),
    Case("surrogate-lr-negative", lambda c: ["surrogate", "--lr", "-0.01", "--out", str(c.tmp / "sur"), *NO_DATA],
         ("--lr", "finite number > 0", "found -0.01"), one_line=True),
    Case("surrogate-lr-inf", lambda c: ["surrogate", "--lr", "inf", "--out", str(c.tmp / "sur"), *NO_DATA],
         ("--lr", "finite number > 0", "found inf"), one_line=True),
    Case("surrogate-lr-nan", lambda c: ["surrogate", "--lr", "nan", "--out", str(c.tmp / "sur"), *NO_DATA],
         ("--lr", "finite number > 0", "found nan"), one_line=True),
    Case("surrogate-iters-zero", lambda c: ["surrogate", "--iters", "0", "--out", str(c.tmp / "sur"), *NO_DATA],
         ("--iters", "greater than or equal to 1"), one_line=True),
    Case("jobs-submit-epochs-zero", lambda c: ["jobs", "submit", "--epochs", "0", "--out", str(c.store), *NO_DATA],
         ("--epochs", "greater than or equal to 1"), one_line=True),
    Case("jobs-submit-max-jobs-zero", lambda c: ["jobs", "submit", "--max-jobs", "0", "--out", str(c.store), *NO_DATA],
         ("--max-jobs",), one_line=True),
    Case("jobs-resume-epochs-zero", lambda c: ["jobs", "resume", "job-x", "--epochs", "0", "--out", str(c.store)],
         ("--epochs",), one_line=True),
    # --- a value in an input file that is not a number: file, line, column and site named
    Case("camels-hydro-q-mean-text", _attribute("hydro", BASINS[0], "q_mean", "abc"),
         ("camels_hydro.txt, line 3", "'q_mean'", f"gauge {BASINS[0]}", "'abc'", "expected a finite number")),
    Case("camels-clim-decimal-comma", _attribute("clim", BASINS[1], "p_mean", "3,1"),
         ("camels_clim.txt, line", "'p_mean'", f"gauge {BASINS[1]}", "'3,1'")),
    Case("camels-soil-inf", _attribute("soil", BASINS[2], "soil_porosity", "inf"),
         ("camels_soil.txt", "'soil_porosity'", f"gauge {BASINS[2]}", "inf")),
    Case("camels-topo-negative-area", _attribute("topo", BASINS[0], "area_gages2", "-573.6"),
         ("camels_topo.txt", "'area_gages2'", f"gauge {BASINS[0]}", "-573.6", "> 0")),
    Case("camels-topo-latitude-out-of-range", _attribute("topo", BASINS[1], "gauge_lat", "145.17"),
         ("camels_topo.txt", "'gauge_lat'", f"gauge {BASINS[1]}", "-90..90")),
    Case("camels-topo-gauge-row-missing", _attribute_rows("topo", lambda ls: [x for x in ls if not x.startswith(BASINS[1])]),
         ("camels_topo.txt", f"no row for gauge {BASINS[1]}")),
    Case("camels-name-gauge-row-missing", _attribute_rows("name", lambda ls: [x for x in ls if not x.startswith(BASINS[2])]),
         ("camels_name.txt", f"no row for gauge {BASINS[2]}")),
    Case("camels-name-gauge-twice", _attribute_rows("name", lambda ls: ls + [x for x in ls if x.startswith(BASINS[0])]),
         ("camels_name.txt", BASINS[0], "more than once")),
    Case("camels-forcing-not-numeric", _raw(_first_forcing, 10, lambda l: _fields(l, 5, "abc")),
         ("01022500_lump_cida_forcing_leap.txt, line 11", "'prcp(mm/day)'", "basin 01022500", "'abc'")),
    Case("camels-forcing-nan-text", _raw(_first_forcing, 12, lambda l: _fields(l, 8, "NaN")),
         ("01022500_lump_cida_forcing_leap.txt, line 13", "'tmax(C)'", "'NaN'")),
    Case("camels-forcing-impossible-date", _raw(_first_forcing, 10, lambda l: " ".join(["2000", "2", "30"] + l.split()[3:])),
         ("01022500_lump_cida_forcing_leap.txt, line 11", "2000/2/30", "calendar date")),
    Case("camels-streamflow-impossible-date", _raw(_first_flow, 5, lambda l: _fields(l, 2, "13")),
         ("01022500_streamflow_qc.txt, line 6", "gauge 01022500", "calendar date")),
    Case("camels-streamflow-nan-text", _raw(_first_flow, 7, lambda l: _fields(l, 4, "NaN")),
         ("01022500_streamflow_qc.txt, line 8", "'discharge'", "'NaN'", "non-numeric")),
    Case("netcdf-variable-is-text", lambda c: (c.edit(BASINS[0], lambda nc: _text_variable(nc, "streamflow")),
                                               c.train())[1],
         ("{nc}", "'streamflow'", "basin 01022500", "text", "expected numbers")),
    Case("netcdf-scale-factor-text", lambda c: (c.edit(BASINS[0], lambda nc: nc["total_precipitation_sum"]
                                                       .setncattr("scale_factor", "abc")), c.train())[1],
         ("{nc}", "'total_precipitation_sum'", "basin 01022500", "scale_factor")),
    Case("smap-latitude-out-of-range", _smap(_smap_set("lat", 14, 200.0)),
         ("smap_nldas_conus_412.nc", "'lat'", "cell 14", "-90..90")),
    Case("smap-cell-id-twice", _smap(_smap_set("cell", 5, 4)),
         ("smap_nldas_conus_412.nc", "cell id '4'", "more than once")),
    Case("smap-variable-is-text", _smap(lambda nc: _text_variable(nc, "ndvi")),
         ("smap_nldas_conus_412.nc", "'ndvi'", "expected numbers")),
]


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)


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
    if case.one_line:  # refused while parsing the command line: one line, nothing started
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, text
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


#: (command, --port, expected words): ports a server cannot listen on (run as a real process:
#: a regression would exec the server, which only a subprocess with a timeout survives)
SERVER_PORTS = [("serve", "-1", "greater than or equal to 1"), ("serve", "0", "greater than or equal to 1"),
                ("serve", "70000", "less than or equal to 65535"), ("up", "65536", "less than or equal to 65535")]


@pytest.mark.parametrize("command,port,expected", SERVER_PORTS, ids=[f"{c}-port-{p}" for c, p, _ in SERVER_PORTS])
def test_server_port_out_of_range_is_refused_before_serving(command, port, expected, tmp_path):
    """`hydrolens serve --port -1` once printed 'serving the explorer on http://127.0.0.1:-1' and
    then 'ERROR: ERROR: -8': a port outside 1..65535 is one line, exit code 2, nothing served or
    written (`up` would otherwise first train the demo model into the store)."""
    store = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "core.cli", command, "--port", port, "--out", str(store)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and "'--port'" in proc.stderr and expected in proc.stderr
    assert "serving" not in proc.stderr and "Traceback" not in proc.stderr
    assert not store.exists()


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
