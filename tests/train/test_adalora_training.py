"""AdaLoRA's rank allocator and the trainer that drives it: the budget schedule, masking to
exactly the budget, the orthogonality penalty, and a tiny ``adapterkit train --method
adalora`` run that ends at the target total rank (and says so), plus its bad options."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.tiny import FINISHED, save_tiny_bert, tiny_model

from adapterkit.cli import main
from adapterkit.methods import make_config
from adapterkit.methods.adalora.allocator import RankAllocator, budget_at
from adapterkit.model import AdaptedModel
from adapterkit.train.job import adapter_modules

WORDS = {"sport": ["ball", "goal", "team"], "food": ["bread", "soup", "apple"]}
FILLER = ["the", "a", "was", "very", "today"]


def _allocator(total_steps: int = 100, **options) -> tuple[AdaptedModel, RankAllocator]:
    model = AdaptedModel(tiny_model("bert"))  # 10 adapted layers
    config = make_config("adalora", **{"r": 4, "target_r": 2, **options})
    model.add_adapter("ada", config)
    modules = adapter_modules(model, "ada")
    allocator = config.training_controller(modules, total_steps)
    assert isinstance(allocator, RankAllocator)
    return model, allocator


def _fake_gradients(allocator: RankAllocator, generator: torch.Generator) -> None:
    for module in allocator.layers.values():
        for param in (module.lora_A, module.lora_E, module.lora_B):
            param.grad = torch.randn(param.shape, generator=generator)
        with torch.no_grad():  # λ away from zero, so that it has a sensitivity
            module.lora_E.add_(0.1 * torch.randn(module.rank, generator=generator))


def test_budget_schedule_numbers() -> None:
    # initial 120 ranks, target 80, warm-up to step 10, final from step 70 (peft's cubic)
    budgets = {s: budget_at(s, 120, 80, 10, 70) for s in (0, 10, 11, 40, 69, 70, 100)}
    assert budgets == {0: 120, 10: 120, 11: 118, 40: 85, 69: 80, 70: 80, 100: 80}
    _, allocator = _allocator(total_steps=200, rank_warmup=0.1, rank_final=0.25)
    assert (allocator.initial, allocator.target) == (40, 20)
    assert (allocator.warmup, allocator.final_start) == (20, 150)
    assert allocator.budget(85) == int(20 * 0.5**3 + 20) == 22


@pytest.mark.parametrize("budget", [40, 33, 20, 7, 0])
def test_masking_keeps_exactly_the_budget(budget: int) -> None:
    _, allocator = _allocator()
    _fake_gradients(allocator, torch.Generator().manual_seed(budget))
    allocator.update_scores()
    allocator.mask_to_budget(budget)
    assert allocator.kept_ranks() == budget
    for module in allocator.layers.values():  # masked ranks also lose their λ, as in peft
        assert (module.lora_E[module.rank_mask == 0] == 0).all()


def test_masking_keeps_the_highest_scores_and_the_budget_on_ties() -> None:
    _, allocator = _allocator()
    allocator.mask_to_budget(13)  # no scores yet: all tied at zero
    assert allocator.kept_ranks() == 13
    _fake_gradients(allocator, torch.Generator().manual_seed(1))
    allocator.update_scores()
    allocator.mask_to_budget(9)
    scores = torch.cat([allocator.triplet_scores(m) for m in allocator.layers.values()])
    kept = torch.cat([m.rank_mask for m in allocator.layers.values()]).bool()
    assert scores[kept].min() >= scores[~kept].max()


def test_the_schedule_runs_from_full_rank_to_the_target_and_then_holds() -> None:
    _, allocator = _allocator(total_steps=50, rank_warmup=0.2, rank_final=0.2, rank_interval=3)
    generator = torch.Generator().manual_seed(0)
    kept, settled = {}, {}
    for step in range(1, 51):
        _fake_gradients(allocator, generator)
        allocator.after_step(step)
        kept[step], settled[step] = allocator.kept_ranks(), allocator.settled
        if step == 40:
            fixed = [m.rank_mask.clone() for m in allocator.layers.values()]
    assert all(kept[s] == 40 for s in range(1, 11))  # warm-up: every rank
    for step in range(11, 40):  # a re-allocation every 3 steps, to the budget of the step
        if step % 3 == 0:
            assert kept[step] == allocator.budget(step), step
    assert kept[12] > kept[39] and all(kept[s] == 20 for s in range(40, 51))
    assert [settled[s] for s in (39, 40, 50)] == [False, True, True]
    assert all(
        torch.equal(m.rank_mask, f) for m, f in zip(allocator.layers.values(), fixed, strict=True)
    )  # the final pattern holds to the end
    assert allocator.finish().startswith("adalora: final ranks 20 in all over 10 layers")


def test_orthogonality_penalty_falls_when_trained() -> None:
    _, allocator = _allocator()
    params = []
    with torch.no_grad():
        for module in allocator.layers.values():
            assert allocator.extra_loss() is not None
            module.lora_A.add_(0.3 * torch.randn(module.lora_A.shape))
            module.lora_B.add_(0.3 * torch.randn(module.lora_B.shape))
            params += [module.lora_A, module.lora_B]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    first = allocator.extra_loss().item()
    for _ in range(100):
        optimizer.zero_grad()
        allocator.extra_loss().backward()
        optimizer.step()
    assert allocator.extra_loss().item() < 0.2 * first
    _, unweighted = _allocator(orth_reg_weight=0.0)
    assert unweighted.extra_loss() is None


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("adalora")
    save_tiny_bert(root / "model", [w for ws in WORDS.values() for w in ws] + FILLER)
    rng = random.Random(0)
    for split, rows in (("train", 64), ("validation", 16)):
        lines = ["text,label"]
        for _ in range(rows):
            label = rng.choice(sorted(WORDS))
            words = [rng.choice(WORDS[label]), *rng.sample(FILLER, 3)]
            rng.shuffle(words)
            lines.append(f"{' '.join(words)},{label}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def _train(ws: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--model",
        str(ws / "model"),
        "--train",
        str(ws / "train.csv"),
        "--validation",
        str(ws / "validation.csv"),
        "--output",
        str(out),
        "--batch-size",
        "16",
        "--max-length",
        "16",
        *extra,
    ]


def test_cli_run_ends_at_the_target_total_rank_and_says_so(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    calls = {"extra_loss": 0, "after_step": []}
    extra_loss, after_step = RankAllocator.extra_loss, RankAllocator.after_step

    def count_loss(self):
        calls["extra_loss"] += 1
        return extra_loss(self)

    def count_step(self, step):
        calls["after_step"].append(step)
        return after_step(self, step)

    monkeypatch.setattr(RankAllocator, "extra_loss", count_loss)
    monkeypatch.setattr(RankAllocator, "after_step", count_step)
    out = tmp_path / "run"
    argv = _train(workspace, out, "--method", "adalora", "--rank", "4", "--target-rank", "2")
    code = main([*argv, "--epochs", "4", "--lr", "1e-2"])
    log = capsys.readouterr()
    text = log.out + log.err
    assert code in FINISHED, text
    # 64 rows at 16 a batch: 4 steps an epoch, 16 in all; the final ranks hold from step 12
    assert calls["after_step"] == list(range(1, 17)) and calls["extra_loss"] == 16
    assert "adalora: final ranks 20 in all over 10 layers" in text
    assert text.count("adapter shape not final yet") == 2  # epochs 1-2 end at steps 4 and 8
    record = json.loads((out / "adapter" / "adapterkit.json").read_text())
    pattern = record["config"]["rank_pattern"]
    assert len(pattern) == 10 and sum(pattern.values()) == 20
    tensors = load_file(out / "adapter" / "adapterkit.safetensors")
    assert sum(t.shape[0] for k, t in tensors.items() if k.endswith("lora_E")) == 20
    state = json.loads((out / "checkpoints" / "best" / "trainer_state.json").read_text())
    assert state["trainer"]["best_epoch"] >= 3  # an epoch with the final ranks

    from adapterkit.models import load_base

    model = AdaptedModel(load_base(str(workspace / "model")))
    name = model.load_adapter(out / "adapter")
    assert {n: m.rank for n, m in adapter_modules(model, name).items()} == pattern


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (
            ["--method", "adalora", "--rank", "4", "--target-rank", "8"],
            ["adalora", "--target-rank 8", "--rank 4"],
        ),
        (["--method", "lora", "--target-rank", "2"], ["--target-rank", "method 'lora'"]),
        (["--method", "adalora", "--reduction-factor", "4"], ["--reduction-factor", "'adalora'"]),
        (["--method", "adalora", "--rank-warmup", "0.8", "--rank-final", "0.5"], ["adalora"]),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    workspace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    fragments: list[str],
) -> None:
    code = main(_train(workspace, tmp_path / "run", "--epochs", "1", *extra))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("adapterkit: error:") and len(err.splitlines()) == 1, err
    assert all(fragment in err for fragment in fragments), err
    assert not (tmp_path / "run").exists()


def test_adalora_jobs_packed_equal_alone(tmp_path: Path, monkeypatch) -> None:
    """Each job's allocator sees only its own gradients: packed jobs reach the same masks,
    final ranks and weights as each trained alone (the packed-equivalence check)."""
    from tests.tasks.conftest import build_tokenizer
    from tests.train.test_packed_equivalence import compare, head_jobs_data, tiny_bert

    from adapterkit.tasks import make_task

    torch.set_num_threads(1)
    tokenizer = build_tokenizer()
    specs = []
    for index, (task_type, labels, examples) in enumerate(head_jobs_data()[:3]):
        task = make_task(task_type, tokenizer, labels, 64)
        specs.append((task, examples, examples[:4] if index == 0 else None))
    lines = []
    finish = RankAllocator.finish
    monkeypatch.setattr(RankAllocator, "finish", lambda self: lines.append(finish(self)))
    compare(lambda: AdaptedModel(tiny_bert(len(tokenizer))), specs, "adalora", tmp_path)
    # 3 jobs alone, then 3 packed: each cut from 12 x 10 ranks to 8 x 10
    assert len(lines) == 6 and all("final ranks 80 in all over 10 layers" in t for t in lines)


def test_resume_mid_schedule_finishes_as_uninterrupted(
    workspace: Path, tmp_path: Path, monkeypatch
) -> None:
    """The masks travel with the weights and the smoothed scores in the checkpoint, so a run
    stopped while its budget falls ends with the ranks and weights of one never stopped."""
    import adapterkit.train.engine as engine

    argv = ["--method", "adalora", "--rank", "4", "--target-rank", "2", "--epochs", "4"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(_train(workspace, straight, *argv)) in FINISHED
    real, calls = engine.evaluate_features, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # at the end of epoch 2 (step 8 of 16): checkpoint of step 4
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate_features", interrupted)
    assert main(_train(workspace, resumed, *argv)) == 130
    monkeypatch.setattr(engine, "evaluate_features", real)
    assert main(_train(workspace, resumed, *argv, "--resume")) in FINISHED
    want = load_file(straight / "adapter" / "adapterkit.safetensors")
    got = load_file(resumed / "adapter" / "adapterkit.safetensors")
    assert want.keys() == got.keys()
    for key in want:
        assert want[key].shape == got[key].shape, key
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)


def test_adalora_job_packed_beside_a_lora_job_equals_it_alone(tmp_path: Path) -> None:
    """Rows of an AdaLoRA job and of a LoRA job in the same batches: the AdaLoRA job's
    losses, ranks and weights are those it reaches alone."""
    from tests.tasks.conftest import build_tokenizer
    from tests.train.test_packed_equivalence import (
        head_jobs_data,
        make_jobs,
        no_dropout,
        tiny_bert,
        weights,
    )

    from adapterkit.tasks import make_task
    from adapterkit.train.engine import fit_jobs

    torch.set_num_threads(1)
    tokenizer = build_tokenizer()
    specs = []
    for task_type, labels, examples in head_jobs_data()[:2]:
        specs.append((make_task(task_type, tokenizer, labels, 64), examples, examples[:4]))

    def trained(methods: list[str]) -> tuple[AdaptedModel, list]:
        model = AdaptedModel(tiny_bert(len(tokenizer)))
        model.requires_grad_(False)
        jobs = []
        for index, method in enumerate(methods):
            jobs += make_jobs(model, [specs[index]], tmp_path / method, method, [index])
        no_dropout(model)
        fit_jobs(model, jobs, log=lambda _: None)
        return model, jobs

    alone, (single,) = trained(["adalora"])
    packed, (job, _) = trained(["adalora", "lora"])
    got = [row["train_loss"] for row in job.state.history]
    assert got == pytest.approx([row["train_loss"] for row in single.state.history], abs=1e-5)
    want = weights(alone, "job0")
    assert {k: v.shape for k, v in weights(packed, "job0").items()} == {
        k: v.shape for k, v in want.items()
    }
    for key, value in weights(packed, "job0").items():
        torch.testing.assert_close(value, want[key], rtol=0, atol=1e-5, msg=key)
    assert sum(v.shape[0] for k, v in want.items() if k.endswith("lora_E")) == 80  # 8 x 10
