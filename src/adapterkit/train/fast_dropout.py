"""Dropout on the CPU from a quarter of the random draws torch's own makes.

torch's CPU dropout draws one Bernoulli sample per element from its Mersenne Twister, and
that draw, not the multiply, is most of its cost: on the 2-core Xeon a MiniLM batch's
hidden states (32 x 13 x 384) took about 860 µs to drop out, more than one of the layer's
matrix multiplies, and a training step makes 13 such calls besides the attention's
(``python -m benchmarks.fast_dropout``, docs/fast_dropout.md). Here each 64-bit draw of the
same generator gives four 16-bit uniforms, each compared with ``p`` at a resolution of
1/65536, and the kept elements are scaled by 1/(1-p) as torch's are.

The elements dropped are a different draw from torch's for the same seed, from the same
distribution; runs stay deterministic per seed and resume exactly, since the draws come
from torch's default CPU generator, whose state checkpoints keep.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_LEVELS = 1 << 16


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """A bool mask of ``shape``, each element kept with probability ``1 - p`` (to 1/65536),
    from torch's default CPU generator: four elements per 64-bit draw."""
    count = math.prod(shape)
    # The full signed range: random_() alone leaves the top bit 0, and with it the sign of
    # every fourth 16-bit lane.
    words = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    lanes = words.view(torch.int16)[:count]
    return (lanes >= round(p * _LEVELS) - _LEVELS // 2).view(shape)


class _ScaleKept(torch.autograd.Function):
    """``x * keep / (1 - p)``, saving only the bool mask for the backward (as torch's does)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x.mul(keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None, None


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with CPU training batches dropped out by :func:`keep_mask`; anything
    else (a GPU, evaluation, p of 0 or 1, in place, a graph being compiled) goes to
    torch's own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            not self.training
            or not 0.0 < self.p < 1.0
            or self.inplace
            or x.device.type != "cpu"
            or torch.compiler.is_compiling()
        ):
            return super().forward(x)
        return _ScaleKept.apply(x, keep_mask(x.shape, self.p), 1.0 / (1.0 - self.p))


def use_fast_dropout(model: nn.Module) -> int:
    """Put a :class:`FastDropout` in place of every plain ``nn.Dropout`` in ``model`` (the
    base's, the adapters' and the heads'), keeping each one's ``p``; how many it replaced."""
    replaced = 0
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                fast = FastDropout(child.p, child.inplace)
                fast.train(child.training)
                setattr(parent, name, fast)
                replaced += 1
    return replaced
