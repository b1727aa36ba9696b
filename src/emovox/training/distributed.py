"""Data-parallel launches (``torchrun``, ``accelerate launch``): which process this is, and the few
collective steps emovox itself needs outside the Trainer (which does its own).

The launchers set ``RANK``/``WORLD_SIZE`` (and ``MASTER_ADDR``/``MASTER_PORT``) for every process;
the Trainer path lets transformers/accelerate start the process group from them, the frozen-feature
path starts a gloo group here (it only waits at barriers; no tensors cross processes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    """This process's place in a data-parallel launch (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """The process that writes the run dir, logs and summary."""
        return self.rank == 0


def launch() -> Launch:
    """The launch as the process group (when started) or the launcher's environment says."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Launch(dist.get_rank(), dist.get_world_size())
    return Launch(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))


def start_group() -> Launch:
    """Join the launch's process group (gloo: CPU objects only) unless already in one."""
    import torch.distributed as dist

    here = launch()
    if here.world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", rank=here.rank, world_size=here.world)
    return here


def barrier() -> None:
    """Wait for every process of the launch (no-op when run plainly)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
