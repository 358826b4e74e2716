"""Process-level memory settings that make CPU training fast on Linux; applied when ``core`` is
imported (before torch, for the first one). They change no numbers. Set
``HYDROLENS_DEFAULT_MALLOC=1`` to leave the C allocator alone.

Why (benchmarks/bench_engine.py, 2-core VM): a training step allocates and frees tens of MB of
tensors (the HBV tape, LSTM activations). By default glibc serves every block above its mmap
threshold with a fresh mmap and hands freed heap memory back to the OS, so each step page-faults
the same memory again; a fault costs microseconds on a VM (65 MB took ~100 ms to first touch).

* ``THP_MEM_ALLOC_ENABLE=1`` (a PyTorch setting, read when torch initialises): allocations
  ≥ 2 MB are backed by transparent huge pages, ~500x fewer faults (65 MB: 103 -> 12 ms).
* ``mallopt(M_MMAP_THRESHOLD, 32 MiB)`` and ``mallopt(M_TRIM_THRESHOLD, 1 GiB)`` (glibc): blocks up
  to 32 MiB come from the heap and freed memory stays there for the next step (the same knobs as
  glibc's MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_). HBV forward+backward 100 x 730: 0.058
  -> 0.032 s on its first calls; hidden-64 training step 0.39 -> 0.33 s. The cost: the process
  keeps up to 1 GiB of freed heap instead of returning it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def configure_memory() -> bool:
    """Apply the settings above; returns True when glibc's mallopt was set."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    if os.environ.get("HYDROLENS_DEFAULT_MALLOC") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): leave it
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, 32 * 2**20) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, 2**30) == 1 and ok
    return ok


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a HydroLens child process (``python -m core...``): this one's, with
    this checkout first on PYTHONPATH and unbuffered output, plus ``extra``."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": repo + (os.pathsep + path if path else ""), **extra}


def flush_denormals() -> bool:
    """Make the CPU flush subnormal floats (|x| < 1.2e-38 in float32) to zero, for training.

    Why: backpropagating a loss on the last hidden state only (LSTM_Z reads a 240-day window and
    keeps h[-1]) through a long recurrence makes the early steps' gradients decay into the
    subnormal range, and x86 arithmetic on subnormals is ~100x slower. Measured on the 2-core VM,
    one thread, LSTM_Z forward + backward on 104 cells x 240 days: 13.4 s -> 0.64 s. The numbers
    it changes are below 1e-38 (gradients that are zero for any practical purpose); float64
    (the finite-difference tests) is unaffected in practice (its subnormals are < 2.3e-308).

    Returns True when the CPU supports it (SSE3); applied per process by the trainer and the
    surrogate job.
    """
    import torch

    return bool(torch.set_flush_denormal(True))


#: CPU flags (``/proc/cpuinfo``) that give bf16 matrix units: Intel AMX, AVX-512 BF16
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_description() -> dict:
    """The CPU model and the bf16 flags it has (``/proc/cpuinfo`` on Linux; elsewhere the
    platform's processor name and no flags), for benchmarks and ``resolve_precision``."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return {"cpu": model, "bf16_flags": [f for f in BF16_CPU_FLAGS if f in flags]}


def resolve_precision(precision: str, device) -> str:
    """``train.precision`` for ``device``: ``auto`` -> "bf16" on CUDA with bf16 support or a CPU
    with bf16 units (``BF16_CPU_FLAGS``), else "fp32"; "fp32"/"bf16" as given.

    Raises:
        ValueError: an unknown precision name.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"train.precision must be auto, fp32 or bf16, got {precision!r}")
    kind = getattr(device, "type", str(device))
    if kind == "cuda":
        if precision != "auto":
            return precision
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return precision
    cpu = cpu_description()
    if precision == "auto":
        return "bf16" if cpu["bf16_flags"] else "fp32"
    if kind == "cpu" and not cpu["bf16_flags"]:
        import warnings

        warnings.warn(
            f"train.precision 'bf16' on a CPU without bf16 units ({cpu['cpu']}: none of "
            f"{', '.join(BF16_CPU_FLAGS)}) is emulated and far slower than fp32 (a paper432 step: "
            "92 s against 2.9 s on an AVX2-only AMD EPYC, docs/performance.md); 'auto' picks fp32 here",
            RuntimeWarning, stacklevel=2)
    return precision


def learner_autocast(precision: str, device_type: str):
    """The autocast context a learner's forward runs in: bf16 when ``precision`` is "bf16",
    else a no-op. Only the learner: process models, routing and losses stay fp32 (the caller
    casts the learner's output back with ``.float()``)."""
    import torch

    return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=precision == "bf16")


def code_provenance() -> dict:
    """What code and machine a run was trained with, for its status.json (``code``): the
    installed HydroLens version (None when not installed), the git commit of this checkout and
    whether tracked files differ from it (None for both outside a git checkout, or without git),
    the torch version and the CPU model. Reads git with two short subprocesses (2 s timeout
    each); never raises."""
    import importlib.metadata
    import subprocess
    from pathlib import Path

    try:
        version = importlib.metadata.version("hydrolens")
    except importlib.metadata.PackageNotFoundError:  # a checkout used without installing it
        version = None
    root = Path(__file__).resolve().parents[1]
    commit = dirty = None
    if (root / ".git").exists():
        try:
            git = ["git", "-C", str(root)]
            out = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, timeout=2)
            if out.returncode == 0:
                commit = out.stdout.strip()
                st = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=2)
                dirty = bool(st.stdout.strip()) if st.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            commit = dirty = None
    torch = sys.modules.get("torch")
    return {"hydrolens": version, "commit": commit, "dirty": dirty,
            "torch": getattr(torch, "__version__", None), "cpu": cpu_description()["cpu"]}
