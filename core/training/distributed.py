"""Data-parallel training over ranks with torch.distributed (launched by torchrun).

``hydrolens train`` with ``train.nproc`` N > 1 starts N ranks through torch's elastic launcher
(:func:`launch_command`: ``python -m torch.distributed.run --standalone --nproc_per_node N``).
Each rank builds the same model (same seed), draws the same global mini-batch and trains on its
share of the sites (every N-th, :func:`shard`); the loss is computed on the whole batch, the
simulations gathered from every rank with a differentiable all-gather, so after
``DistributedDataParallel`` averages the gradients the update equals a single process's on the
same global batch (tested to 1e-5). Rank 0 alone writes the run (config, status, log,
checkpoints); every rank validates the same model, so every rank takes the same early-stopping
decision. Backend: gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel ranks (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this rank writes the run (rank 0)."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1


def ranks_from_env() -> Ranks:
    """The ranks torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK)."""
    return Ranks(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def in_rank_process() -> bool:
    """Whether this process is one of torchrun's ranks."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", 1)) > 1


def init_ranks(device: torch.device) -> Ranks:
    """Join the process group when torchrun started this process (gloo on CPU, nccl on CUDA; a
    CUDA rank uses GPU ``LOCAL_RANK``); rank 0 of 1 otherwise."""
    ranks = ranks_from_env()
    if ranks.parallel and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks


def shard(indices, ranks: Ranks):
    """This rank's share of a global batch's site indices: every ``world``-th from ``rank``."""
    return indices[ranks.rank::ranks.world]


def gather_sites(local: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The [time, site] tensors of all ranks side by side, rank 0's sites first (the order of
    :func:`shard`'s shares); differentiable: each rank's gradient flows back to its own part."""
    if not ranks.parallel:
        return local
    return _GatherSites.apply(local, ranks.world, ranks.rank)


class _GatherSites(torch.autograd.Function):
    """All-gather along the site axis; backward: the gradient summed over the ranks (each rank's
    loss is the same whole-batch loss), this rank's columns. Equal shares (the batch divides by
    the ranks)."""

    @staticmethod
    def forward(ctx, local: torch.Tensor, world: int, rank: int) -> torch.Tensor:
        local = local.contiguous()
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local)
        ctx.rank, ctx.width = rank, local.shape[1]
        return torch.cat(parts, dim=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        lo = ctx.rank * ctx.width
        return grad[:, lo:lo + ctx.width], None, None


def global_order(indices, ranks: Ranks):
    """The global batch's indices in the order :func:`gather_sites` puts the sites."""
    if not ranks.parallel:
        return indices
    import numpy as np

    return np.concatenate([indices[r::ranks.world] for r in range(ranks.world)])


def mean_over_ranks(value: float, ranks: Ranks) -> float:
    """The mean of a float over the ranks (for logging the range-boundary loss)."""
    if not ranks.parallel:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / ranks.world


def close(ranks: Ranks) -> None:
    """Leave the process group together (a barrier first: a rank that tears gloo down while
    another still talks to it aborts)."""
    if ranks.parallel and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def launch_command(nproc: int, cli_args: list[str]) -> list[str]:
    """The torchrun command that runs ``hydrolens CLI_ARGS`` on ``nproc`` ranks of this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "core.cli", *cli_args]
