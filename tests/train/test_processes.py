"""Runs launched on two CPU processes (gloo) train the same weights as one process.

Real launches, as a user types them: ``torchrun`` and ``accelerate launch``. A tiny
Llama with no dropout anywhere, batches of 5 rows over 12 examples, so the two
processes' shares are uneven (3 + 2 rows, and a last batch of 1 + 1) and of different
token counts: each share's loss must be weighed by its tokens for the sum to be the
whole batch's mean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.generation.test_cli_generation import save_lm

BIN = Path(sys.executable).parent
ROWS = ["cat", "dog", "house", "red cat", "big dog", "small house"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mp")
    model = save_lm(root / "llama")
    data = root / "data.jsonl"
    rows = [{"prompt": f"translate to spanish : the {w}", "response": f"el {w}"} for w in ROWS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 2))
    return model, data


def _run(
    launcher: list[str],
    setup: tuple[Path, Path],
    out: Path,
    *extra: str,
    env: dict[str, str] | None = None,
):
    model, data = setup
    args = ["train", "--model", str(model), "--train", str(data), "--method", "lora"]
    args += ["--batch-size", "5", "--epochs", "2", "--lr", "0.01", "--output", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    command = [*launcher, *([] if launcher[-1].endswith(".py") else ["-m", "adapterkit"])]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "adapter" / "adapterkit.safetensors"))


@pytest.fixture(scope="module")
def one_process(setup, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    done = _run([sys.executable], setup, out)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


TORCHRUN = [str(BIN / "torchrun"), "--nproc_per_node", "2"]
ACCELERATE = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2"]
ACCELERATE += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


@pytest.mark.parametrize("launcher", [TORCHRUN, ACCELERATE], ids=["torchrun", "accelerate"])
def test_two_processes_train_the_weights_of_one(launcher, setup, one_process, tmp_path) -> None:
    out = tmp_path / "two"
    done = _run(launcher, setup, out)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = _weights(one_process), _weights(out)
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
    state = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert state["trainer"]["world_size"] == 2
    # Validation split between the processes and gathered: the same scores as one process.
    alone = json.loads((one_process / "checkpoints" / "last" / "trainer_state.json").read_text())
    for mine, theirs in zip(state["trainer"]["history"], alone["trainer"]["history"], strict=True):
        for key in ("train_loss", "eval_loss", "eval_perplexity", "eval_tokens"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-5), key
    # The main process alone logs: one line per epoch, not one per process.
    assert done.stdout.count("epoch 1: train loss") == 1


def test_resume_on_another_number_of_processes_is_refused(setup, one_process, tmp_path) -> None:
    done = _run(TORCHRUN, setup, one_process, "--resume")
    assert done.returncode != 0
    assert "was trained on 1 process(es), not 2; resume with the same number" in done.stderr


def test_divergence_on_one_process_stops_the_job_on_every_process(setup, tmp_path) -> None:
    """NaN losses on the first process alone (from epoch 2's first step): every process
    reaches the same verdict, none waits on the others, and the bundle holds epoch 1."""
    out = tmp_path / "diverged"
    env = {"DIVERGE_AT_STEP": "4"}  # 12 examples in batches of 5: 3 steps an epoch
    launch = [*TORCHRUN, str(Path(__file__).parent / "diverging_launch.py")]
    done = _run(launch, setup, out, "--epochs", "3", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("training diverged by step 4: the loss is nan") == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["diverged"] is True and metrics["best_epoch"] == 1
    assert all(bool(torch.isfinite(t).all()) for t in _weights(out).values())
