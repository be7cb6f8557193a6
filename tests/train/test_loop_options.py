"""Training options end to end on a tiny model: early stopping, SGD/cosine/accumulation,
multi-label and sentence pairs, token files, the full/head baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.tiny import FINISHED, save_tiny_bert

from adapterkit.cli import main
from adapterkit.train.batches import epoch_batches
from adapterkit.train.optim import make_scheduler

WORDS = [
    "good",
    "bad",
    "movie",
    "plot",
    "actor",
    "fun",
    "dull",
    "john",
    "paris",
    "visited",
    "likes",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("m") / "model", WORDS)


def _run(model_dir: Path, out: Path, train: Path, *extra: str, exit_codes=FINISHED) -> dict:
    code = main(
        [
            "train",
            "--model",
            str(model_dir),
            "--train",
            str(train),
            "--output",
            str(out),
            "--batch-size",
            "8",
            *extra,
        ]
    )
    assert code in exit_codes
    return json.loads((out / "metrics.json").read_text())


def _csv(path: Path, n: int = 8) -> Path:
    path.write_text("text,label\n" + "good fun movie,pos\nbad dull plot,neg\n" * n)
    return path


def test_early_stopping_waits_at_the_majority_class(model_dir: Path, tmp_path: Path) -> None:
    metrics = _run(
        model_dir,
        tmp_path / "run",
        _csv(tmp_path / "t.csv"),
        "--epochs",
        "6",
        "--lr",
        "1e-9",
        "--patience",
        "1",
        exit_codes=(3,),  # EXIT_LEARNED_NOTHING
    )
    # With a learning rate of 1e-9 the validation accuracy never beats always answering the
    # majority class: the model has learned nothing, so patience does not run out (the stop
    # rule itself: tests/train/test_early_stopping.py). Loss changes of 1e-9 break no tie.
    assert metrics["epochs_run"] == 6 and metrics["best_epoch"] == 1
    # ... and the run says so: in its metrics and at the top of its report.
    assert metrics["learned_nothing"] is True
    report = (tmp_path / "run" / "report.md").read_text().splitlines()
    assert report[2].startswith("**Warning: t learned nothing")  # t.csv: adapter "t"


@pytest.mark.parametrize("method", ["full", "head", "parallel", "houlsby"])
def test_sgd_cosine_accumulation_and_baselines(
    model_dir: Path, tmp_path: Path, method: str
) -> None:
    metrics = _run(
        model_dir,
        tmp_path / "run",
        _csv(tmp_path / "t.csv"),
        "--epochs",
        "2",
        "--method",
        method,
        "--optimizer",
        "sgd",
        "--scheduler",
        "cosine",
        "--grad-accumulation",
        "2",
    )
    assert 0.0 <= metrics["accuracy"] <= 1.0
    size, base_size = metrics["bundle_bytes"], (model_dir / "model.safetensors").stat().st_size
    if method == "full":  # the full bundle carries the base weights too, and loads them
        assert metrics["trainable_percent"] == 100.0 and size > base_size
        assert main(["predict", str(tmp_path / "run" / "adapter"), "good fun movie"]) == 0
    else:
        assert metrics["trainable_percent"] < 100.0 and size < base_size / 2


def test_multilabel_pairs_jsonl(model_dir: Path, tmp_path: Path) -> None:
    train = tmp_path / "t.jsonl"
    rows = [
        {"text": "good fun", "text_pair": "movie", "label": ["pos", "fun"]},
        {"text": "bad dull", "text_pair": "plot", "label": ["neg"]},
    ] * 8
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = _run(
        model_dir, tmp_path / "run", train, "--epochs", "1", "--text-pair-column", "text_pair"
    )
    assert "hamming_loss" in metrics


def test_token_classification_from_conll_file(model_dir: Path, tmp_path: Path) -> None:
    train = tmp_path / "train.conll"
    train.write_text(
        "john B-PER\nvisited O\nparis B-LOC\n\njohn B-PER\nlikes O\nparis B-LOC\n\n" * 6
    )
    metrics = _run(model_dir, tmp_path / "run", train, "--epochs", "1", "--method", "lora")
    assert {"f1", "precision", "recall", "strict_f1", "per_type"} <= set(metrics)


def test_epoch_order_is_seeded_and_schedule_warms_up() -> None:
    assert epoch_batches(10, 3, seed=0, epoch=1) == epoch_batches(10, 3, seed=0, epoch=1)
    assert epoch_batches(10, 3, seed=0, epoch=1) != epoch_batches(10, 3, seed=0, epoch=2)
    assert sorted(i for b in epoch_batches(10, 3, 0, 0) for i in b) == list(range(10))

    import torch

    from adapterkit.train.config import TrainConfig

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = make_scheduler(optimizer, TrainConfig(warmup_ratio=0.1), total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] < rates[5] < rates[10] and max(rates) == pytest.approx(1.0, abs=0.01)
    assert rates[-1] < 0.02  # linear decay to ~0


@pytest.mark.parametrize("name", ["linear", "cosine", "constant"])
@pytest.mark.parametrize(("warmup_ratio", "total"), [(0.0, 1), (0.1, 100), (0.06, 37), (0.9, 5)])
def test_schedules_equal_transformers_to_the_float(
    name: str, warmup_ratio: float, total: int
) -> None:
    import torch
    from transformers import get_scheduler

    from adapterkit.train.config import TrainConfig

    config = TrainConfig(scheduler=name, warmup_ratio=warmup_ratio)
    theirs_name = "constant_with_warmup" if name == "constant" else name
    ours_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.003)
    theirs_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.003)
    ours = make_scheduler(ours_opt, config, total_steps=total)
    warmup = int(warmup_ratio * total)
    theirs = get_scheduler(
        theirs_name, theirs_opt, num_warmup_steps=warmup, num_training_steps=total
    )
    for _ in range(total + 2):  # past the end too: a resumed run's last steps
        assert ours.get_last_lr() == theirs.get_last_lr()
        for optimizer, scheduler in ((ours_opt, ours), (theirs_opt, theirs)):
            optimizer.step()
            scheduler.step()


def test_resumed_epoch_train_loss_is_the_mean_of_the_batches_run_after_resume(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapterkit.train.packed as loop  # where the training forward runs

    train, out = _csv(tmp_path / "t.csv"), tmp_path / "run"
    # Batches of 2 and a checkpoint after every step, so an interruption leaves a mid-epoch one.
    args = ["--epochs", "1", "--batch-size", "2", "--save-steps", "1", "--lr", "1e-2"]
    real_forward = loop.task_forward
    losses: list[float] = []

    def forward(model, adapter, task, batch, stop_at: int | None):
        if stop_at is not None and len(losses) == stop_at:
            raise KeyboardInterrupt
        output = real_forward(model, adapter, task, batch)
        with torch.no_grad():  # the loss the loop computes next from the same output
            losses.append(task.loss(output, batch).item())
        return output

    monkeypatch.setattr(loop, "task_forward", lambda *a: forward(*a, stop_at=3))
    argv = ["train", "--model", str(model_dir), "--train", str(train), "--output", str(out)]
    assert main([*argv, *args]) == 130
    state = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert state["trainer"]["batches_done"] == 3 and state["trainer"]["epoch"] == 0
    before = state["trainer"]["train_seconds"]
    assert before > 0

    losses.clear()
    monkeypatch.setattr(loop, "task_forward", lambda *a: forward(*a, stop_at=None))
    _run(model_dir, out, train, *args, "--resume")
    history = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert len(losses) >= 2  # the epoch went on after the resume
    (row,) = history["trainer"]["history"]
    # The old loop divided the resumed part's sum by all of the epoch's batches.
    assert row["train_loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-5)
    # The epoch's clock goes on from the interrupted run's, not from zero.
    assert row["train_seconds"] > before


def test_each_epoch_row_records_the_training_seconds_so_far(
    model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    _run(model_dir, out, _csv(tmp_path / "t.csv"), "--epochs", "3", "--patience", "5")
    state = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    seconds = [row["train_seconds"] for row in state["trainer"]["history"]]
    assert len(seconds) == 3 and 0 < seconds[0] < seconds[1] < seconds[2]
    assert seconds[-1] <= state["trainer"]["train_seconds"] + 0.005  # the row is rounded
