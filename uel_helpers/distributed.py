"""One training on several processes: torchrun detection, the process group, data shards, all-reduce, rank 0.

`torchrun --nproc_per_node N script.py` (torch.distributed.run) starts N copies of a script and gives each the
environment variables RANK, LOCAL_RANK and WORLD_SIZE. `training.train`, `attribution.train_ssl` and the D-VAE
training (`defenses.dvae.training`) then call `context(device)` and, with more than one process, train one model
with PyTorch's DistributedDataParallel (DDP): no collective communication of our own, only these helpers around
`torch.distributed`:

- the process group: NCCL on CUDA (one GPU per process, `cuda:LOCAL_RANK`), gloo on CPU (`DistContext`);
- the data: each rank keeps its shard of the uint8 training images on its device (`shard_indices`: a seeded
  permutation dealt out round-robin, so the shards are disjoint, cover the whole set and are class-mixed);
- the batch: `Protocol.batch_size` (or a config's batch size) is the GLOBAL batch; each rank takes
  `batch_size / world_size` images per step (`local_batch`, an error when it does not divide). Every rank's loss is
  the mean over its own images and DDP averages the gradients over ranks, so the step is the gradient of the mean
  loss over the global batch: the same effective batch, hence the same learning rate and schedule, whatever the
  number of ranks (`tests/test_distributed.py` checks the gradient identity on a model without BatchNorm);
- batch statistics: plain BatchNorm per rank (statistics of the local batch; DDP copies rank 0's running averages
  to the others at every forward), or SyncBatchNorm over the global batch with `sync_bn=True` (CUDA only: PyTorch's
  SyncBatchNorm does not run on CPU);
- metrics: sums (loss x images, correct predictions, images) are all-reduced, so every rank holds the same
  per-epoch numbers; the test set is split over the ranks and the correct counts summed;
- writing: only rank 0 writes caches (`cache.cached` never writes elsewhere), checkpoints and figures (`is_main`).

Without torchrun (or with WORLD_SIZE=1) `context` returns a single-process context and the trainers run exactly the
code they ran before DDP existed: the same seed gives the same History, bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .checks import check_bool, check_count, check_seed

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip().lstrip("-").isdigit() else default


def world_size() -> int:
    """Processes in the run: the process group's size when one is initialised, else WORLD_SIZE (torchrun), else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return max(1, _env_int("WORLD_SIZE", 1))


def rank() -> int:
    """This process's rank: the process group's, else RANK (torchrun), else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK", 0)


def is_main() -> bool:
    """True on rank 0 (and in every single-process run): the one process that writes caches, files and figures."""
    return rank() == 0


def under_torchrun() -> bool:
    """True when this process is one of several started by torchrun (RANK, LOCAL_RANK, WORLD_SIZE set, WORLD_SIZE > 1),
    or a process group of more than one process is already initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return all(v in os.environ for v in TORCHRUN_VARS) and _env_int("WORLD_SIZE", 1) > 1


def local_batch(batch_size: int, world: int, who: str = "train") -> int:
    """Images per rank and step when `batch_size` is the global batch: batch_size / world, which must be whole."""
    batch_size, world = check_count(batch_size, "batch_size", who), check_count(world, "world_size", who)
    if batch_size % world:
        below, above = batch_size - batch_size % world, batch_size + world - batch_size % world
        raise ValueError(f"{who}: batch_size {batch_size} is the global batch and must be divisible by the number "
                         f"of processes ({world}), so that every rank takes the same share; use {below} or {above}, "
                         f"or a number of processes that divides {batch_size}")
    return batch_size // world


def shard_indices(n: int, world: int, rank_: int, seed: int = 0) -> torch.Tensor:
    """Indices (sorted, int64) of rank `rank_`'s shard of n items: a permutation seeded by `seed`, dealt out
    round-robin. The shards of ranks 0..world-1 are disjoint, cover range(n), and differ in size by at most one."""
    n, world = check_count(n, "n", "shard_indices"), check_count(world, "world", "shard_indices")
    rank_ = check_count(rank_, "rank", "shard_indices", lo=0, hi=world - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(check_seed(seed, "seed", "shard_indices")))
    return perm[rank_::world].sort().values


