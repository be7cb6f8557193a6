"""Early stopping waits for a run to learn, and breaks ties of the metric by the loss."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.tiny import save_tiny_bert

from adapterkit.cli import main
from adapterkit.train.early_stopping import judge

WORDS = ["good", "bad", "movie", "plot", "actor", "fun", "dull", "paris", "john"]


def test_first_evaluation_is_the_best() -> None:
    verdict = judge(0.4, 1.0, None, None, floor=0.0)
    assert verdict.improved and not verdict.counts and not verdict.at_floor


def test_a_worse_score_counts_once_the_floor_is_left() -> None:
    verdict = judge(0.3, 1.0, best=0.4, best_loss=0.9, floor=0.0)
    assert not verdict.improved and verdict.counts


def test_at_the_floor_nothing_counts() -> None:
    """0 F1 at every epoch: the model has not started learning, patience must not run out."""
    verdict = judge(0.0, 0.5, best=0.0, best_loss=0.5, floor=0.0)
    assert not verdict.improved and not verdict.counts and verdict.at_floor
    majority = judge(0.6, 0.7, best=0.6, best_loss=0.7, floor=0.6)  # majority-class accuracy
    assert majority.at_floor and not majority.counts


def test_ties_go_to_a_clearly_lower_loss() -> None:
    assert judge(0.8, 0.40, best=0.8, best_loss=0.50, floor=0.0).improved
    assert not judge(0.8, 0.49999, best=0.8, best_loss=0.5, floor=0.0).improved  # noise
    assert judge(0.8, 0.40, best=0.8, best_loss=0.50, floor=0.0).counts is False


def test_lower_is_better_and_no_floor() -> None:
    """Perplexity: lower is better, and there is no trivial predictor to wait for."""
    assert judge(9.0, None, best=10.0, best_loss=None, floor=None, greater_is_better=False).improved
    worse = judge(11.0, None, best=10.0, best_loss=None, floor=None, greater_is_better=False)
    assert worse.counts and not worse.at_floor


def _rare_entities(path: Path) -> Path:
    """Sentences of 8 words, a third of them with one PER entity: ~4 % of tokens."""
    generator = random.Random(0)
    plain = [w for w in WORDS if w != "john"]
    sentences = []
    for number in range(120):
        words = [generator.choice(plain) for _ in range(8)]
        if number % 3 == 0:
            words[generator.randrange(8)] = "john"
        sentences.append("\n".join(f"{w} {'B-PER' if w == 'john' else 'O'}" for w in words))
    path.write_text("\n\n".join(sentences) + "\n")
    return path


def test_a_run_stuck_at_zero_f1_is_not_stopped(tmp_path: Path) -> None:
    """The reported case on a tiny model: LoRA predicts only 'O' (F1 0.0) for its first
    three epochs. Early stopping with patience 2 used to end the run there and ship a model
    that finds no entity; waiting, it learns the entity in the next epoch."""
    model = save_tiny_bert(tmp_path / "bert", WORDS)
    out = tmp_path / "run"
    argv = ["train", "--model", str(model), "--train", str(_rare_entities(tmp_path / "t.conll"))]
    argv += ["--output", str(out), "--method", "lora", "--lr", "3e-3", "--batch-size", "8"]
    assert main([*argv, "--epochs", "6", "--patience", "2", "--report-to", "none"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())  # no test split: validation
    history = [
        row["eval_f1"] for row in json.loads((out / "checkpoints" / "last" / "trainer_state.json")
                                             .read_text())["trainer"]["history"]
    ]  # fmt: skip
    assert history[:3] == [0.0, 0.0, 0.0]  # the stuck start that used to stop the run
    assert len(history) > 3 and metrics["f1"] > 0.5


def test_a_run_that_learned_nothing_says_so_and_exits_3(tmp_path: Path, capsys) -> None:
    """Stopped (by its budget) while still predicting only 'O': the log, the report and the
    exit code say it, and the bundle is still written for inspection."""
    model = save_tiny_bert(tmp_path / "bert", WORDS)
    out = tmp_path / "run"
    argv = ["train", "--model", str(model), "--train", str(_rare_entities(tmp_path / "t.conll"))]
    argv += ["--output", str(out), "--method", "lora", "--lr", "3e-3", "--batch-size", "8"]
    assert main([*argv, "--epochs", "2", "--report-to", "none"]) == 3
    captured = capsys.readouterr()
    assert "WARNING: t learned nothing: its best validation f1 0.0000" in captured.out  # the log
    assert captured.err.strip().splitlines()[-1].startswith("adapterkit: warning: t learned")
    assert json.loads((out / "metrics.json").read_text())["learned_nothing"] is True
    assert (out / "report.md").read_text().splitlines()[2].startswith("**Warning: t learned")
    assert (out / "adapter" / "adapterkit.json").is_file()


def test_patience_ends_no_job_in_its_first_steps() -> None:
    """min(200, half the run): a 60-step-an-epoch small set is not stopped on its first
    noisy evaluations, and a short run can still stop in its second half."""
    from adapterkit.train.job import TrainJob

    job = TrainJob("a", None, [], None, None, 1e-3, Path("."))  # type: ignore[arg-type]
    job.total_steps = 300  # 5 epochs of 60 steps
    assert job.patience_from_step == 150
    job.total_steps = 5_000
    assert job.patience_from_step == 200


def test_small_data_gets_enough_steps() -> None:
    """Epochs not given: 5, or as many as reach min_steps optimizer steps (at most 100)."""
    from adapterkit.train.config import TrainConfig

    config = TrainConfig()
    assert config.epochs_for(10_000) == 5  # 313 steps an epoch
    assert config.epochs_for(380) == 25  # 12 steps an epoch: 300 steps take 25 epochs
    assert config.epochs_for(3) == 100  # capped
    assert TrainConfig(epochs=2).epochs_for(380) == 2  # given: kept
    assert TrainConfig(min_steps=0).epochs_for(380) == 5
    assert TrainConfig(grad_accumulation=2).epochs_for(380) == 50  # 6 steps an epoch


def test_the_budget_is_logged_and_recorded(tmp_path: Path, capsys) -> None:
    import yaml

    model = save_tiny_bert(tmp_path / "bert", WORDS)
    train = tmp_path / "t.csv"
    train.write_text("text,label\n" + "good fun movie,pos\nbad dull plot,neg\n" * 9)
    out = tmp_path / "run"
    argv = ["train", "--model", str(model), "--train", str(train), "--output", str(out)]
    assert main([*argv, "--batch-size", "8", "--min-steps", "20", "--report-to", "none"]) in (0, 3)
    # 16 training rows (2 carved for validation): 2 steps an epoch, 10 epochs for 20 steps.
    assert "2 optimizer step(s) an epoch, so 10 epochs rather than 5" in capsys.readouterr().out
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == 10
