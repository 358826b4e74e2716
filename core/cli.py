"""`hydrolens` command line: thin wrappers over core.training, core.evaluation, core.runs and
core.jobs (the job queue shared with the explorer and the benchmark).

Every command runs inside :func:`_guarded`: a problem with the input (a file, a config value, a
name, a busy run) ends with ``error: <message naming the file or field>`` and exit code 2, an
unexpected failure with ``internal error: ...`` and exit code 1, Ctrl-C with exit code 130; no
Python traceback is printed unless ``hydrolens --debug ...`` (or ``HYDROLENS_DEBUG=1``) is given.
Option values are checked by typer while the command line is parsed (``min=``/``max=``, paths that
must be folders or files, the callbacks below), before anything starts; such a usage error is
one line ``error: Invalid value for '--port': ...`` with exit code 2 as well (:class:`_Command`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from typer.exceptions import Abort, Exit, TyperException
from typer.core import TyperCommand, TyperGroup


@contextlib.contextmanager
def _usage_errors_on_one_line():
    """Print a usage error typer raises (an option value out of its ``min=``/``max=`` range or not
    a number, an unknown option or command, a missing value) as one line ``error: ... (see
    'CMD --help')`` and exit with code 2, like every other input error of the CLI, instead of
    typer's usage text and boxed panel. The validation itself stays typer's."""
    try:
        yield
    except TyperException as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `hydrolens` alone: the help text
            raise
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        typer.secho(f"error: {e.format_message()}{hint}", fg=typer.colors.RED, err=True)
        raise Exit(getattr(e, "exit_code", 2)) from None


class _Command(TyperCommand):
    """A command whose usage errors are one line (:func:`_usage_errors_on_one_line`)."""

    def make_context(self, info_name, args, parent=None, **extra):
        """Parse the arguments; a usage error prints one line and exits with code 2."""
        with _usage_errors_on_one_line():
            return super().make_context(info_name, args, parent=parent, **extra)


class _Group(TyperGroup):
    """A group (``hydrolens``, ``hydrolens jobs``) whose usage errors, an unknown command
    included, are one line (:func:`_usage_errors_on_one_line`)."""

    def make_context(self, info_name, args, parent=None, **extra):
        """Parse the group's own options; a usage error prints one line and exits with code 2."""
        with _usage_errors_on_one_line():
            return super().make_context(info_name, args, parent=parent, **extra)

    def resolve_command(self, ctx, args):
        """The subcommand named in ``args``; an unknown one prints one line and exits with code 2."""
        with _usage_errors_on_one_line():
            return super().resolve_command(ctx, args)


def _positive_finite(value: float | None) -> float | None:
    """Typer callback of a rate option (``--lr``): a finite number > 0 (typer's ``min=`` has no
    open bound and lets ``inf`` through)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"expected a finite number > 0 (e.g. 0.002); found {value}")
    return value


def _iso_date(value: str | None) -> str | None:
    """Typer callback of a date option (``--start``/``--end``): a calendar date written
    YYYY-MM-DD, year first (pandas alone would read 02-01-2001 as 1 February)."""
    import datetime as dt
    import re

    if value is None:
        return value
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return dt.date.fromisoformat(value.strip()).isoformat()
        reason = "year first, two-digit month and day"
    except ValueError as e:
        reason = str(e)
    raise typer.BadParameter(f"expected a date YYYY-MM-DD ({reason}); found {value!r}")


#: TCP ports a server can listen on (0, "any free port", is not offered: the URL printed and the
#: websocket origin allowed would be wrong)
PORT_RANGE = {"min": 1, "max": 65535}

app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="HydroLens: train and explore differentiable hydrological models (δ models).")

OUT_HELP = "run store folder (default: $HYDROLENS_RUNS or ./runs)"
_DEBUG = {"on": False}

SCHEDULER_HELP = ("Dask scheduler (tcp://HOST:PORT) to run the job on (default $HYDROLENS_SCHEDULER; "
                  "none: this machine); the run store must be a path every worker sees")


#: Exceptions that mean "the input is wrong" (a file, a value, a name, a busy run): exit 2.
_USER_ERRORS = (ValueError, KeyError, OSError, RuntimeError, FloatingPointError, EOFError)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="show Python tracebacks of errors")):
    """HydroLens: train and explore differentiable hydrological models (δ models)."""
    _DEBUG["on"] = debug or os.environ.get("HYDROLENS_DEBUG", "") not in ("", "0")


def _store(out: Optional[Path]):
    from .runs import RunStore

    return RunStore(out)


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _message(e: BaseException) -> str:
    if isinstance(e, KeyError) and type(e).__str__ is KeyError.__str__ and e.args:
        return str(e.args[0])
    text = str(e).strip()
    return text or type(e).__name__


def _guarded(command):
    """Run a command; turn every exception into a one-paragraph message (see module docstring)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (Exit, Abort, TyperException, SystemExit):
            raise
        except KeyboardInterrupt:
            if _DEBUG["on"]:
                raise
            _fail("interrupted", code=130)
        except _USER_ERRORS as e:
            if _DEBUG["on"]:
                raise
            _fail(_message(e))
        except Exception as e:  # noqa: BLE001 - a bug: say so, without a traceback
            if _DEBUG["on"]:
                raise
            _fail(f"internal error: {type(e).__name__}: {_message(e)} (a bug in HydroLens; "
                  "rerun with `hydrolens --debug ...` for the traceback)", code=1)
    return wrapper


