"""Checkpoints keep the random state of the CPU and of every CUDA device (faked here)."""

from __future__ import annotations

import torch
from tests.tiny import tiny_model

from adapterkit import AdaptedModel, make_config
from adapterkit.train import checkpoint
from adapterkit.train.checkpoint import TrainerState, load_checkpoint, save_checkpoint


def test_cuda_rng_states_round_trip_through_a_checkpoint(tmp_path, monkeypatch) -> None:
    """Two fake devices: their states are saved beside the CPU's and restored on load."""
    saved = [torch.arange(16, dtype=torch.uint8), torch.arange(16, 32, dtype=torch.uint8)]
    restored: list[torch.Tensor] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.extend)

    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config("lora"))
    model.train_adapter("a")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    torch.manual_seed(7)
    save_checkpoint(tmp_path / "last", model, "a", optimizer, scheduler, TrainerState(epoch=1))
    expected_cpu = torch.rand(3)  # what the CPU draws next after the save

    torch.manual_seed(99)
    state = load_checkpoint(tmp_path / "last", model, "a", optimizer, scheduler)
    assert state.epoch == 1
    assert torch.equal(torch.rand(3), expected_cpu)
    assert [t.tolist() for t in restored] == [t.tolist() for t in saved]


def test_without_cuda_only_the_cpu_state_is_kept(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert set(checkpoint.rng_tensors()) == {"rng.torch"}


def test_each_process_resumes_with_its_own_random_state(tmp_path) -> None:
    """Several processes: every rank's state is saved; each rank restores its own, and a
    checkpoint of one process gives every rank the main one's (older checkpoints)."""
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config("lora"))
    model.train_adapter("a")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    states, draws = [], []
    for seed in (1, 2, 3):  # what each of three processes holds, and draws next
        torch.manual_seed(seed)
        states.append(checkpoint.rng_tensors())
        draws.append(torch.rand(3))
    save_checkpoint(tmp_path / "many", model, "a", optimizer, scheduler, TrainerState(), rng=states)
    save_checkpoint(
        tmp_path / "one", model, "a", optimizer, scheduler, TrainerState(), rng=states[:1]
    )
    for rank in (0, 1, 2):
        load_checkpoint(tmp_path / "many", model, "a", optimizer, scheduler, rank=rank)
        assert torch.equal(torch.rand(3), draws[rank])
        load_checkpoint(tmp_path / "one", model, "a", optimizer, scheduler, rank=rank)
        assert torch.equal(torch.rand(3), draws[0])
