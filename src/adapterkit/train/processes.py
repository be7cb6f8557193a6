"""The processes of a run: one, or several started by ``accelerate launch`` or ``torchrun``.

Several processes split every job's batch between them (each takes every
``world``-th row), and sum their gradients before each job's optimizer step, each
process's loss weighted by its share of the job's rows or tokens: the step is the one
a single process would take on the whole batch. accelerate's ``PartialState`` reads the
launcher's environment and starts the process group (gloo on CPUs, NCCL on GPUs). Only
the main process writes files and logs.

Why gradients are summed by hand rather than by wrapping the model in DDP: a packed
step runs each job's head outside the base's forward, and jobs leave the batches as
they finish, so DDP would see parameters used outside its forward and parameters
unused in a step. The trained parameters are adapters (megabytes), so one all-reduce
of a job's flattened gradients per optimizer step costs little.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from adapterkit.errors import AdapterkitError
from adapterkit.models import pick_device


@dataclass
class Processes:
    """This process's place in the run."""

    rank: int
    world: int
    device: torch.device
    state: Any = None
    """accelerate's ``PartialState`` when several processes run (None for one)."""
    sharded: bool = False
    """Whether the frozen base is sharded over the processes (see
    :mod:`adapterkit.train.sharding`): then every process takes part in every forward pass."""

    @classmethod
    def start(cls, device: str = "auto") -> Processes:
        """Join the launcher's process group when there is one, else run alone on ``device``."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls(0, 1, pick_device(device))
        from accelerate import PartialState

        # accelerate starts a CPU process group (gloo) only when told the run is on CPUs.
        cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
        state = PartialState(cpu=cpu)
        if state.num_processes <= 1:
            raise AdapterkitError(
                f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but no process group started "
                f"(device {device!r}); launch with accelerate launch or torchrun"
            )
        return cls(state.process_index, state.num_processes, state.device, state)

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files and logs."""
        return self.rank == 0

    def share(self, rows: list[int]) -> list[int]:
        """This process's rows of a batch (every ``world``-th, from its rank)."""
        return rows[self.rank :: self.world]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over all processes (itself when alone), on its own device
        (the collective runs on this process's device: NCCL reduces GPU tensors only)."""
        if self.world == 1:
            return tensor
        from accelerate.utils import reduce

        return reduce(tensor.to(self.device), reduction="sum").to(tensor.device)

    def sum_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Replace each parameter's gradient by its sum over all processes (one all-reduce)."""
        if self.world == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = self.sum(torch.cat([g.reshape(-1) for g in grads]))
        for param, chunk in zip(params, flat.split([g.numel() for g in grads]), strict=True):
            param.grad = chunk.view_as(param).clone()

    def most(self, value: int) -> int:
        """The largest ``value`` any process holds (its own when alone)."""
        return max(self.gather([value]))

    def gather(self, items: list[Any]) -> list[Any]:
        """Every process's ``items``, concatenated in rank order (its own when alone)."""
        if self.world == 1:
            return items
        from accelerate.utils import gather_object

        return list(gather_object(items))

    def wait(self) -> None:
        """Block until every process gets here."""
        if self.state is not None:
            self.state.wait_for_everyone()