def _command(*args, **kwargs):
    """``app.command`` for a guarded command."""
    def register(fn):
        app.command(*args, cls=_Command, **kwargs)(_guarded(fn))
        return fn
    return register


@_command()
def train(
    preset: Optional[str] = typer.Option(None, help="named preset: demo (every basin, ~3 min on 2 cores), "
                                          "bench432 (docs/benchmark.md settings), paper432 (Feng et al. 2022), "
                                          "nh_lstm (the LSTM at neuralhydrology's CAMELS settings), "
                                          "smap (SMAP soil moisture, docs/benchmark_smap.md); default: demo, "
                                          "or smap for a soil-moisture variant"),
    config: Optional[Path] = typer.Option(None, "--config", exists=True, dir_okay=False, help="YAML RunConfig"),
    data_root: Optional[Path] = typer.Option(None, file_okay=False, help="data root (default: $HYDROLENS_DATA_ROOT or ../shared/data)"),
    basins: Optional[str] = typer.Option(None, "--sites", "--basins", help="basins: a count n (spread over CONUS), "
                                         "'all', or comma-separated gauge ids; SMAP cells: a set (SPARSE, DENSE, "
                                         "NG, SCALE_29..SCALE_305), 'all' or cell ids"),
    test_sites: Optional[str] = typer.Option(None, help="sites never trained on, also scored on the test period "
                                             "(e.g. NG)"),
    epochs: Optional[int] = typer.Option(None, min=1, help="override the number of epochs"),
    variant: Optional[str] = typer.Option(None, help="override the variant: δ models (delta1, delta_n, ...), lstm; "
                                          "SMAP: ffn_a, lstm_z, paraformer_a, paraformer_z, sceua"),
    coupling: Optional[str] = typer.Option(None, help="parameter learners: direct (through the VIC) or surrogate "
                                           "(through the frozen LSTM surrogate, `hydrolens surrogate`)"),
    seed: Optional[int] = typer.Option(None, min=0, max=2**32 - 1, help="random seed"),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda"),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads (default: all cores)"),
    name: Optional[str] = typer.Option(None, help="run name (suffix of the run id)"),
    out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP),
    evaluate: bool = typer.Option(True, help="evaluate on the test period after training"),
    resume: Optional[str] = typer.Option(None, help="continue the run with this id from its last checkpoint"),
    progress: bool = typer.Option(True, help="show progress bars"),
    nproc: Optional[int] = typer.Option(None, min=1, help="data-parallel ranks on this machine (torchrun; "
                                        "train.nproc): each trains on its share of every mini-batch"),
):
    """Train a δ model (default preset: demo) and, by default, evaluate it."""
    from .evaluation import evaluate_run
    from .models.registry import get_variant
    from .training import Trainer
    from .training.config import compose_config
    from .training.distributed import in_rank_process, ranks_from_env

    store = _store(out)
    if resume:
        run = store.get(resume)
        cfg = compose_config(file=run.config_path, overrides={"train.epochs": epochs, "train.threads": threads,
                                                              "train.nproc": nproc},
                             source="--epochs/--threads/--nproc")
    else:
        default = "smap" if variant and get_variant(variant).task == "soil_moisture" else "demo"
        cfg = compose_config(preset or (None if config else default), config, {
            "data.root": str(data_root) if data_root else None, "data.sites": basins,
            "data.test_sites": test_sites, "train.epochs": epochs, "model.variant": variant,
            "model.coupling": coupling, "train.seed": seed, "train.device": device,
            "train.threads": threads, "name": name, "train.nproc": nproc})
        run = store.create(cfg.run_name())
    t0 = time.perf_counter()
    if cfg.train.nproc > 1 and not in_rank_process():  # launch the ranks, then evaluate here
        return _train_ranks(run, cfg, evaluate, progress, t0)
    main = ranks_from_env().main
    say = typer.echo if main else (lambda *args, **kwargs: None)
    say(f"run {run.run_id} -> {run.path}")
    # the run is ours until this command ends: a second train/evaluate of it gets "busy"
    with (run.lock("training") if main else contextlib.nullcontext()):
        try:
            trainer = Trainer(cfg, run, progress=progress)
        except BaseException:
            if not resume:  # nothing was trained: don't leave a broken run behind
                import shutil

                shutil.rmtree(run.path, ignore_errors=True)
            raise
        if trainer.resumed_from is not None:
            notes = "".join(f"\n  skipped {n}" for n in trainer.resume_notes)
            say(f"resuming after epoch {trainer.start_epoch} from {trainer.resumed_from.name}{notes}")
        ranks = trainer.ranks
        say(f"{len(trainer.data.sites)} sites, {cfg.model.variant}, device {trainer.device}, "
            f"{trainer.iters} iterations/epoch, epochs {trainer.start_epoch + 1}..{cfg.train.epochs}"
            + (f", {ranks.world} ranks" if ranks.parallel else ""))
        try:
            trainer.fit()
        finally:
            trainer.close()
        if not main:
            return
        typer.echo(f"trained in {time.perf_counter() - t0:.1f} s")
        if run.status().get("stopped_early"):  # evaluation replaces the status message below
            typer.echo(run.status()["message"])
        if evaluate:
            m = evaluate_run(run, device=cfg.train.device)
            typer.echo(f"{run.status().get('message', '')} ({len(m)} sites)")
    typer.echo(f"total {time.perf_counter() - t0:.1f} s; run id {run.run_id}")


