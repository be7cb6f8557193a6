"""Which training rows make each batch of an epoch: seeded, reproducible, optionally length-grouped."""

from __future__ import annotations

import torch


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, lengths: list[int] | None = None
) -> list[list[int]]:
    """The shuffled batches of one epoch; the same for the same seed and epoch (needed to resume).

    With ``lengths`` (tokens per example), batches are length-grouped as transformers'
    LengthGroupedSampler does: the shuffled order is cut into megabatches of 50
    batches, each sorted by length, and the batch order is shuffled again. Dynamic
    padding then pads far less; each batch's loss is unchanged, only which examples
    share a batch differs.
    """
    generator = torch.Generator().manual_seed(seed * 10_007 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    if lengths is not None:
        mega = 50 * batch_size
        order = [
            i
            for start in range(0, n, mega)
            for i in sorted(order[start : start + mega], key=lambda j: -lengths[j])
        ]
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if lengths is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches
