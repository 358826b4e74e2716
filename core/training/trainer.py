"""Training loop of the δ models: warm-up windows, the paper's loss, checkpoints every epoch.

A run directory (core.runs) receives config.yaml, normalization.json, train_log.csv,
checkpoints/epoch_NNN.pt + last.pt (all written atomically, so a killed run can be resumed from
its last finished epoch), checkpoints/best.pt when the run validates (on ``data.val_sites`` or a
held-out ``train.val_fraction`` of the training sites: the epoch with the best
``train.val_metric``, the run's model) and a status.json that the CLI and the explorer poll.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .._runtime import code_provenance, flush_denormals, resolve_precision
from ..metrics import nse
from ..datasets.normalize import Normalizer
from ..datasets.sampler import WindowSampler
from ..models.factory import build_model as _build_model
from ..runs import Run, atomic_write, this_process
from ..runs.checkpoint import (FORMAT, RESUME_KEYS, CheckpointError, load_checkpoint, resume_candidates,
                         sampler_state_from_text, sampler_state_to_text, save_checkpoint)
from .config import RunConfig
from .data import (Prepared, as_tensor, check_config_period, fit_normalizer, forward_chunks, load_for_config,
                   load_validation, prepare_for_run, save_normalizer)
from .distributed import close as close_ranks
from .distributed import gather_sites, global_order, init_ranks, mean_over_ranks, shard
from .tasks import loss_for, task_for


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU.

    Raises:
        RuntimeError: ``cuda`` requested but not available.
    """
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def build_model(cfg: RunConfig, n_dynamic: int, n_static: int) -> torch.nn.Module:
    """The model described by ``cfg.model`` (``core.models.factory``: the variant's family builds
    it; every model follows the same contract)."""
    return _build_model(cfg.model, n_dynamic, n_static)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


#: the checkpoint of the best validated epoch (runs with held-out validation sites)
BEST = "best.pt"


def model_checkpoint(run: Run) -> str:
    """The checkpoint that is the run's model: ``best.pt`` (the epoch with the lowest
    validation loss) when the run validates, else ``last.pt``."""
    return BEST if (run.checkpoint_dir / BEST).exists() else "last.pt"


def load_model(run: Run, n_dynamic: int | None = None, n_static: int | None = None,
               checkpoint: str | None = None, device: torch.device | None = None) -> tuple[torch.nn.Module, RunConfig, Normalizer]:
    """Rebuild a trained model from its run directory (checkpoint read with weights_only=True).

    ``checkpoint``: a file in ``checkpoints/`` (default: ``model_checkpoint(run)``, the best
    validated epoch where there is one, else the last).

    Raises:
        FileNotFoundError: the run has no checkpoint yet (names the path).
        ConfigError: config.yaml does not validate (names the fields).
        CheckpointError: the checkpoint is damaged, holds code, or does not fit the config.
    """
    cfg = RunConfig.from_dict(run.config(), source=str(run.config_path))
    norm = Normalizer.load(run.normalization_path)
    path = run.checkpoint_dir / (checkpoint or model_checkpoint(run))
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: the run has not finished an epoch yet")
    model = build_model(cfg, n_dynamic or norm.n_columns, n_static or len(norm.static))
    try:
        state = load_checkpoint(path, map_location=device or "cpu")
    except CheckpointError as e:
        hint = (f"; `hydrolens train --resume {run.run_id}` restores it from the newest intact "
                "epoch checkpoint") if path.name == "last.pt" else ""
        raise CheckpointError(f"{e}{hint}") from None
    _load_state_dict(model, state["model"], path)
    return model.to(device or "cpu"), cfg, norm


def _load_state_dict(module: torch.nn.Module, state, path: Path) -> None:
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path}: does not fit this run's model ({' '.join(str(e).split())[:300]})") from None


#: Seconds between two progress updates of status.json within an epoch (iteration, loss, speed).
STATUS_EVERY_S = 1.0