def _train_ranks(run, cfg, evaluate: bool, progress: bool, t0: float) -> None:
    """``train.nproc`` ranks through torchrun on this run (``train --resume``: it starts from
    scratch when there is no checkpoint), then evaluation here."""
    import subprocess

    from ._runtime import child_env
    from .evaluation import evaluate_run
    from .training.distributed import launch_command

    n = cfg.train.nproc
    if not run.config_path.exists():
        run.write_config(cfg.to_dict())
        run.update_status(state="created", epochs=cfg.train.epochs, epoch=0, message=f"starting {n} ranks")
    per_rank = max(1, (cfg.train.threads or os.cpu_count() or 1) // n)
    args = ["train", "--resume", run.run_id, "--out", str(run.path.parent), "--no-evaluate",
            "--threads", str(per_rank), "--epochs", str(cfg.train.epochs),
            "--progress" if progress else "--no-progress"]  # (torchrun's parser would take --nproc)
    typer.echo(f"run {run.run_id} -> {run.path}\n{n} data-parallel ranks (torchrun, "
               f"{'nccl' if cfg.train.device == 'cuda' else 'gloo'}), {per_rank} thread(s) each")
    rc = subprocess.call(launch_command(n, args), env=child_env(OMP_NUM_THREADS=str(per_rank)))
    if rc != 0:
        _fail(f"training on {n} ranks failed (exit {rc}); continue with `hydrolens train --resume "
              f"{run.run_id}`", code=rc)
    if evaluate:
        m = evaluate_run(run, device=cfg.train.device)
        typer.echo(f"{run.status().get('message', '')} ({len(m)} sites)")
    typer.echo(f"total {time.perf_counter() - t0:.1f} s; run id {run.run_id}")


@_command()
def evaluate(
    run_id: str = typer.Argument(..., help="run id (see `hydrolens runs`)"),
    data_root: Optional[Path] = typer.Option(None, file_okay=False, help="data root override"),
    out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
):
    """Evaluate a trained run on its test period (states warmed up on the training period)."""
    from .evaluation import evaluate_run

    t0 = time.perf_counter()
    run = _store(out).get(run_id)
    for problem in run.problems():  # e.g. an unreadable status.json or outputs.nc: rewritten below
        typer.echo(f"note: {problem}", err=True)
    m = evaluate_run(run, data_root=str(data_root) if data_root else None, device=device)
    typer.echo(f"{len(m)} basins evaluated in {time.perf_counter() - t0:.1f} s")
    typer.echo(f"median NSE {m['NSE'].median():.3f}")
    typer.echo(f"median KGE {m['KGE'].median():.3f}")


@_command("learning-curve")
def learning_curve(
    run_id: str = typer.Argument(..., help="run id (see `hydrolens runs`)"),
    every: int = typer.Option(2, min=1, help="evaluate every N-th epoch checkpoint (and the first and last)"),
    data_root: Optional[Path] = typer.Option(None, file_okay=False, help="data root override"),
    out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP),
):
    """The run's learning curve: training loss per epoch and the test median NSE of its epoch
    checkpoints, cached in <run>/learning_curve.csv (the benchmarks queue this as a job)."""
    from .benchmarks.runs import learning_curve as curve_of

    run = _store(out).get(run_id)
    curve = curve_of(run, every, str(data_root) if data_root else None, log=typer.echo)
    scored = curve.dropna(subset=["test_median_nse"])
    typer.echo(f"{run.run_id}: {len(curve)} epochs, {len(scored)} checkpoints scored"
               + (f"; last test median NSE {scored['test_median_nse'].iloc[-1]:.3f}" if len(scored) else ""))


