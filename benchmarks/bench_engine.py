"""Engine benchmark: fused vs reference HBV, the full dPL training step, scaling, large forward.

Prints medians of repeated runs in one process (ratios are taken within this process):

  1. HBV forward+backward, 100 basins x 730 days (365 warm-up without gradient + 365 with),
     nmul 16, dynamic BETA and GAMMA, gamma-UH routing on: fused, reference, ratio;
     1b. the same with δn(NN_r)'s recharge network (RechargeNet, width 16) in the HBV.
  2. the full dPL training step as `hydrolens train --preset paper432` runs it: ``Trainer.step``
     itself (flush_denormals, the thread count, batch 100 x (365 warm-up + 365) days of real
     Caravan basins, LSTM g_A hidden 256 + HBV + routing + loss + Adadelta) in fp32 and under
     bf16 autocast (``train.precision``), the fp32 full-backprop step (``model.warmup_grad``),
     and at hidden 64 (the bench432 preset); the product's bf16 step against that fp32
     full-backprop step (issue 22's target ratio) on its own line, ``step speed-up bf16 vs fp32: R.Rx``.
  3. HBV forward+backward over 365, 730 and 1460 days (gradient over the whole window).
  4. forward of 671 basins x 5479 days (HBV alone, and with the LSTM), time and peak RSS,
     each in a fresh subprocess so peak RSS is its own.
  5. one CLI training epoch (demo data, 10 iterations) with engine fused and reference.
  6. the same 1-2 on CUDA when a GPU is present.

The CPU model and its bf16/AMX flags are printed first.

Run:  .venv/bin/python benchmarks/bench_engine.py [--reps 5] [--threads 2] [--skip-cli]
      [--data-root PATH] [--only-step] [--only-hbv] [--bf16-anyway]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import core  # noqa: E402,F401  (before torch: memory settings, see core/_runtime.py)
import torch  # noqa: E402

from core.models import DeltaModel  # noqa: E402
from core.physics import HBV, ROUTING_PARAMETERS, RechargeNet, gamma_unit_hydrograph, route  # noqa: E402
from core._runtime import cpu_description, flush_denormals  # noqa: E402
from core.runs import RunStore  # noqa: E402
from core.training import rmse_comb_loss  # noqa: E402
from core.training.config import compose_config  # noqa: E402
from core.training.trainer import Trainer  # noqa: E402


def synthetic(nt: int, nb: int, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    day = torch.arange(nt, dtype=torch.float32).unsqueeze(1)
    P = torch.rand(nt, nb, generator=g) ** 3 * 40
    T = 8 - 14 * torch.cos(2 * torch.pi * day / 365) + 3 * torch.randn(nt, nb, generator=g)
    PET = torch.clamp(2 - 2 * torch.cos(2 * torch.pi * day / 365), min=0).expand(nt, nb)
    return torch.stack([P, T, PET], -1).contiguous().to(device)


def hbv_params(model: HBV, nt: int, nb: int, dynamic=("BETA", "GAMMA"), device="cpu"):
    g = torch.Generator().manual_seed(1)
    raw = {s.name: torch.rand(nt if s.name in dynamic else 1, nb, model.nmul, generator=g).to(device)
           .requires_grad_() for s in model.parameter_specs}
    rr = [torch.rand(nb, generator=g).to(device).requires_grad_() for _ in ROUTING_PARAMETERS]
    return raw, rr


def hbv_fwd_bwd(model: HBV, forcing, raw, rr, warmup: int):
    """What the δ model does with the HBV in one training step (the learner excluded): dynamic
    parameters exist for the target window only, the warm-up runs without gradient with the
    static values (a dynamic parameter's last day), then the window runs with gradient."""
    specs = {s.name: s for s in model.parameter_specs}
    params = {n: specs[n].scale(r) for n, r in raw.items()}
    state = None
    if warmup:
        with torch.no_grad():
            static = {n: v[-1:].detach() for n, v in params.items()}
            state = model(forcing[:warmup], static).final_state
    res = model(forcing[warmup:], params, state)
    a, b = (s.scale(r) for s, r in zip(ROUTING_PARAMETERS, rr))
    q = route(res.outputs["Q_unrouted"], gamma_unit_hydrograph(a, b))
    q.mean().backward()


def timeit(fn, reps: int, sync=None, warmup: int = 3) -> float:
    """Median of ``reps`` timed calls after ``warmup`` untimed ones: steady state, as in a
    training loop (the first calls build the kernel and size the allocator's pools; without the
    memory settings of core/_runtime.py the first ~8 HBV calls were up to 2x slower)."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench_hbv(engine: str, nt: int, warmup: int, reps: int, device="cpu", nb=100,
              recharge_net: bool = False) -> float:
    model = HBV(nmul=16, use_gamma=True, engine=engine,
                recharge_net=RechargeNet().to(device) if recharge_net else None)
    forcing = synthetic(nt, nb, device)
    raw, rr = hbv_params(model, nt - warmup, nb, device=device)  # dynamic ones: the window only
    sync = torch.cuda.synchronize if device == "cuda" else None
    return timeit(lambda: hbv_fwd_bwd(model, forcing, raw, rr, warmup), reps, sync)


def bench_step(engine: str, reps: int, device="cpu", nb=100, hidden=256) -> float:
    torch.manual_seed(0)
    model = DeltaModel(3, 35, nmul=16, dynamic=("BETA", "GAMMA"), use_gamma=True, hidden=hidden,
                       engine=engine).to(device)
    opt = torch.optim.Adadelta(model.parameters())
    forcing = synthetic(730, nb, device)
    x = torch.randn(730, nb, 3, device=device)
    xs = torch.randn(nb, 35, device=device)
    obs = torch.rand(365, nb, device=device) * 3

    def step():
        out = model(x, xs, forcing, warmup=365)
        loss = rmse_comb_loss(out.outputs["Q_sim"], obs)
        opt.zero_grad()
        loss.backward()
        opt.step()

    sync = torch.cuda.synchronize if device == "cuda" else None
    return timeit(step, reps, sync)


def trainer_step(preset: str, precision: str, reps: int, threads: int, data_root: str | None,
                 engine: str = "auto", hidden: int | None = None, warmup_grad: bool | None = None) -> float:
    """Median seconds of ``Trainer.step`` of ``preset`` (delta_n_gamma_beta, 100 basins), after
    one untimed step."""
    cfg = compose_config(preset, overrides={
        "model.variant": "delta_n_gamma_beta", "model.engine": engine, "model.hidden": hidden,
        "model.warmup_grad": warmup_grad,
        "train.precision": precision, "train.threads": threads, "data.root": data_root,
        "data.sites": "100"})
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, RunStore(tmp).create(f"bench-{preset}-{precision}"), progress=False)
        tr.model.train()
        return timeit(tr.step, reps, warmup=1)


def big_forward_child(kind: str, engine: str) -> None:
    """Run in a subprocess: forward of 671 x 5479 (chunks of 64 basins for the LSTM)."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    nt, nb = 5479, 671
    forcing = synthetic(nt, nb)
    with torch.no_grad():
        # inputs are built before the clock starts: only the forward pass is timed
        if kind == "hbv":
            model = HBV(nmul=16, use_gamma=True, engine=engine)
            raw, _ = hbv_params(model, nt, nb)
            specs = {s.name: s for s in model.parameter_specs}
            params = {n: specs[n].scale(r.detach()) for n, r in raw.items()}
            t0 = time.perf_counter()
            model(forcing, params)
        else:
            model = DeltaModel(3, 35, nmul=16, dynamic=("BETA", "GAMMA"), use_gamma=True, hidden=256,
                               engine=engine).eval()
            x, xs = torch.randn(nt, nb, 3), torch.randn(nb, 35)
            t0 = time.perf_counter()
            for b0 in range(0, nb, 64):
                sl = slice(b0, b0 + 64)
                model(x[:, sl], xs[sl], forcing[:, sl], warmup=0)
    secs = time.perf_counter() - t0
    print(json.dumps({"seconds": round(secs, 2), "peak_rss_gib": round(peak_rss_gib(), 3)}))


def peak_rss_gib() -> float:
    """Peak resident set of this process (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024 ** 2  # kB -> GiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def big_forward(kind: str, engine: str, threads: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--engine", engine],
                          capture_output=True, text=True, env={**os.environ, "BENCH_THREADS": str(threads)})
    if proc.returncode != 0:
        return {"error": proc.stderr[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cli_epoch(engine: str) -> float:
    """Seconds of one CLI training epoch (demo preset data, 10 iterations) with ``engine``."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        cfg = {"preset": "bench", "data": {"sites": 50},
               "model": {"variant": "delta_n", "nmul": 16, "hidden": 64, "engine": engine},
               "train": {"epochs": 1, "batch_size": 50, "iters_per_epoch": 10, "optimizer": "adam",
                         "lr": 0.005}}
        (Path(tmp) / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        proc = subprocess.run([sys.executable, "-m", "core.cli", "train", "--config", f"{tmp}/cfg.yaml",
                               "--out", f"{tmp}/runs", "--no-evaluate", "--no-progress"],
                              capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-1000:])
        log = next(Path(tmp, "runs").glob("*/train_log.csv")).read_text().splitlines()
        return float(log[1].split(",")[2])


