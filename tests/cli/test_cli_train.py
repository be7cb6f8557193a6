"""The CLI end to end on a tiny random BERT saved to disk: train, evaluate, predict, info, resume."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.tiny import FINISHED, save_tiny_bert

from adapterkit.cli import main

TOPICS = {
    "sport": ["ball", "goal", "team", "match", "score"],
    "food": ["bread", "cheese", "apple", "soup", "salad"],
    "tech": ["laptop", "code", "server", "chip", "robot"],
}
FILLER = ["the", "a", "my", "was", "great", "today", "very"]


def _rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(sorted(TOPICS))
        words = [rng.choice(TOPICS[label]) for _ in range(2)] + rng.sample(FILLER, 3)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    words = [w for ws in TOPICS.values() for w in ws] + FILLER
    save_tiny_bert(root / "model", words)
    _csv(root / "train.csv", _rows(120, 1))
    _csv(root / "validation.csv", _rows(30, 2))
    _csv(root / "test.csv", _rows(30, 3))
    return root


def _train(ws: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "train",
            "--model",
            str(ws / "model"),
            "--train",
            str(ws / "train.csv"),
            "--validation",
            str(ws / "validation.csv"),
            "--test",
            str(ws / "test.csv"),
            "--output",
            str(out),
            "--batch-size",
            "16",
            "--max-length",
            "32",
            *extra,
        ]
    )


def test_train_evaluate_predict_info(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = workspace / "run"
    assert _train(workspace, out, "--method", "pfeiffer", "--epochs", "10", "--lr", "5e-3") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["accuracy"] > 0.6  # chance is 1/3
    for name in ("report.md", "config.yaml", "curves.png", "validation_metrics.json"):
        assert (out / name).is_file(), name
    assert (out / "adapter" / "adapterkit.safetensors").is_file()
    assert list((out / "tensorboard").iterdir())
    capsys.readouterr()

    assert (
        main(
            [
                "evaluate",
                str(out / "adapter"),
                "--data",
                str(workspace / "test.csv"),
                "--split",
                "train",
            ]
        )
        == 0
    )
    assert "accuracy" in capsys.readouterr().out

    assert main(["predict", str(out / "adapter"), "goal team ball match", "bread soup cheese"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["label"] for line in lines] == ["sport", "food"]
    assert abs(sum(lines[0]["scores"].values()) - 1.0) < 1e-5

    assert main(["info", str(out / "adapter")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "bottleneck" and sorted(info["labels"]) == sorted(TOPICS)

    # bf16 inference (what --precision auto picks on a CPU with native bf16): same answers
    bundle = str(out / "adapter")
    assert main(["predict", bundle, "goal team ball match", "--precision", "bf16"]) == 0
    low = json.loads(capsys.readouterr().out)
    assert low["label"] == "sport" and abs(low["score"] - lines[0]["score"]) < 0.05
    for precision in ("fp32", "bf16"):
        argv = ["evaluate", bundle, "--data", str(workspace / "test.csv"), "--output"]
        assert main([*argv, str(workspace / precision), "--precision", precision]) == 0
    scores = [json.loads((workspace / p / "metrics.json").read_text()) for p in ("fp32", "bf16")]
    assert abs(scores[0]["accuracy"] - scores[1]["accuracy"]) <= 0.1


def test_validation_and_the_final_evaluation_run_in_the_training_precision(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapterkit.train.evaluate as evaluate

    seen: list[bool] = []
    real = evaluate.task_forward

    def spy(*args: Any) -> Any:
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(*args)

    monkeypatch.setattr(evaluate, "task_forward", spy)
    assert _train(workspace, tmp_path / "low", "--epochs", "1", "--precision", "bf16") in FINISHED
    assert seen and all(seen)  # validation, then validation and test of the final model
    seen.clear()
    assert _train(workspace, tmp_path / "exact", "--epochs", "1") in FINISHED  # auto: fp32 here
    assert seen and not any(seen)


def test_yaml_config_and_flag_override(workspace: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("method: lora\nepochs: 1\nrank: 2\nlr: 0.002\n")
    out = tmp_path / "run"
    assert _train(workspace, out, "--config", str(config), "--lr", "0.003") in FINISHED
    used = (out / "config.yaml").read_text()
    assert "method: lora" in used and "lr: 0.003" in used and "r: 2" in used


def test_length_grouping_with_even_weights_is_the_default_and_can_be_switched_off(
    workspace: Path, tmp_path: Path
) -> None:
    assert _train(workspace, tmp_path / "grouped", "--epochs", "1") in FINISHED
    written = (tmp_path / "grouped" / "config.yaml").read_text()
    assert "group_by_length: true" in written and "loss_weighting: even" in written
    flags = ("--no-group-by-length", "--loss-weighting", "batch")
    assert _train(workspace, tmp_path / "plain", "--epochs", "1", *flags) in FINISHED
    written = (tmp_path / "plain" / "config.yaml").read_text()
    assert "group_by_length: false" in written and "loss_weighting: batch" in written


def test_attention_dropout_flag_reaches_the_run_and_resume_checks_it(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _train(workspace, out, "--epochs", "1", "--attention-dropout", "0") in FINISHED
    assert "attention_dropout: 0.0" in (out / "config.yaml").read_text()
    # The bundle serves on the base as shipped: the switch is a training-time setting.
    assert main(["predict", str(out / "adapter"), "goal team ball"]) == 0
    capsys.readouterr()
    assert _train(workspace, out, "--epochs", "1", "--resume") == 2
    err = capsys.readouterr().err
    assert "attention_dropout 0.0 -> None" in err and "Traceback" not in err


def test_resume_with_other_training_options_is_refused(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _train(workspace, out, "--epochs", "1") in FINISHED
    capsys.readouterr()
    assert _train(workspace, out, "--epochs", "1", "--seed", "3", "--resume") == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "seed 0 -> 3" in err and "Traceback" not in err
    assert _train(workspace, out, "--epochs", "1", "--resume") in FINISHED  # same options: fine


def test_resume_after_interruption_matches_uninterrupted(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("--method", "lora", "--epochs", "3", "--lr", "5e-3", "--patience", "5")
    straight = tmp_path / "straight"
    assert _train(workspace, straight, *args) in FINISHED

    import adapterkit.train.engine as loop  # the loop lives in the engine

    real_evaluate = loop.evaluate_features
    calls = {"n": 0}

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # during epoch 2's evaluation: the last checkpoint is epoch 1's
            raise KeyboardInterrupt
        return real_evaluate(*a, **k)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(loop, "evaluate_features", interrupted)
    assert _train(workspace, resumed, *args) == 130
    state = json.loads((resumed / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert state["trainer"]["epoch"] == 1
    monkeypatch.setattr(loop, "evaluate_features", real_evaluate)
    assert _train(workspace, resumed, *args, "--resume") in FINISHED

    from safetensors.torch import load_file

    a = load_file(str(straight / "adapter" / "adapterkit.safetensors"))
    b = load_file(str(resumed / "adapter" / "adapterkit.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_adapter_scaling_flag_reaches_the_adapter_and_its_bundle(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    flags = ("--epochs", "1", "--method", "parallel", "--adapter-scaling", "4")
    assert _train(workspace, out, *flags) in FINISHED
    assert "scaling: 4.0" in (out / "config.yaml").read_text()
    bundle_config = json.loads((out / "adapter" / "adapterkit.json").read_text())
    assert json.dumps(bundle_config).count('"scaling": 4.0') == 1
    # LoRA's scaling is alpha / r: the bottleneck flag is refused there, in one line.
    assert _train(workspace, tmp_path / "lora", "--method", "lora", "--adapter-scaling", "4") == 2
    err = capsys.readouterr().err
    assert "scaling" in err and "Traceback" not in err


@pytest.mark.parametrize("method", ["parallel", "lora"])
def test_a_runs_config_yaml_is_accepted_back_as_config(
    workspace: Path, tmp_path: Path, method: str
) -> None:
    import yaml

    first, second = tmp_path / "first", tmp_path / "second"
    flags = ("--epochs", "1", "--method", method, "--lr", "2e-3", "--layers", "1")
    # One epoch of one layer may or may not learn (exit 3): the config is what is checked.
    assert _train(workspace, first, *flags, "--adapter-dropout", "0.1") in FINISHED
    assert _train(workspace, second, "--config", str(first / "config.yaml")) in FINISHED
    a, b = (yaml.safe_load((run / "config.yaml").read_text()) for run in (first, second))
    # The preset (parallel: placement and scaling 4) and the given options come back the same.
    assert a["adapter"] == b["adapter"] and a["train"] == b["train"]
    # method_options lists what was given: the second run was given the whole adapter section.
    same = {"output": None, "method_options": None}
    assert {**a["run"], **same} == {**b["run"], **same}
    assert b["run"]["method"] == method and b["adapter"]["dropout"] == 0.1