@_command()
def predict(
    run_id: str = typer.Argument(..., help="run id (see `hydrolens runs`)"),
    data_root: Optional[Path] = typer.Option(None, file_okay=False, help="data root to read (Caravan or CAMELS-US layout; default: the run's)"),
    basins: Optional[str] = typer.Option(None, help="gauge ids (comma-separated), a count, or 'all' (default: all of the root)"),
    start: Optional[str] = typer.Option(None, callback=_iso_date,
                                        help="first output day YYYY-MM-DD (default: the run's test start)"),
    end: Optional[str] = typer.Option(None, callback=_iso_date, help="last output day (default: the run's test end)"),
    warmup_days: int = typer.Option(365, min=0, help="days before START that spin up the states"),
    name: Optional[str] = typer.Option(None, help="output folder name under RUN/predictions/"),
    out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
):
    """Run a trained model on any basins and period (unseen ones too); writes outputs and metrics."""
    from .datasets.loader import parse_sites
    from .evaluation import predict_run

    t0 = time.perf_counter()
    run = _store(out).get(run_id)
    source = (run.config().get("data") or {}).get("source", "caravan")
    pred = predict_run(run, data_root=str(data_root) if data_root else None,
                       basins=parse_sites(basins, source), start=start, end=end,
                       warmup_days=warmup_days, device=device, name=name)
    typer.echo(f"{pred.n_sites} sites simulated in {time.perf_counter() - t0:.1f} s -> {pred.path}")
    if pred.metrics is not None:
        typer.echo(f"median NSE {pred.metrics['NSE'].median():.3f}  KGE {pred.metrics['KGE'].median():.3f} "
                   f"({int((pred.metrics['n_obs'] > 0).sum())} basins with streamflow)")
    else:
        typer.echo("no streamflow in the data for this period: outputs only")


def _preset_task(preset: str) -> str:
    """The task ("streamflow" | "soil_moisture") of a preset name or YAML config file."""
    from .training.config import compose_config
    from .training.tasks import task_for

    return task_for(compose_config(preset).data).name


