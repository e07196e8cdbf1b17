"""The torchrun helpers of the sharded jobs (the result store, the benchmark), written once.

Under ``torchrun`` every process works on its share of the pictures and writes its own shard; at
the end rank 0 merges the shards while the others wait, so that every process returns with the
merged result on disk. Outside torchrun (no ``WORLD_SIZE`` above 1) everything here is a no-op and
the world is one process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

__all__ = ["World", "barrier", "join", "leave", "on_rank_zero"]

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run."""

    rank: int = 0
    size: int = 1
    #: Whether :func:`join` started the process group (and :func:`leave` ends it).
    started_group: bool = False

    @property
    def sharded(self) -> bool:
        """More than one process: each writes its own shard."""
        return self.size > 1

    @property
    def leads(self) -> bool:
        """Rank 0: the process that records the run and merges the shards."""
        return self.rank == 0


def join() -> World:
    """This process's :class:`World`: under ``torchrun`` (``WORLD_SIZE`` > 1) a gloo or NCCL process
    group is started unless one already is; otherwise one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return World()
    import torch.distributed as dist

    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size(), started_group=started)


def barrier(world: World) -> None:
    """Wait until every process of ``world`` is here (nothing to wait for in one process)."""
    if world.sharded:
        import torch.distributed as dist

        dist.barrier()


def on_rank_zero(world: World, work: Callable[[], T], *, after_all: bool = True) -> T | None:
    """Run ``work`` on rank 0 while the other processes wait for it; returns its value on rank 0 and
    ``None`` elsewhere. ``after_all``: rank 0 first waits until every process is here (they have
    all written their shards), as a merge needs."""
    if after_all:
        barrier(world)
    value = work() if world.leads else None
    barrier(world)
    return value


def leave(world: World) -> None:
    """End the process group, if :func:`join` started it."""
    if world.started_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