def step_section(a) -> None:
    """Section 2: Trainer.step in fp32 and bf16 at hidden 256 and 64, and the reference HBV.

    On a CPU without bf16 units (no amx_bf16/avx512_bf16) bf16 is emulated and ``auto`` trains in
    fp32, so the bf16 lines are skipped unless ``--bf16-anyway`` (they took 92 s a step against
    2.9 s fp32 on an AVX2-only AMD EPYC); the speed-up line then says why it has no figure."""
    time_bf16 = bool(cpu_description()["bf16_flags"]) or a.bf16_anyway
    fp32 = trainer_step("paper432", "fp32", a.reps, a.threads, a.data_root)
    bf16 = trainer_step("paper432", "bf16", a.reps, a.threads, a.data_root) if time_bf16 else None
    shown = f"{bf16:.3f} s ({fp32 / bf16:.1f}x faster than the same step in fp32)" if bf16 else \
        "skipped (no bf16 units: auto trains in fp32 here)"
    print(f"2. full dPL training step (Trainer.step, paper432: LSTM 256 + HBV + loss + Adadelta, "
          f"100 basins x 730 d): fp32 {fp32:.3f} s | bf16 {shown}")
    full = trainer_step("paper432", "fp32", a.reps, a.threads, a.data_root, warmup_grad=True)
    print(f"2a. fp32 full-backprop step (gradient through the warm-up year too, model.warmup_grad): "
          f"{full:.3f} s; the product's step ({'bf16' if bf16 else 'fp32'}, warm-up without gradient) "
          f"is {full / (bf16 or fp32):.1f}x faster")
    # issue 22's ratio: the product's bf16 step against the fp32 full-backprop step of this run
    print(f"step speed-up bf16 vs fp32: {full / bf16:.1f}x" if bf16 else
          "step speed-up bf16 vs fp32: n/a (this CPU has no bf16 units; --bf16-anyway times the emulation)")
    h64 = {p: trainer_step("bench432", p, a.reps, a.threads, a.data_root)
           for p in (("fp32", "bf16") if time_bf16 else ("fp32",))}
    print(f"2b. the same step at hidden 64 (bench432: Adam): fp32 {h64['fp32']:.3f} s" +
          (f" | bf16 {h64['bf16']:.3f} s | {h64['fp32'] / h64['bf16']:.1f}x" if "bf16" in h64 else ""))
    ref = trainer_step("paper432", "fp32", max(3, a.reps // 2), a.threads, a.data_root, engine="reference")
    print(f"2c. paper432 step with the reference HBV loop (fp32): {ref:.3f} s ({ref / fp32:.1f}x the fused)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--only-big", action="store_true", help="run only section 4")
    ap.add_argument("--child", choices=["hbv", "full"])
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--data-root", default=None, help="data root (default: $HYDROLENS_DATA_ROOT or ../shared/data)")
    ap.add_argument("--only-step", action="store_true", help="run only section 2 (Trainer.step)")
    ap.add_argument("--only-hbv", action="store_true", help="run only section 1 (the HBV alone)")
    ap.add_argument("--bf16-anyway", action="store_true",
                    help="time bf16 also on a CPU without bf16 units (emulated: very slow)")
    a = ap.parse_args()
    if a.child:
        return big_forward_child(a.child, a.engine)
    torch.set_num_threads(a.threads)
    flush_denormals()  # as training does (core/_runtime.py)
    cpu = cpu_description()
    print(f"CPU: {cpu['cpu']}; bf16 flags: {', '.join(cpu['bf16_flags']) or 'none'}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, reps {a.reps} (medians)")
    if a.only_step:
        return step_section(a)
    if a.only_big:
        for kind in ("hbv", "full"):
            print(f"4. forward 671x5479 {kind}: {big_forward(kind, 'auto', a.threads)}")
        return

    f = bench_hbv("fused", 730, 365, a.reps)
    r = bench_hbv("reference", 730, 365, a.reps)
    print(f"1. HBV fwd+bwd 100x730 (365 warm-up), nmul 16, dyn BETA+GAMMA, routing: "
          f"fused {f:.3f} s | reference {r:.3f} s | ratio {r / f:.1f}x")
    f = bench_hbv("fused", 730, 365, a.reps, recharge_net=True)
    r = bench_hbv("reference", 730, 365, a.reps, recharge_net=True)
    print(f"1b. the same with δn(NN_r)'s recharge network: fused {f:.3f} s | reference {r:.3f} s | "
          f"ratio {r / f:.1f}x")
    if a.only_hbv:
        return
    step_section(a)
    times = {nt: bench_hbv("fused", nt, 0, a.reps) for nt in (365, 730, 1460)}
    print("3. HBV fwd+bwd, gradient over the whole window, fused: " +
          ", ".join(f"{nt} d {t:.3f} s" for nt, t in times.items()) +
          f" | 1460/730 = {times[1460] / times[730]:.2f}")
    if not a.skip_big:
        for kind in ("hbv", "full"):
            res = big_forward(kind, "auto", a.threads)
            print(f"4. forward 671x5479 {'HBV only' if kind == 'hbv' else 'LSTM + HBV'}: {res}")
    if not a.skip_cli:
        cf, cr = cli_epoch("fused"), cli_epoch("reference")
        print(f"5. CLI epoch (50 basins, 10 iterations, nmul 16, hidden 64): fused {cf:.1f} s | "
              f"reference {cr:.1f} s | ratio {cr / cf:.1f}x")
    if torch.cuda.is_available():
        g = bench_hbv("reference", 730, 365, a.reps, device="cuda")
        s = bench_step("reference", a.reps, device="cuda")
        print(f"6. CUDA ({torch.cuda.get_device_name()}): HBV fwd+bwd {g:.3f} s, training step {s:.3f} s")
    else:
        print("6. CUDA: no GPU on this machine")


if __name__ == "__main__":
    main()
