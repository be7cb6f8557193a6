"""AdaLoRA on two CPU processes (torchrun, gloo): the gradients are summed before each step,
so every process scores and masks alike (a tiny Llama: 12 adapted layers) and the run ends with the ranks and weights of one
process (see tests/train/test_processes.py for the launch set-up)."""

from __future__ import annotations

import json
import sys

import torch
from tests.train.test_processes import TORCHRUN, _run, _weights, setup

__all__ = ["setup"]  # the fixture, used by name below

ADALORA = ["--method", "adalora", "--rank", "4", "--target-rank", "2", "--rank-warmup", "0.2"]


def test_two_processes_reach_the_masks_and_weights_of_one(setup, tmp_path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for launcher, out in (([sys.executable], one), (TORCHRUN, two)):
        done = _run(launcher, setup, out, *ADALORA)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "adalora: final ranks 24 in all over 12 layers" in done.stdout
    records = [json.loads((run / "adapter" / "adapterkit.json").read_text()) for run in (one, two)]
    assert records[0]["config"]["rank_pattern"] == records[1]["config"]["rank_pattern"]
    first, second = _weights(one), _weights(two)
    assert first.keys() == second.keys()
    for key in first:
        assert first[key].shape == second[key].shape, key
        torch.testing.assert_close(second[key], first[key], rtol=1e-4, atol=1e-5, msg=key)
