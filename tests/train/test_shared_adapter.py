"""Hard parameter sharing in the engine: a follower's loss reaches the shared adapter, its
optimizer holds only its head, and it stops with its leader (dropout off, tiny BERT)."""

from __future__ import annotations

from pathlib import Path

import torch
from tests.tasks.conftest import build_tokenizer
from tests.train.test_packed_equivalence import head_jobs_data, no_dropout, tiny_bert

from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.tasks import make_task
from adapterkit.tasks.base import encode_examples
from adapterkit.train.config import TrainConfig
from adapterkit.train.engine import fit_jobs
from adapterkit.train.job import TrainJob
from adapterkit.train.shared import tie_adapters


def _run(tmp_path: Path, shared: bool, method: str = "lora") -> tuple[AdaptedModel, list[TrainJob]]:
    tokenizer = build_tokenizer()
    model = AdaptedModel(tiny_bert(len(tokenizer)))
    model.requires_grad_(False)
    data = {t: (labels, rows) for t, labels, rows in head_jobs_data()}
    jobs = []
    for name, task_type in (("topic", "sequence-classification"), ("tags", "token-classification")):
        if name == "tags" and not shared:
            continue
        labels, rows = data[task_type]
        task = make_task(task_type, tokenizer, labels, 64)
        torch.manual_seed(7)
        model.add_adapter(
            name,
            make_config(method, **({"r": 4, "target_r": 2} if method == "adalora" else {})),
            head=task.build_head(32),
            task=task.task_info(),
        )
        for param in [
            *model.adapter_parameters(name).values(),
            *model.head_parameters(name).values(),
        ]:
            param.requires_grad_(True)
        config = TrainConfig(epochs=2, batch_size=4, seed=1, lr=5e-3)
        features = encode_examples(task, rows)
        jobs.append(TrainJob(name, task, features, None, config, 5e-3, tmp_path / name))
    if shared:
        tie_adapters(model, "topic", ["tags"])
        jobs[0].followers, jobs[1].leader = [jobs[1]], jobs[0]
    no_dropout(model)
    fit_jobs(model, jobs, log=lambda _: None)
    return model, jobs


def test_the_follower_trains_the_shared_adapter_through_the_leaders_optimizer(
    tmp_path: Path,
) -> None:
    torch.set_num_threads(1)
    shared, (leader, follower) = _run(tmp_path / "shared", shared=True)
    alone, _ = _run(tmp_path / "alone", shared=False)
    ours = shared.adapter_parameters("topic")
    assert ours.keys() == shared.adapter_parameters("tags").keys()
    assert all(ours[k] is shared.adapter_parameters("tags")[k] for k in ours)  # one adapter
    lone = alone.adapter_parameters("topic")
    assert any(not torch.allclose(ours[k], lone[k]) for k in ours)  # the tags loss moved it
    owned = {id(p) for group in follower.optimizer.param_groups for p in group["params"]}
    assert not owned & {id(p) for p in ours.values()}  # the follower steps its head only
    assert follower.done and follower.state.epoch == leader.state.epoch == 2


def test_a_shared_adalora_is_allocated_once_and_every_bundle_loads(tmp_path: Path) -> None:
    """The leader alone drives the rank schedule of the shared AdaLoRA; every job's bundle
    records the final ranks and loads back."""
    torch.set_num_threads(1)
    model, (leader, follower) = _run(tmp_path / "shared", shared=True, method="adalora")
    assert leader.controller is not None and follower.controller is None
    pattern = model.configs["topic"].rank_pattern
    assert pattern is not None and model.configs["tags"].rank_pattern == pattern
    model.save_adapter("tags", tmp_path / "tags")
    fresh = AdaptedModel(tiny_bert(len(build_tokenizer())))
    assert fresh.load_adapter(tmp_path / "tags") == "tags"