class Trainer:
    """Trains ``cfg``'s model into ``run``.

    Args:
        cfg: the run configuration (saved as config.yaml).
        run: the run directory.
        data: training arrays (default: loaded from ``cfg`` with ``prepare_for_run``); its time
            axis must cover the training period.
        progress: show progress: a tqdm bar per epoch when stderr is a terminal, and one line
            per finished epoch on stdout either way.
    """

    def __init__(self, cfg: RunConfig, run: Run, data: Prepared | None = None, progress: bool = True):
        self.cfg, self.run, self.progress = cfg, run, progress
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        flush_denormals()  # LSTM_Z's backward: 13.4 -> 0.64 s per step (core/_runtime.py)
        self.device = select_device(t.device)
        # data-parallel ranks (torchrun, train.nproc; rank 0 of 1 otherwise): rank 0 writes the run
        self.ranks = init_ranks(self.device)
        if self.ranks.parallel and self.device.type == "cuda":
            self.device = torch.device("cuda", self.ranks.local_rank)
        if not self.ranks.main:
            run = _Follower(run)
            self.run = run
        self.task = task_for(cfg.data)
        self.loss_fn = loss_for(self.task, t)
        if cfg.model.coupling == "surrogate" and not cfg.model.surrogate:
            # the store's default surrogate job (`hydrolens surrogate`), named in config.yaml
            cfg.model.surrogate = str(run.path.parent / "surrogates" / "default")
        seed_everything(t.seed)
        if data is None:
            # the whole configured period is loaded and checked now (coverage, complete forcing,
            # plausible values), so a bad test period fails before training, not after it
            ds = load_for_config(cfg)
            check_config_period(cfg, ds, self.task)
            norm = self._saved_normalizer(run)
            if norm is None:
                norm = fit_normalizer(cfg, ds, self.task)
                if self.ranks.main:
                    save_normalizer(norm, run.normalization_path)
            self.model = build_model(cfg, norm.n_columns, len(norm.static))
            data = prepare_for_run(cfg, ds.sel(time=slice(str(cfg.data.train_start), str(cfg.data.train_end))),
                                   norm, self.model, self.task)
            val_ds = load_validation(cfg, data.sites)
            # validation sites of their own (data.val_sites), normalised with the training statistics
            val_data = None if val_ds is None else prepare_for_run(cfg, val_ds, norm, self.model, self.task)
        else:
            self.model = build_model(cfg, data.x_dyn.shape[-1], data.x_static.shape[1])
            val_data = None
        self.data = data
        # the saved config names the resolved sites, so evaluation and reruns use exactly these
        cfg.data.sites = list(data.sites)
        run.write_config(cfg.to_dict())
        # data-dependent set-up of a model (the LSTM's target scaling; restored on resume)
        self.model.prepare(data.target)
        self.model = self.model.to(self.device)
        # the forward of a training step: the model itself, or its DistributedDataParallel wrap
        self._forward = self.model
        if self.ranks.parallel and any(p.requires_grad for p in self.model.parameters()):
            from torch.nn.parallel import DistributedDataParallel

            self._forward = DistributedDataParallel(
                self.model, device_ids=[self.ranks.local_rank] if self.device.type == "cuda" else None)
        # bf16 autocast for the learner only (the process model, routing and loss stay fp32)
        self.precision = resolve_precision(t.precision, self.device)
        if hasattr(self.model, "precision"):
            self.model.precision = self.precision
        lr = self._initial_lr = t.initial_lr()
        if t.optimizer == "adadelta":
            self.optimizer = torch.optim.Adadelta(self.model.parameters(), lr=lr, rho=t.rho_adadelta,
                                                  weight_decay=t.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=t.weight_decay)
        if val_data is not None:  # data.val_sites: every training site trains
            self.val_data = val_data
            self.train_idx, self.val_idx = np.arange(len(data.sites)), np.arange(len(val_data.sites))
        else:  # train.val_fraction of the training sites validate
            self.val_data = data
            self.train_idx, self.val_idx = split_validation(len(data.sites), t.val_fraction, t.seed)
        self.sampler = WindowSampler(data.target, t.warmup, t.rho, t.batch_size, seed=t.seed,
                                     sites=self.train_idx)
        self.iters = t.iters_per_epoch or self.sampler.iterations_per_epoch()
        # each site's standard deviation of the target over the training days (NSE*'s s_b)
        self.site_scale = _site_scale(data.target, data.spinup_days)
        self.val_scale = (self.site_scale if self.val_data is data
                          else _site_scale(self.val_data.target, self.val_data.spinup_days))
        # early stopping: the best validation score so far ("loss": lower is better, the loss or
        # minus the median NSE, validation_score), its epoch, validations since then
        self.best: dict = {"loss": None, "epoch": 0, "since": 0}
        self.start_epoch = 0
        self._resume()

    @staticmethod
    def _saved_normalizer(run: Run) -> Normalizer | None:
        """The statistics a resumed run was trained with (None for a new run)."""
        if not (run.checkpoint_dir / "last.pt").exists() and not any(run.checkpoint_dir.glob("epoch_*.pt")):
            return None
        if not run.normalization_path.exists():
            return None
        return Normalizer.load(run.normalization_path)

    # checkpoints ----------------------------------------------------------------------------
    def _resume(self) -> None:
        """Continue from ``last.pt``, else from the newest intact ``epoch_NNN.pt``.

        ``resumed_from`` and ``resume_notes`` say which file was used and why others were not.

        Raises:
            CheckpointError: checkpoints exist but none is intact (names each and why).
        """
        self.resumed_from: Path | None = None
        self.resume_notes: list[str] = []
        ckdir = self.run.checkpoint_dir
        for path in resume_candidates(ckdir):
            try:
                state = load_checkpoint(path, map_location=self.device, require=RESUME_KEYS)
                _load_state_dict(self.model, state["model"], path)
                try:
                    self.optimizer.load_state_dict(state["optimizer"])
                    torch.set_rng_state(state["torch_rng"].cpu())
                except (RuntimeError, TypeError, KeyError, ValueError, AttributeError) as e:
                    raise CheckpointError(f"{path}: optimizer/RNG state does not fit "
                                          f"({' '.join(str(e).split())[:200]})") from None
                self.sampler.rng.bit_generator.state = sampler_state_from_text(state["sampler_rng"])
            except CheckpointError as e:
                self.resume_notes.append(str(e))
                continue
            self.start_epoch = int(state["epoch"])
            self.best = dict(state.get("validation") or self.best)
            self.resumed_from = path
            break
        else:
            if self.resume_notes:
                raise CheckpointError("no intact checkpoint to resume from:\n  " +
                                      "\n  ".join(self.resume_notes) +
                                      f"\nremove {ckdir} to train this run from the start")
            self.run.truncate_train_log(0)  # training starts over: rows of a killed first epoch go
            return
        if self.resumed_from.name != "last.pt" and self.ranks.main:
            # last.pt is damaged: restore it from the intact epoch file
            atomic_write(ckdir / "last.pt", lambda tmp: tmp.write_bytes(self.resumed_from.read_bytes()))
        # log rows of epochs after this checkpoint (a kill -9 mid-bookkeeping, or a fallback)
        self.run.truncate_train_log(self.start_epoch)

    def _checkpoint(self, epoch: int) -> None:
        if not self.ranks.main:  # rank 0 writes the run
            return
        ckdir = self.run.checkpoint_dir
        ckdir.mkdir(parents=True, exist_ok=True)
        state = {
            "format": FORMAT,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "sampler_rng": sampler_state_to_text(self.sampler.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "validation": dict(self.best),
        }
        paths = [ckdir / f"epoch_{epoch:03d}.pt", ckdir / "last.pt"]
        if self.best["epoch"] == epoch:  # this epoch has the best validation score so far
            paths.append(ckdir / BEST)
        save_checkpoint(state, *paths)
        keep = self.cfg.train.keep_checkpoints
        for old in resume_candidates(ckdir)[1 + keep:]:
            old.unlink(missing_ok=True)

    # loop -----------------------------------------------------------------------------------
    @property
    def stopped_early(self) -> bool:
        """Whether ``train.patience`` validations passed without a lower validation loss."""
        p = self.cfg.train.patience
        return bool(p and self.val_idx.size and self.best["since"] >= p)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """The data loss (the training loss, without the model's own term) and the median NSE
        of the validation sites (``data.val_sites``, or the held-out ``train.val_fraction`` of the
        training sites) over the training period, the model in eval mode (the
        process model itself, whatever the coupling; a Z-learner's θ from its training-year
        windows). The first ``spinup_days`` (cycled spin-up) or ``train.warmup`` days spin up.

        Returns:
            {"val_loss": ..., "val_NSE": ...}; empty without validation sites.
        """
        if not self.val_idx.size:
            return {}
        d, t = self.val_data, self.cfg.train
        i0 = d.spinup_days or t.warmup
        was_training = self.model.training
        self.model.eval()
        sims, obs = [], []
        try:
            for sl, out in forward_chunks(self.model, d, i0, self.device, t.eval_basin_chunk, self.val_idx):
                sims.append(out.outputs[self.model.target_output].float().cpu())
                obs.append(torch.from_numpy(d.target[i0:, sl]))
        finally:
            self.model.train(was_training)
        sim, ob = torch.cat(sims, 1), torch.cat(obs, 1)
        loss = float(self.loss_fn(sim, ob, t, scale=torch.from_numpy(self.val_scale[self.val_idx])))
        return {"val_loss": loss, "val_NSE": float(np.nanmedian(nse(sim.numpy(), ob.numpy())))}

    def _batch(self):
        """A mini-batch: this rank's share of its sites' inputs (all of them on one rank), and
        the whole batch's observations and scales in the order ``gather_sites`` puts the
        simulations."""
        s, d, dev, r = self.sampler, self.data, self.device, self.ranks
        b, st = s.sample()  # the same draw on every rank
        bl, stl = shard(b, r), shard(st, r)
        bg, stg = global_order(b, r), global_order(st, r)
        return (as_tensor(s.gather(d.x_dyn, bl, stl), dev), as_tensor(d.x_static[bl], dev),
                as_tensor(s.gather(d.forcing, bl, stl), dev), as_tensor(s.gather(d.target, bg, stg)[s.warmup:], dev),
                as_tensor(d.site_static[bl], dev), as_tensor(self.site_scale[bg], dev))

    def step(self) -> float:
        """One optimisation step on a fresh mini-batch; returns the loss: the task's data loss
        plus the model's own term (``aux_loss``: the range-boundary loss of the parameter
        learners; None for the δ models)."""
        x, xs, f, obs, ss, scale = self._batch()
        out = self._forward(x, xs, f, warmup=self.sampler.warmup, site_static=ss)
        # the model names the output that is compared with the target (Q_sim, SM); the loss is
        # the whole batch's, whatever the ranks (their simulations gathered)
        sim = gather_sites(out.outputs[self.model.target_output], self.ranks)
        loss = self.loss_fn(sim, obs, self.cfg.train, scale=scale)
        aux = getattr(out, "aux_loss", None)
        aux_value = 0.0
        if aux is not None:  # per-site mean: DDP's gradient average makes it the batch's mean
            aux_value = float(aux.detach())
            loss = loss + aux
        if not torch.isfinite(loss):
            raise FloatingPointError("loss became non-finite; lower the learning rate")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        self.optimizer.step()
        if self.ranks.parallel and aux is not None:  # the batch's range-boundary loss, for the log
            return float(loss.detach()) - aux_value + mean_over_ranks(aux_value, self.ranks)
        return float(loss.detach())

    def learning_rate(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (1-based): ``train.lr_schedule``'s value of the latest
        key ≤ epoch, else the optimiser's initial rate (``train.lr`` or its default)."""
        rate = self._initial_lr
        for first, lr in sorted((self.cfg.train.lr_schedule or {}).items()):
            if first <= epoch:
                rate = float(lr)
        return rate

    def _set_learning_rate(self, epoch: int) -> None:
        # a function of the epoch alone, so a resumed run continues the schedule where it was
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(epoch)

    def close(self) -> None:
        """Leave the data-parallel process group (the DDP wrapper first: gloo torn down under a
        live reducer aborts the process at exit); nothing to do on one rank."""
        if self.ranks.parallel:
            import gc

            self._forward = self.model
            gc.collect()
            close_ranks(self.ranks)

    def fit(self) -> Run:
        """Train for the configured epochs (continuing after the last checkpoint).

        A SIGTERM (or Ctrl-C) stops training cleanly: status.json says ``failed`` with the reason
        and ``hydrolens train --resume RUN`` continues from the last finished epoch.
        """
        with self.run.lock("training"), _terminate_raises() as guard:
            return self._fit(guard)

    def _fit(self, guard: _TerminateGuard) -> Run:
        t = self.cfg.train
        run = self.run
        run.update_status(state="training", epoch=self.start_epoch, epochs=t.epochs,
                          n_sites=len(self.data.sites), n_val_sites=int(self.val_idx.size),
                          device=str(self.device), precision=self.precision,
                          iters_per_epoch=self.iters, message="training", code=code_provenance(),
                          **this_process())
        self.model.train()
        # a model that fits itself (SCE-UA per site) does so in one "epoch" instead of steps
        calibrate = getattr(self.model, "calibrate", None)
        try:
            for epoch in range(self.start_epoch + 1, (1 if calibrate else t.epochs) + 1):
                if self.stopped_early:
                    break
                self._set_learning_rate(epoch)
                t0 = time.perf_counter()
                losses = []
                if calibrate is not None:
                    run.update_status(message=f"calibrating {len(self.data.sites)} sites (SCE-UA)")
                    res = calibrate(self.data, self.cfg)
                    losses.append(res["median_rmse"])
                    run.update_status(calibration=res)
                # a bar only on a terminal; a piped log (jobs, CI, `make demo > log`) gets the
                # epoch lines below and nothing in between
                bar = tqdm(range(0 if calibrate else self.iters), desc=f"epoch {epoch}/{t.epochs}",
                           disable=not (self.progress and self.ranks.main and _on_terminal()), leave=False,
                           dynamic_ncols=True)
                last_status = t0
                for it in bar:
                    losses.append(self.step())
                    bar.set_postfix(loss=f"{np.mean(losses):.4f}")
                    now = time.perf_counter()
                    if now - last_status > STATUS_EVERY_S:  # progress for `hydrolens jobs` / the app
                        last_status = now
                        run.update_status(iteration=it + 1, loss=float(np.mean(losses)),
                                          seconds_per_iteration=round((now - t0) / (it + 1), 4))
                secs = time.perf_counter() - t0
                loss = float(np.mean(losses))
                val = self.validate() if (epoch % t.val_every == 0 or epoch == t.epochs) and not calibrate else {}
                if val:
                    score = validation_score(val, t.val_metric)
                    if self.best["loss"] is None or score < self.best["loss"]:
                        self.best = {"loss": score, "epoch": epoch, "since": 0}
                    else:
                        self.best["since"] += 1
                secs_all = time.perf_counter() - t0
                row = {"epoch": epoch, "updates": epoch * (0 if calibrate else self.iters), "loss": loss,
                       **{k: round(v, 6) for k, v in val.items()}, "seconds": round(secs_all, 2)}
                note = (f"  val loss {val['val_loss']:.4f} NSE {val['val_NSE']:.3f} (best epoch "
                        f"{self.best['epoch']})" if val else "")
                # log, checkpoints and status of one epoch land together: a SIGTERM arriving here
                # is acted on once all three are written. The log row goes first: after a kill -9
                # between them, resume drops log rows newer than the checkpoint it continues from
                with guard.deferred():
                    run.append_train_log(row)
                    self._checkpoint(epoch)
                    run.update_status(epoch=epoch, loss=loss, iteration=self.iters,
                                      seconds_per_iteration=round(secs / max(1, self.iters), 4),
                                      **({"val_loss": val["val_loss"], "best_epoch": self.best["epoch"]}
                                         if val else {}),
                                      message=f"epoch {epoch}/{t.epochs} loss {loss:.4f}{note} ({secs_all:.0f} s)")
                if self.progress and self.ranks.main:
                    tqdm.write(f"epoch {epoch}/{t.epochs}  loss {loss:.4f}{note}  {secs_all:.1f} s",
                               file=sys.stdout)
                    sys.stdout.flush()
            if self.stopped_early:
                what = ("lower validation loss" if t.val_metric == "loss" else "higher validation median NSE")
                best = (f"validation loss {self.best['loss']:.4f}" if t.val_metric == "loss" else
                        f"validation median NSE {-self.best['loss']:.3f}")
                run.update_status(message=f"stopped early after epoch {run.status().get('epoch')}: no "
                                  f"{what} in {t.patience} validations; the run's model is epoch "
                                  f"{self.best['epoch']} ({best})", stopped_early=True)
        except BaseException as e:
            why = "stopped" if isinstance(e, (KeyboardInterrupt, SystemExit)) else f"{type(e).__name__}: {e}"
            try:
                done = run.status().get("epoch", 0)
            except Exception:  # noqa: BLE001 - never mask the error that stopped training
                done = "the last checkpoint"
            run.update_status(state="failed", message=f"{why} after epoch {done}; "
                              f"continue with `hydrolens train --resume {run.run_id}`")
            raise
        return run


class _Follower:
    """A rank > 0's view of the run (data-parallel training): reads pass through, writes are
    rank 0's, the lock is rank 0's."""

    _WRITES = frozenset({"update_status", "append_train_log", "write_config", "truncate_train_log"})

    def __init__(self, run: Run):
        self._run = run

    def lock(self, purpose: str):
        return contextlib.nullcontext()

    def __getattr__(self, name: str):
        if name in self._WRITES:
            return lambda *args, **kwargs: None
        return getattr(self._run, name)


def _site_scale(target: np.ndarray, skip: int = 0) -> np.ndarray:
    """Each site's standard deviation of ``target [time, site]`` over its observed days after
    the first ``skip`` (a cycled spin-up), float32 [site]; 0 for a site with fewer than two."""
    obs = target[skip:]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN or one-value sites
        sd = np.nanstd(obs, axis=0, ddof=1)
    return np.nan_to_num(sd, nan=0.0).astype(np.float32)


def _on_terminal() -> bool:
    """Whether tqdm's stream (stderr) is an interactive terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def validation_score(val: dict[str, float], metric: str) -> float:
    """The early-stopping criterion of one validation, lower is better: the validation loss, or
    minus the validation sites' median NSE (``train.val_metric`` "loss" or "NSE"; a NaN median,
    no site with an observation, scores +inf)."""
    score = val["val_loss"] if metric == "loss" else -val["val_NSE"]
    return score if np.isfinite(score) else float("inf")


def split_validation(n_sites: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split site indices ``0..n_sites-1`` into (training, validation) with ``fraction`` of them
    (rounded, at least 1 when fraction > 0, at most n_sites − 1) held out, drawn with ``seed``.

    Returns:
        (train indices, validation indices), each sorted; validation empty for fraction 0 or a
        single site (nothing could be trained on otherwise; status.json says n_val_sites 0).

    Raises:
        ValueError: a fraction outside [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"train.val_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0 or n_sites < 2:
        return np.arange(n_sites), np.zeros(0, np.int64)
    k = min(n_sites - 1, max(1, round(fraction * n_sites)))
    val = np.sort(np.random.default_rng([seed, 0x5A1]).choice(n_sites, size=k, replace=False))
    return np.setdiff1d(np.arange(n_sites), val), val


class _TerminateGuard:
    """Turns SIGTERM into SystemExit and SIGINT (Ctrl-C) into KeyboardInterrupt, except inside
    :meth:`deferred`, where either is held back until the block ends (so an epoch's log line,
    checkpoints and status are never split)."""

    def __init__(self, active: bool):
        self.active = active
        self._depth = 0
        self._pending: int | None = None

    @staticmethod
    def _raise(signum):
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def handler(self, signum, frame):
        if self._depth:
            self._pending = signum
            return
        self._raise(signum)

    @contextlib.contextmanager
    def deferred(self):
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._depth == 0 and self._pending is not None:
            signum, self._pending = self._pending, None
            self._raise(signum)


@contextlib.contextmanager
def _terminate_raises():
    """Route SIGTERM and SIGINT through a :class:`_TerminateGuard` while training (main thread
    only), so the status is written and no epoch's bookkeeping is split.

    Yields the guard; outside the main thread it never raises (signals are delivered to the
    main thread only)."""
    guard = _TerminateGuard(threading.current_thread() is threading.main_thread())
    if not guard.active:
        yield guard
        return
    old = {s: signal.signal(s, guard.handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield guard
    finally:
        for s, h in old.items():
            signal.signal(s, h)