@_command()
def benchmark(
    preset: str = typer.Option("bench432", help="preset every model is trained with (bench432, paper432, ...)"),
    variants: Optional[str] = typer.Option(None, help="comma-separated variants (δ family and/or lstm); "
                                           "default: all of them, delta1 .. delta_n_nnr, lstm"),
    epochs: Optional[int] = typer.Option(None, min=1, help="train every run to this many epochs (resumes shorter runs)"),
    jobs: int = typer.Option(1, min=1, help="trainings at a time"),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads per training"),
    data_root: Optional[Path] = typer.Option(None, file_okay=False, help="data root"),
    modis: Optional[Path] = typer.Option(None, dir_okay=False, help="basin-level MOD16A2 8-day ET table (CSV basin,date,ET or netCDF)"),
    curve_every: Optional[int] = typer.Option(None, min=1, help="evaluate every N-th epoch checkpoint for the "
                                              "learning curve (default: 2; SMAP presets: 5)"),
    seeds: int = typer.Option(4, min=1, help="SMAP presets: seeds per table cell (mean ± sd over them)"),
    couplings: str = typer.Option("direct,surrogate", help="SMAP presets: learner couplings (direct, surrogate)"),
    scaling: bool = typer.Option(True, help="SMAP presets: also the data-scaling runs (SCALE_29, SCALE_206)"),
    surrogate: Optional[Path] = typer.Option(None, file_okay=False, help="SMAP presets: surrogate job folder "
                                             "(default: <runs root>/surrogates/default)"),
    sceua_evaluations: Optional[int] = typer.Option(None, min=10, help="SMAP presets: SCE-UA runs per cell "
                                                    "(default: the preset's)"),
    long_epochs: Optional[int] = typer.Option(None, min=1, help="SMAP presets: also train every learner on "
                                              "SPARSE (direct, seed 0) to this many epochs, reported beside "
                                              "the table's run (the longer-training check)"),
    doc: Optional[Path] = typer.Option(None, dir_okay=False, help="also write the report here (e.g. docs/benchmark.md)"),
    notes: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="markdown inserted as the report's Discussion"),
    train: bool = typer.Option(True, help="train missing/short runs (--no-train: only report)"),
    scheduler: Optional[str] = typer.Option(None, help=SCHEDULER_HELP + "; every training of the matrix "
                                            "is a job there"),
    out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP),
):
    """Train (or reuse) a run per variant and write the Table-2-like report, NSE CDF and learning
    curves; for a SMAP preset (``smap``), the soil-moisture benchmark of Li & Lu (2023):
    methods × SPARSE/DENSE/NG × couplings × seeds, the scaling curve, infiltr maps and ET."""
    from .benchmarks.delta import run_benchmark
    from .cluster import SCHEDULER_ENV

    if scheduler:  # the job runner of the benchmark's trainings reads it (core.cluster)
        os.environ[SCHEDULER_ENV] = scheduler

    command = "hydrolens benchmark " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "hydrolens benchmark"
    names = [v.strip() for v in variants.split(",") if v.strip()] if variants else None
    if _preset_task(preset) == "soil_moisture":
        from .benchmarks.smap import run_smap_benchmark

        table = run_smap_benchmark(
            _store(out), preset, names, seeds=seeds, couplings=tuple(c.strip() for c in couplings.split(",") if c.strip()),
            scaling=scaling, epochs=epochs, jobs=jobs, threads=threads,
            data_root=str(data_root) if data_root else None, surrogate=str(surrogate) if surrogate else None,
            sceua_evaluations=sceua_evaluations, modis_path=str(modis) if modis else None,
            curve_every=curve_every or 5, doc=doc, long_epochs=long_epochs,
            command=command, train=train, notes=notes, log=typer.echo)
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}") if len(table) else "no runs")
        return
    table = run_benchmark(_store(out), preset, names,
                          epochs=epochs, jobs=jobs, threads=threads,
                          data_root=str(data_root) if data_root else None,
                          modis_path=str(modis) if modis else None, curve_every=curve_every or 2,
                          doc=doc, command=command, train=train, notes=notes, log=typer.echo)
    cols = ["model", "median_NSE", "median_KGE", "BFI_r", "ET_r_P_minus_Q", "steps"]
    typer.echo(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))


