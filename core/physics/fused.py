"""Fused HBV: the whole time loop, forward and adjoint, in one compiled CPU kernel.

Why: the reference HBV (``hbv.py``) issues ~60 small tensor operations per simulated day, and
autograd records each of them, so a 730-day window costs tens of thousands of graph nodes and
the run time is dominated by per-operation overhead, not arithmetic. Here the time loop runs in
C++ (``kernels/hbv_kernel.cpp``, OpenMP over basins) and the backward pass is the hand-derived
adjoint of the same step, run in reverse time from the states saved by the forward pass
(7 floats per component and day: 5 states and the two power-law efficiencies, so the
backward pass needs no pow). ``FusedHBVFunction`` plugs it into autograd, so gradients reach
parameters, forcings, the initial state and, for δn(NN_r), the recharge network's weights
exactly as through the reference; tests compare the
two in float64 (outputs to 1e-6 relative, gradients to 1e-5) and run ``gradcheck``.

The kernel is a plain shared library compiled with the system C++ compiler on first use (about
2 s, no torch headers) and cached under ``$HYDROLENS_CACHE`` (default ``~/.cache/hydrolens``),
keyed by the source's hash. It serves CPU tensors; CUDA tensors (and machines without a C++
compiler) use the reference implementation, which is the same model.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch

from .spec import GAMMA, HBV_FLUXES, HBV_PARAMETERS, HBV_STATES

SOURCE = Path(__file__).with_name("kernels") / "hbv_kernel.cpp"
N_OUT = len(HBV_STATES) + len(HBV_FLUXES)
N_SAVED = len(HBV_STATES) + 2  # states entering each day + the two power-law efficiencies

_lock = threading.Lock()
#: stem -> the loaded library, or the reason it could not be built/loaded (tried once per process)
_loaded: dict[str, ctypes.CDLL | str] = {}


class KernelUnavailable(RuntimeError):
    """The fused kernel could not be built or loaded (the message says why)."""


def _cache_dir() -> Path:
    return Path(os.environ.get("HYDROLENS_CACHE", Path.home() / ".cache" / "hydrolens")) / "kernels"


BASE_FLAGS = ["-O3", "-std=c++17", "-fopenmp", "-shared", "-fPIC", "-fno-math-errno"]
# tried in order: this CPU's vector ISA with glibc's vector exp/log (libmvec), this CPU's ISA
# alone (exp/log lane by lane), the baseline ISA
FLAG_SETS = (["-march=native", "-DHBV_MVEC", "-lmvec"], ["-march=native"], [])


def _cpu_signature() -> str:
    """What -march=native depends on, so a cache shared between machines never mixes them."""
    sig = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "model name", "Features")):
                sig += line
    except OSError:
        sig += platform.processor()
    return sig


def build_library(source: Path, stem: str) -> Path:
    """Compile ``source`` (a self-contained C++ file with extern "C" entry points) into a shared
    library cached under ``$HYDROLENS_CACHE/kernels/<stem>_<hash>.so``, trying ``FLAG_SETS``
    in order; the cached file is reused while the source, flags and CPU are the same.

    Raises:
        KernelUnavailable: no C++ compiler, or every flag set failed (the compiler's messages).
    """
    src = source.read_bytes()
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    errors = []
    for extra in FLAG_SETS:
        flags = [*BASE_FLAGS, *extra]
        key = hashlib.sha256(src + " ".join(flags).encode() + _cpu_signature().encode()).hexdigest()[:16]
        lib_path = _cache_dir() / f"{stem}_{key}.so"
        if lib_path.exists():
            return lib_path
        if not cxx:
            raise KernelUnavailable("no C++ compiler found (install g++, or set CXX)")
        lib_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=lib_path.parent)
        os.close(fd)
        try:
            compile_flags = [f for f in flags if not f.startswith("-l")]
            libs = [f for f in flags if f.startswith("-l")]  # after the source, for the linker
            proc = subprocess.run([cxx, *compile_flags, str(source), "-o", tmp, *libs],
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                os.replace(tmp, lib_path)  # atomic: concurrent builders race harmlessly
                return lib_path
            errors.append(f"{' '.join(extra) or 'baseline'}: {proc.stderr[-800:]}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise KernelUnavailable(f"compiling {source.name} failed:\n" + "\n".join(errors))


def _declare(lib: ctypes.CDLL) -> None:
    i64, i32, vp = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        fwd = getattr(lib, f"hbv_forward_{suffix}")
        fwd.argtypes = [i64, i64, i64, vp, vp, vp, vp, vp, i32, real, vp, i32, vp, vp, i32, vp, vp, i32]
        fwd.restype = None
        bwd = getattr(lib, f"hbv_backward_{suffix}")
        bwd.argtypes = [i64, i64, i64, vp, vp, vp, vp, vp, i32, real, vp, i32, vp, vp, i32, vp, vp, vp, vp,
                        vp, vp, vp, i32]
        bwd.restype = None
    lib.hbv_lanes_f32.restype = ctypes.c_int
    lib.hbv_lanes_f64.restype = ctypes.c_int
    lib.hbv_nn_hmax.restype = ctypes.c_int
    lib.hbv_param_names.restype = ctypes.c_char_p
    lib.hbv_output_names.restype = ctypes.c_char_p
    # the kernel hard-codes orders: check them against the one spec
    want_p = ",".join([s.name for s in HBV_PARAMETERS] + [GAMMA.name])
    want_o = ",".join([*HBV_STATES, *HBV_FLUXES])
    if lib.hbv_param_names().decode() != want_p or lib.hbv_output_names().decode() != want_o:
        raise KernelUnavailable("kernel parameter/output order differs from core.physics.spec")


def load_library(source: Path, stem: str, declare) -> ctypes.CDLL:
    """Build ``source`` (``build_library``, cached on disk), load it and run ``declare(lib)``
    (argument types, order checks) once per process; a failure is remembered, so later calls
    raise at once.

    Raises:
        KernelUnavailable: no compiler, compilation failed, or ``declare`` refused the library.
    """
    with _lock:
        if stem not in _loaded:
            try:
                lib = ctypes.CDLL(str(build_library(source, stem)))
                declare(lib)
                _loaded[stem] = lib
            except (KernelUnavailable, OSError) as e:
                _loaded[stem] = str(e)
        got = _loaded[stem]
        if isinstance(got, str):
            raise KernelUnavailable(got)
        return got


def load_kernel() -> ctypes.CDLL:
    """Build (once, cached) and load the HBV kernel.

    Raises:
        KernelUnavailable: no compiler, compilation failed, or the kernel disagrees with the spec.
    """
    return load_library(SOURCE, "hbv", _declare)


def fused_available(device: torch.device | str = "cpu") -> bool:
    """True when the fused kernel serves tensors on ``device`` (CPU with a working compiler)."""
    if torch.device(device).type != "cpu":
        return False
    try:
        load_kernel()
        return True
    except KernelUnavailable as e:
        warnings.warn(f"fused HBV kernel unavailable, using the reference implementation: {e}",
                      RuntimeWarning, stacklevel=2)
        return False


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def _ptr_array(tensors) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])


def recharge_net_size(hidden: int) -> int:
    """Length of the flat weight buffer of a RechargeNet of width ``hidden`` (``hbv_kernel.cpp``):
    4 input scales, W1 [H, 5], b1 [H], W2 [H, H], b2 [H], W3 [1, H], b3 [1]."""
    return 4 + hidden * 5 + hidden + hidden * hidden + hidden + hidden + 1


class FusedHBVFunction(torch.autograd.Function):
    """autograd wrapper of the kernel.

    forward(forcing [time, site, 3], state0 [5, basin, nmul], mean_out: bool, sm_floor: float,
    nn_hidden: int, nn_weights, *params) with sm_floor the soil-moisture floor after ET in mm
    (0: none; ``hbv_step``); nn_weights None (the HBV's power law) or, for δn(NN_r), the flat
    weight buffer of its RechargeNet of width nn_hidden (``RechargeNet.flat_weights``, length
    :func:`recharge_net_size`; gradients flow back into it); and params in ``HBV_PARAMETERS``
    (+ GAMMA) order, each [1 or time, basin, nmul]. Returns (outputs [18, basin, time] if
    mean_out else [18, basin, nmul, time], final state [5, basin, nmul]). Outputs are ordered as
    ``HBV_STATES + HBV_FLUXES``; time is innermost so that every basin streams through
    contiguous memory (callers take ``.movedim(-1, 0)`` views).

    Raises:
        TypeError: a dtype other than float32/float64. ValueError: a network wider than the
        kernel takes (``hbv_nn_hmax``) or a weight buffer of the wrong length.
    """

    @staticmethod
    def forward(ctx, forcing, state0, mean_out, sm_floor, nn_hidden, nn_weights, *params):
        lib = load_kernel()
        nt, nb, _ = forcing.shape
        nm = state0.shape[-1]
        dtype = forcing.dtype
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"fused HBV supports float32/float64, got {dtype}")
        if nn_weights is not None:
            if not 1 <= nn_hidden <= lib.hbv_nn_hmax():
                raise ValueError(f"the fused kernel takes recharge networks 1..{lib.hbv_nn_hmax()} wide, "
                                 f"got {nn_hidden}")
            if nn_weights.numel() != recharge_net_size(nn_hidden):
                raise ValueError(f"recharge network weights: {nn_weights.numel()} values, expected "
                                 f"{recharge_net_size(nn_hidden)} for width {nn_hidden}")
            nn_weights = nn_weights.detach().to(dtype).contiguous()
        P, T, PET = (forcing[..., i].t().contiguous() for i in range(3))  # [site, time]
        state0 = state0.contiguous()
        params = [p.to(dtype).contiguous() for p in params]
        strides = (ctypes.c_int64 * len(params))(*[0 if p.shape[0] == 1 else nb * nm for p in params])
        out = torch.empty((N_OUT, nb, nt) if mean_out else (N_OUT, nb, nm, nt), dtype=dtype)
        final = torch.empty_like(state0)
        need_grad = any(ctx.needs_input_grad)
        lanes = lib.hbv_lanes_f64() if dtype == torch.float64 else lib.hbv_lanes_f32()
        groups = -(-nm // lanes)
        # the tape: [site, lane group, time, 7, lanes]
        saved = torch.empty((nb, groups, nt, N_SAVED, lanes), dtype=dtype) if need_grad else None
        gamma = int(len(params) == len(HBV_PARAMETERS) + 1)
        fn = lib.hbv_forward_f64 if dtype == torch.float64 else lib.hbv_forward_f32
        par_ptrs = _ptr_array(params)
        nn_ptr = _ptr(nn_weights) if nn_weights is not None else None
        fn(nt, nb, nm, _ptr(P), _ptr(T), _ptr(PET), ctypes.cast(par_ptrs, ctypes.c_void_p),
           ctypes.cast(strides, ctypes.c_void_p), gamma, float(sm_floor), nn_ptr, int(nn_hidden),
           _ptr(state0), _ptr(out), int(mean_out), _ptr(final), _ptr(saved) if saved is not None else None,
           torch.get_num_threads())
        if need_grad:
            ctx.save_for_backward(P, T, PET, saved, nn_weights, *params)
            ctx.nn_hidden = int(nn_hidden)
            ctx.mean_out = bool(mean_out)
            ctx.gamma = gamma
            ctx.sm_floor = float(sm_floor)
            ctx.dims = (nt, nb, nm)
        return out, final

    @staticmethod
    def backward(ctx, g_out, g_final):
        lib = load_kernel()
        P, T, PET, saved, nn_weights, *params = ctx.saved_tensors
        nt, nb, nm = ctx.dims
        dtype = P.dtype
        g_out = (g_out if g_out is not None else
                 torch.zeros((N_OUT, nb, nt) if ctx.mean_out else (N_OUT, nb, nm, nt), dtype=dtype))
        g_out = g_out.contiguous()
        g_final = g_final.contiguous() if g_final is not None else None
        gP, gT, gPET = (torch.zeros_like(P) for _ in range(3))
        gpar = [torch.zeros_like(p) for p in params]
        g_state0 = torch.empty((len(HBV_STATES), nb, nm), dtype=dtype)
        strides = (ctypes.c_int64 * len(params))(*[0 if p.shape[0] == 1 else nb * nm for p in params])
        fn = lib.hbv_backward_f64 if dtype == torch.float64 else lib.hbv_backward_f32
        par_ptrs, gpar_ptrs = _ptr_array(params), _ptr_array(gpar)
        # each basin's weight adjoints (its thread writes its own row), summed below
        g_nn = torch.zeros((nb, nn_weights.numel()), dtype=dtype) if nn_weights is not None else None
        fn(nt, nb, nm, _ptr(P), _ptr(T), _ptr(PET), ctypes.cast(par_ptrs, ctypes.c_void_p),
           ctypes.cast(strides, ctypes.c_void_p), ctx.gamma, ctx.sm_floor,
           _ptr(nn_weights) if nn_weights is not None else None, ctx.nn_hidden, _ptr(saved), _ptr(g_out),
           int(ctx.mean_out),
           _ptr(g_final) if g_final is not None else None, _ptr(gP), _ptr(gT), _ptr(gPET),
           ctypes.cast(gpar_ptrs, ctypes.c_void_p), _ptr(g_state0), _ptr(g_nn) if g_nn is not None else None,
           torch.get_num_threads())
        g_forcing = torch.stack([gP.t(), gT.t(), gPET.t()], dim=-1) if ctx.needs_input_grad[0] else None
        g_weights = g_nn.sum(0) if g_nn is not None and ctx.needs_input_grad[5] else None
        return (g_forcing, g_state0 if ctx.needs_input_grad[1] else None, None, None, None, g_weights,
                *[g if need else None for g, need in zip(gpar, ctx.needs_input_grad[6:])])