def rank_seed(seed: int, rank_: int, salt: int = 0) -> int:
    """A seed for rank `rank_`'s own random stream (augmentation, data order); rank 0 of an unsalted stream keeps
    `seed`. Different ranks must not draw the same crops for their different images."""
    if rank_ == 0 and salt == 0:
        return seed
    return (seed * 1_000_003 + rank_ * 7_919 + salt * 104_729) % 2**63


@dataclass(frozen=True)
class DistContext:
    """Where this process trains and with whom: rank, world size, device, backend (None = a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    sync_bn: bool = False  # wrap() converts BatchNorm to SyncBatchNorm (statistics over the global batch)

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int, seed: int) -> torch.Tensor:
        """This rank's indices of n training images (all of them in a single process)."""
        return torch.arange(n) if not self.active else shard_indices(n, self.world_size, self.rank, seed)

    def local_batch(self, batch_size: int, who: str = "train") -> int:
        return local_batch(batch_size, self.world_size, who)

    def wrap(self, module: nn.Module, unused: bool = False) -> nn.Module:
        """`module` in DistributedDataParallel (the same module in a single process). Parameters and buffers are
        broadcast from rank 0 when wrapped; with `sync_bn` BatchNorm layers become SyncBatchNorm first (CUDA);
        `unused`: some parameters get no gradient in a step (e.g. a classifier beside the features an SSL loss
        uses), which DDP must then look for (`find_unused_parameters`)."""
        if not self.active:
            return module
        if self.sync_bn:
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=unused)

    def all_reduce_sum(self, values: list[float] | torch.Tensor) -> list[float]:
        """Sums over ranks of a few numbers (float64), e.g. [loss x images, correct, images]; unchanged alone."""
        t = torch.as_tensor(values, dtype=torch.float64)
        if self.active:
            t = t.to(self.device)
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().tolist()

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) to every rank: the same model to evaluate."""
        if self.active:
            for buf in module.buffers():
                dist.broadcast(buf.data, src=0)

    def broadcast_value(self, value: float) -> float:
        """Rank 0's number, on every rank (e.g. a monitor that only rank 0 computes)."""
        if not self.active:
            return value
        t = torch.tensor([value if self.is_main else 0.0], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return float(t.item())

    def describe(self, global_batch: int) -> dict:
        """What a History records about the distribution (only for more than one process)."""
        return {"world_size": self.world_size, "backend": self.backend, "global_batch": global_batch,
                "local_batch": global_batch // self.world_size, "sync_bn": self.sync_bn}


def context(device: torch.device, enabled: bool | None = None, sync_bn: bool = False,
            who: str = "train") -> DistContext:
    """The distributed context of a training on `device` (already chosen by `device.pick_device`).

    enabled: None = DDP when started by torchrun with more than one process (`under_torchrun`); False = a plain
    single-process run even under torchrun; True = DDP required (ValueError when not under torchrun).
    Initialises the default process group when torchrun started us and nobody has yet (env:// rendezvous; NCCL for
    CUDA, gloo for CPU); on CUDA each process takes `cuda:LOCAL_RANK`. `sync_bn` needs CUDA (ValueError on CPU).
    """
    if enabled is not None:
        check_bool(enabled, "ddp", who)
    check_bool(sync_bn, "sync_bn", who)
    if enabled is False or (enabled is None and not under_torchrun()):
        return DistContext(device=device)
    if not under_torchrun():
        raise ValueError(f"{who}: ddp=True needs several processes started by torchrun (e.g. `torchrun "
                         "--nproc_per_node 2 script.py`) or an initialised process group of more than one process")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{who}: DistributedDataParallel runs on CPU (gloo) or CUDA (NCCL), not on {device.type}")
    local = _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        device = torch.device("cuda", local if device.index is None else device.index)
        torch.cuda.set_device(device)
    if sync_bn and device.type != "cuda":
        raise ValueError(f"{who}: sync_bn=True uses SyncBatchNorm, which PyTorch runs on GPUs only; on CPU keep "
                         "sync_bn=False (BatchNorm statistics per rank)")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    backend = dist.get_backend()
    if backend == "nccl" and device.type != "cuda":
        raise ValueError(f"{who}: the process group uses NCCL, which needs CUDA tensors; train on device='cuda' or "
                         "initialise the group with backend='gloo'")
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, device=device,
                       backend=backend, sync_bn=sync_bn)