@_command()
def surrogate(
    out: Optional[Path] = typer.Option(None, file_okay=False, help="job folder (default: <runs root>/surrogates/default); "
                                       "an existing one is continued from its checkpoint"),
    n_sets: int = typer.Option(64, min=4, help="Latin-hypercube θ sets per cell"),
    hidden: int = typer.Option(256, min=4, help="LSTM size"),
    iters: int = typer.Option(4000, min=1, help="Adam steps (cosine-decayed learning rate)"),
    batch: int = typer.Option(128, min=1, help="windows per step"),
    rho: int = typer.Option(240, min=1, help="days with loss per window (after a 120-day burn-in)"),
    lr: float = typer.Option(2e-3, callback=_positive_finite, help="initial Adam learning rate (> 0)"),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads"),
    data_root: Optional[Path] = typer.Option(None, file_okay=False, help="data root"),
    runs_root: Optional[Path] = typer.Option(None, "--runs", file_okay=False, help=OUT_HELP),
):
    """Train the frozen LSTM surrogate of the VIC-type model and score its gate (Li & Lu 2023)."""
    from .training.surrogate_fit import SurrogateConfig, fit_surrogate

    cfg = SurrogateConfig(root=str(data_root) if data_root else None, n_sets=n_sets, hidden=hidden,
                          iters=iters, batch=batch, rho=rho, lr=lr, threads=threads)
    folder = out or (_store(runs_root).root / "surrogates" / "default")
    typer.echo(f"surrogate job in {folder}")
    fit_surrogate(folder, cfg, log=typer.echo)


@_command()
def runs(out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP)):
    """List the runs of the store, newest first; unreadable runs are listed as corrupt with the reason."""
    store = _store(out)
    infos = store.list()
    if not infos:
        typer.echo(f"no runs in {store.root}")
        return
    fmt = "{:<34} {:<11} {:<20} {:>7} {:>7} {:>8} {:>8}"
    typer.echo(fmt.format("run", "state", "variant", "basins", "epochs", "med NSE", "med KGE"))
    for r in infos:
        f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        typer.echo(fmt.format(r.run_id, r.state, r.variant, r.n_sites, f"{r.epochs_done}/{r.epochs}",
                              f(r.median_nse), f(r.median_kge)))
    corrupt = [r for r in infos if r.problem]
    if corrupt:
        typer.echo(f"\n{len(corrupt)} run(s) cannot be read:")
        for r in corrupt:
            typer.echo(f"  {r.run_id}: {r.problem}")


jobs_app = typer.Typer(cls=_Group, add_completion=False, pretty_exceptions_enable=False,
                       help="The job queue (shared with the explorer and the benchmark): training "
                            "runs as background processes with state on disk.")
app.add_typer(jobs_app, name="jobs")


def _runner(out: Optional[Path], max_jobs: Optional[int] = None, scheduler: Optional[str] = None):
    from .jobs import JobRunner

    return JobRunner(_store(out), max_running=max_jobs, scheduler=scheduler)


def _jobs_out(ctx: typer.Context, out: Optional[Path]) -> Optional[Path]:
    """The run store of a ``hydrolens jobs`` subcommand: its own ``--out``, else the one given to
    the group (``hydrolens jobs --out DIR cancel JOB``), else None (the default store)."""
    return out if out is not None or ctx.parent is None else ctx.parent.params.get("out")


def _job_line(runner, job) -> str:
    p = runner.progress(job)
    eta = f" {p.eta_text()}" if p.eta_s is not None else ""
    loss = f" loss {p.loss:.4f}" if p.loss is not None else ""
    where = f"  [dask {job.info.get('scheduler')}]" if job.info.get("executor") == "dask" else ""
    return (f"{job.job_id:<28} {job.state:<10} {job.run_id or '-':<34} "
            f"epoch {p.epoch}/{p.epochs} it {p.iteration}/{p.iters}{loss}{eta}  {job.label}{where}")


