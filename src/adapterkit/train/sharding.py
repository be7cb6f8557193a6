"""Sharding the frozen base across a run's processes (FSDP2's ``fully_shard``), for a base
too large for one device.

Each transformer block, and the rest of the base as one more unit, keeps 1/world of its
frozen weights on each process and gathers the whole unit just before it runs (in the
forward pass, and again in the backward pass), freeing it after. The adapters (every
parameter of theirs, AdaLoRA's frozen rank mask too), the heads and any tuned biases or
norms stay whole on every process (FSDP's ``ignored_params``): the run sums their
gradients, steps, checkpoints and saves them as it does unsharded, so checkpoints and
bundles are the same files.

Why only the frozen part: it is what does not fit (the adapters are megabytes), and
keeping the trained part whole leaves per-row routing, per-job optimizers and the
gradient sum of :mod:`adapterkit.train.processes` untouched.

What sharding asks of the run: every process takes part in every forward pass of the
base (each pass gathers weights from all of them). So a process with no rows in a step
runs one row at zero weight, validation pads each process to the same number of
batches, the final evaluations run on every process (the main one writes them), and
generation decodes on every process until all are done (transformers' ``synced_gpus``).
"""

from __future__ import annotations

import os

from torch import nn

from adapterkit.errors import AdapterkitError
from adapterkit.methods import AdapterModule
from adapterkit.model import AdaptedModel
from adapterkit.train.options import JobSpec
from adapterkit.train.processes import Processes


def sharding_asked(specs: list[JobSpec]) -> bool:
    """Whether the run shards its base: ``--shard-base``, or ``accelerate launch --use_fsdp``
    (which says so in the environment it launches with)."""
    from_accelerate = os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")
    return from_accelerate or specs[0].config.shard_base


def check_shardable(specs: list[JobSpec]) -> None:
    """Refuse, in one line, a run whose base cannot be sharded."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true"):
        raise AdapterkitError(
            "DeepSpeed is not supported: shard the frozen base with FSDP instead "
            "(--shard-base, or accelerate launch --use_fsdp; docs/distributed.md)"
        )
    for spec in specs:
        if spec.options.method == "full":
            raise AdapterkitError(
                "--shard-base shards the frozen base; full fine-tuning trains the base itself"
            )
        if spec.options.quantize:
            raise AdapterkitError("--shard-base and --quantize cannot be combined")


def shard_base(model: AdaptedModel, processes: Processes) -> str:
    """Shard ``model``'s frozen base over the processes (trainable parameters stay whole).

    Returns:
        The line the run logs: how many sharded units (the transformer blocks, plus one
        for the rest) and how much of the frozen base each process keeps.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    blocks = transformer_blocks(model.base)
    if not blocks:
        raise AdapterkitError(
            f"--shard-base: no transformer blocks found in {type(model.base).__name__}"
        )
    mesh = init_device_mesh(processes.device.type, (processes.world,))
    whole = {param for param in model.parameters() if param.requires_grad}
    for module in model.modules():  # an adapter's frozen parts too (AdaLoRA's rank mask)
        if isinstance(module, AdapterModule):
            whole.update(module.parameters())
    for block in blocks:
        fully_shard(block, mesh=mesh, ignored_params=whole)
    fully_shard(model.base, mesh=mesh, ignored_params=whole)
    # fully_shard moved the shards and the base's buffers to the mesh's device; the whole
    # parameters (loaded and created on the CPU) follow them there.
    for tensor in [*whole, *model.buffers()]:
        if tensor.device != processes.device:
            tensor.data = tensor.data.to(processes.device)
    processes.sharded = model.sharded_base = True
    kept, total = held_bytes(model)
    return (
        f"base sharded over {processes.world} processes ({len(blocks) + 1} FSDP units): "
        f"each keeps {kept / 2**20:,.2f} of its {total / 2**20:,.2f} MiB of frozen weights"
    )


def held_bytes(model: nn.Module) -> tuple[int, int]:
    """(bytes this process keeps, bytes in all) of the sharded parameters of ``model``."""
    from torch.distributed.tensor import DTensor

    kept = total = 0
    for param in model.parameters():
        if isinstance(param, DTensor):
            kept += param.to_local().numel() * param.element_size()
            total += param.numel() * param.element_size()
    return kept, total


def transformer_blocks(base: nn.Module) -> list[nn.Module]:
    """The outermost transformer blocks of a transformers model (the layers it checkpoints
    with activation checkpointing: ``GradientCheckpointingLayer``)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    blocks: list[nn.Module] = []
    inside: set[int] = set()  # ids of the modules within a block already found
    for module in base.modules():  # parents come before their children
        if isinstance(module, GradientCheckpointingLayer) and id(module) not in inside:
            blocks.append(module)
            inside.update(id(m) for m in module.modules())
    return blocks
