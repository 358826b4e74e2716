"""Checkpoints that load without running code, and resume that survives a damaged file.

Every file under ``<run>/checkpoints/`` is read with ``torch.load(weights_only=True)``: only
tensors and plain containers (dict, list, tuple, str, int, float, bool, None) are accepted, so a
crafted pickle in a shared run directory is rejected instead of executed. What is not a tensor is
stored in such a form: the numpy sampler state as JSON text, the torch RNG state as a uint8
tensor, the optimizer state as torch's own tensor/number dicts.

Every epoch file ``epoch_NNN.pt`` holds the whole training state (model, optimizer, both RNG
states, epoch), the same as ``last.pt`` at that epoch, so a resume can fall back to the newest
intact one and still continue bit-identically.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from .io import atomic_write

#: Keys of a resumable checkpoint (``last.pt`` and, since format 2, every ``epoch_NNN.pt``).
RESUME_KEYS = ("model", "optimizer", "sampler_rng", "torch_rng", "epoch")
FORMAT = 2
_EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt")


class CheckpointError(ValueError):
    """A checkpoint file cannot be loaded safely or lacks what it should hold (names the file)."""


def save_checkpoint(state: dict[str, Any], *paths: Path) -> None:
    """Serialise ``state`` with ``torch.save`` once and write it to each of ``paths`` atomically,
    one after the other (a kill leaves every previous file intact)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    for path in paths:
        atomic_write(path, lambda tmp: tmp.write_bytes(data))


def load_checkpoint(path: Path, map_location="cpu", require: tuple[str, ...] = ("model", "epoch")
                    ) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code in the file can run).

    Args:
        path: the ``.pt`` file.
        map_location: device for the tensors.
        require: keys the checkpoint must have.

    Returns:
        the checkpoint dict.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: empty, truncated or not a torch checkpoint; holds objects other than
            tensors and plain containers (a pickle that would run code); lacks a required key.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes; the write that made it was interrupted)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain values, which "
            f"could run code (torch.load weights_only=True: {first}). Only load checkpoints you "
            "trust; HydroLens never writes such objects") from None
    except (EOFError, RuntimeError, OSError, ValueError, zipfile.BadZipFile, KeyError,
            AttributeError, IndexError, TypeError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not written by "
                              f"torch.save: {type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict of training state, found {type(state).__name__}")
    missing = [k for k in require if k not in state]
    if missing:
        raise CheckpointError(f"{path}: lacks {missing} (has {sorted(map(str, state))})")
    if "epoch" in state and not (isinstance(state["epoch"], int) and state["epoch"] >= 0):
        raise CheckpointError(f"{path}: 'epoch' is {state['epoch']!r}; expected a whole number ≥ 0")
    return state


def sampler_state_to_text(state: dict) -> str:
    """numpy ``bit_generator.state`` as JSON text (no pickle needed to read it back)."""
    return json.dumps(state)


def sampler_state_from_text(value) -> dict:
    """Inverse of :func:`sampler_state_to_text`; also accepts the dict of format-1 checkpoints.

    Raises:
        CheckpointError: not a numpy bit-generator state.
    """
    try:
        state = json.loads(value) if isinstance(value, str) else value
    except ValueError as e:
        raise CheckpointError(f"sampler_rng is not JSON ({e})") from None
    if not isinstance(state, dict) or "bit_generator" not in state or "state" not in state:
        raise CheckpointError("sampler_rng is not a numpy bit-generator state")
    return state


def resume_candidates(ckdir: Path) -> list[Path]:
    """``last.pt`` first, then the epoch files, newest first."""
    epochs = sorted((p for p in ckdir.glob("epoch_*.pt") if _EPOCH_FILE.fullmatch(p.name)),
                    key=lambda p: int(_EPOCH_FILE.fullmatch(p.name).group(1)), reverse=True)
    last = ckdir / "last.pt"
    return ([last] if last.exists() else []) + epochs