@jobs_app.callback(invoke_without_command=True)
def jobs_list(ctx: typer.Context, out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP)):
    """List the jobs, newest first (and start queued ones where a slot is free)."""
    if ctx.invoked_subcommand is not None:
        return
    _guarded(_jobs_list)(out)


def _jobs_list(out):
    runner = _runner(out)
    jobs = runner.jobs()
    if not jobs:
        typer.echo(f"no jobs in {runner.root}")
    for job in jobs:
        typer.echo(_job_line(runner, job))


def _jobs_command(*args, **kwargs):
    def register(fn):
        jobs_app.command(*args, cls=_Command, **kwargs)(_guarded(fn))
        return fn
    return register


@_jobs_command("submit")
def jobs_submit(
    ctx: typer.Context,
    preset: str = typer.Option("demo", help="preset the run starts from"),
    variant: Optional[str] = typer.Option(None, help="δ variant (see `hydrolens train --help`)"),
    basins: Optional[str] = typer.Option(None, help="a count n, 'all', or comma-separated gauge ids"),
    epochs: Optional[int] = typer.Option(None, min=1, help="epochs"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    name: Optional[str] = typer.Option(None, help="run name"),
    data_root: Optional[Path] = typer.Option(None, file_okay=False, help="data root"),
    max_jobs: Optional[int] = typer.Option(None, min=1, help="jobs running at once"),
    scheduler: Optional[str] = typer.Option(None, help=SCHEDULER_HELP),
    out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP),
):
    """Queue a training run (trained and evaluated in the background, here or on a Dask cluster)."""
    from .training.config import compose_config

    cfg = compose_config(preset, overrides={
        "model.variant": variant, "data.sites": basins, "train.epochs": epochs, "train.device": device,
        "name": name, "data.root": str(data_root) if data_root else None})
    runner = _runner(_jobs_out(ctx, out), max_jobs, scheduler)
    job = runner.submit_train(cfg.to_dict())
    typer.echo(f"job {job.job_id} ({job.state}) trains run {job.run_id}; log {job.log_path}")


@_jobs_command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: str = typer.Argument(..., help="job id (see `hydrolens jobs`)"),
                out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP)):
    """Cancel a queued job or stop a running one (its run keeps its last epoch, resumable)."""
    job = _runner(_jobs_out(ctx, out)).cancel(job_id)
    typer.echo(f"job {job.job_id}: {job.state}")


@_jobs_command("resume")
def jobs_resume(ctx: typer.Context, job_id: str = typer.Argument(..., help="job id of an ended job"),
                epochs: Optional[int] = typer.Option(None, min=1, help="train to this many epochs"),
                scheduler: Optional[str] = typer.Option(None, help=SCHEDULER_HELP + "; default: "
                                                        "where the ended job ran"),
                out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP)):
    """Queue a job that continues an ended job's run from its last checkpoint."""
    job = _runner(_jobs_out(ctx, out)).resume(job_id, epochs=epochs, scheduler=scheduler)
    typer.echo(f"job {job.job_id} ({job.state}) resumes run {job.run_id}")


@_jobs_command("wait")
def jobs_wait(ctx: typer.Context, job_ids: list[str] = typer.Argument(..., help="job ids"),
              out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP)):
    """Wait until the jobs have ended; exit 1 unless every one is done."""
    runner = _runner(_jobs_out(ctx, out))
    jobs = runner.wait(job_ids, log=typer.echo)
    if any(j.state != "done" for j in jobs):
        raise typer.Exit(1)


cluster_app = typer.Typer(cls=_Group, add_completion=False, pretty_exceptions_enable=False,
                          help="Start a Dask cluster for jobs (`hydrolens jobs submit --scheduler ADDRESS` "
                               "or $HYDROLENS_SCHEDULER): on this machine, or SLURM jobs through "
                               "dask-jobqueue. docs/scaling.md")
app.add_typer(cluster_app, name="cluster")


def _serve_cluster(cluster, what: str) -> None:
    """Print where the cluster is and keep it up until Ctrl-C (or SIGTERM)."""
    import signal
    import time

    address = cluster.scheduler_address
    typer.echo(f"{what}\nscheduler {address}\ndashboard {cluster.dashboard_link}\n"
               f"use it: export HYDROLENS_SCHEDULER={address}   (or --scheduler {address})\n"
               "Ctrl-C stops the cluster")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        typer.echo("stopping the cluster")
    finally:
        cluster.close()


