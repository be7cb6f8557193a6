"""``adapterkit ARGS`` in a launched process, whose first process's step losses turn NaN
from optimizer step ``DIVERGE_AT_STEP`` on (a batch that overflows there): its NaN
gradients reach every process through the gradient sum, as a learning rate far too high
does. Run by tests/train/test_processes.py under ``torchrun``."""

from __future__ import annotations

import os
import sys

import adapterkit.train.engine as engine
from adapterkit.cli import main

losses_as_usual = engine.packed_losses
calls = 0


def nan_on_the_first_process(*args, **kwargs):
    global calls
    calls += 1  # one call per training step (validation does not take this path)
    losses, counts = losses_as_usual(*args, **kwargs)
    if os.environ.get("RANK") == "0" and calls >= int(os.environ["DIVERGE_AT_STEP"]):
        losses = [loss * float("nan") for loss in losses]
    return losses, counts


engine.packed_losses = nan_on_the_first_process
sys.exit(main(sys.argv[1:]))
