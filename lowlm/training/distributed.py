"""Data-parallel training with torch DDP: every process walks the same global batches, each its share.

Under ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` ...), ``init`` joins the
process group (gloo on the CPU, nccl where the processes have GPUs) and the one trainer
(``lowlm.training.trainer.Trainer``) sees it: it wraps the model in ``DistributedDataParallel`` and
its training batches in ``RankBatches``. That is a distributed sampler that keeps the single-process
order: every rank draws the same seeded global batches (its ``Batches`` has the same seed) and
keeps rows ``rank, rank + world, ...`` of each. Each rank's loss is weighted by its share of the
global batch, so DDP's average of the ranks' gradients is the gradient of the global batch's mean
loss: N processes take the steps one process takes on the same global batches (up to float
rounding, and dropout, whose masks differ). A rank whose share of a short last batch is empty
computes its loss on one row with weight 0, so that every rank still joins every all-reduce.

Validation runs on every rank over the whole validation set with the same weights, so early
stopping decides alike everywhere without a message; rank 0 alone logs and saves (the caller's job).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Iterator

import torch
import torch.distributed as dist

from lowlm.text.batching import Batch


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among ``size`` processes (``size == 1``: not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that logs and saves."""
        return self.rank == 0


def current() -> World:
    """The process group this process is in, or the single-process world."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def init(backend: str = "auto") -> World:
    """Join the process group torchrun describes in the environment; ``auto``: nccl when this process
    has a GPU, else gloo. Returns the world; a process not started by torchrun stays alone."""
    if "WORLD_SIZE" not in os.environ:
        return World()
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    return current()


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for(world: World, configured: str) -> str:
    """The device of a rank: its own GPU under nccl (``cuda:LOCAL_RANK``) when ``configured`` asks for one."""
    if world.size > 1 and configured in ("cuda", "auto") and torch.cuda.is_available():
        return f"cuda:{world.local_rank}"
    return configured


@dataclass
class Share:
    """A rank's part of one global batch, and the weight that makes the ranks' mean gradient the global one."""

    batch: Batch
    weight: float  # rows here x world / rows in the global batch (0: a stand-in row, no rows here)
    rows: int  # rows of the global batch this rank holds


class RankBatches:
    """Rank ``rank``'s share of every batch ``batches`` yields (re-iterable, same length on every rank)."""

    def __init__(self, batches, world: World):
        self.batches, self.world = batches, world

    def __len__(self) -> int:
        return len(self.batches)

    def __getattr__(self, name):  # generator, set_extra, ids ...: the global batches' own
        return getattr(self.batches, name)

    def __iter__(self) -> Iterator[Share]:
        rank, size = self.world.rank, self.world.size
        for batch in self.batches:
            total = len(batch.lengths)
            mine = torch.arange(rank, total, size)
            weight = len(mine) * size / total
            if not len(mine):  # a short last batch: one stand-in row that adds nothing
                mine = torch.arange(0, 1)
            lengths = batch.lengths[mine]
            part = replace(batch, ids=batch.ids[mine][:, : int(lengths.max())], lengths=lengths,
                           labels=None if batch.labels is None else batch.labels[mine], index=batch.index[mine])
            yield Share(part, weight, len(mine) if weight else 0)


def sum_over_ranks(*values: float) -> list[float]:
    """Each value summed over the ranks (the values themselves when not distributed)."""
    world = current()
    if world.size == 1:
        return list(values)
    device = f"cuda:{world.local_rank}" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