@cluster_app.command("local", cls=_Command)
def cluster_local(
    workers: int = typer.Option(2, min=1, help="worker processes"),
    threads: int = typer.Option(1, min=1, help="threads per worker (torch threads of its jobs)"),
    dashboard: str = typer.Option(":8787", help="dashboard address"),
):
    """Start a Dask LocalCluster of worker processes on this machine and print its address."""
    def run():
        from .cluster import start_local_cluster

        cluster = start_local_cluster(workers, threads, dashboard_address=dashboard)
        _serve_cluster(cluster, f"Dask LocalCluster: {workers} worker process(es) x {threads} thread(s)")
    _guarded(run)()


@cluster_app.command("slurm", cls=_Command)
def cluster_slurm(
    config: Path = typer.Option(..., "--config", exists=True, dir_okay=False,
                                help="YAML: queue, account, cores, memory, walltime, gpus, python, setup, "
                                     "extra_directives"),
    jobs: int = typer.Option(1, min=1, help="SLURM jobs (one Dask worker each)"),
    print_script: bool = typer.Option(False, "--print-script", help="print the job script and exit"),
):
    """Start Dask workers as SLURM jobs (dask-jobqueue SLURMCluster) and print the scheduler address."""
    def run():
        from .cluster import read_slurm_config, slurm_cluster

        cluster = slurm_cluster(read_slurm_config(config))
        if print_script:
            typer.echo(cluster.job_script())
            cluster.close()
            return
        cluster.scale(jobs=jobs)
        _serve_cluster(cluster, f"SLURMCluster: {jobs} job(s) submitted (squeue shows them)")
    _guarded(run)()


@_command()
def serve(
    port: int = typer.Option(5006, **PORT_RANGE, help="port"),
    address: str = typer.Option("127.0.0.1", help="address to bind"),
    out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP),
    show: bool = typer.Option(False, help="open a browser"),
):
    """Serve the explorer (Panel app) on http://ADDRESS:PORT (runs `panel serve explorer/app.py`)."""
    import importlib.util
    import os

    # core never imports explorer: locate the app file and hand it to `panel serve`
    spec = importlib.util.find_spec("explorer")
    if spec is None or not spec.origin:
        _fail("the explorer package is not installed (pip install -e . from the repository)")
    app_file = Path(spec.origin).parent / "app.py"
    env = {**os.environ, "HYDROLENS_RUNS": str(_store(out).root)}
    cmd = [sys.executable, "-m", "panel", "serve", str(app_file), "--port", str(port),
           "--address", address, "--allow-websocket-origin", f"{address}:{port}",
           "--allow-websocket-origin", f"localhost:{port}",
           # imports and caches at start, so the first page does not pay for them
           "--setup", str(app_file.parent / "warmup.py")]
    if show:
        cmd.append("--show")
    typer.echo(f"serving the explorer on http://{address}:{port}  (runs: {env['HYDROLENS_RUNS']})",
               err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # replace this process: Ctrl-C / kill reach the server itself, no orphan is left behind
    os.execve(sys.executable, cmd, env)


@_command()
def up(
    port: int = typer.Option(5006, **PORT_RANGE, help="port"),
    address: str = typer.Option("127.0.0.1", help="address to bind"),
    data_root: Optional[Path] = typer.Option(None, file_okay=False, help="data root"),
    out: Optional[Path] = typer.Option(None, file_okay=False, help=OUT_HELP),
):
    """The main job: train the demo model if the store has no finished run, then serve the explorer."""
    store = _store(out)
    if store.latest("done") is None:
        typer.echo(f"no finished run in {store.root}: training the demo preset first")
        train(preset="demo", config=None, data_root=data_root, basins=None, test_sites=None, epochs=None,
              variant=None, coupling=None, seed=None, device=None, threads=None, name=None, out=store.root,
              evaluate=True, resume=None, progress=True, nproc=None)
    serve(port=port, address=address, out=store.root, show=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    sys.exit(main())
