"""A base sharded over two CPU processes (FSDP2, gloo) trains the weights of the same two
processes unsharded (which tests/train/test_processes.py checks against one process).

Real launches, as a user types them: ``torchrun ... --shard-base`` and ``accelerate launch
--use_fsdp``. A tiny Llama classifier (and causal LM): 21 training rows in batches of 5, so the last batch
has one row and the second process has none of it (it must still run the sharded forward
and backward with the first, without moving its dropout stream); 5 validation rows in
batches of 2, so one process runs two evaluation forwards and the other one, plus one
to match. The head's dropout (0.1) stays on: both runs must draw the same masks.
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
from tests.tiny import tiny_model

from adapterkit.errors import AdapterkitError
from adapterkit.train.config import TrainConfig
from adapterkit.train.options import JobSpec, RunOptions
from adapterkit.train.sharding import check_shardable, transformer_blocks

BIN = Path(sys.executable).parent
WORDS = ["cat", "dog", "house", "red", "big", "small", "blue"]
TORCHRUN = [str(BIN / "torchrun"), "--nproc_per_node", "2"]
ACCELERATE_FSDP = [str(BIN / "accelerate"), "launch", "--use_fsdp", "--num_processes", "2"]
ACCELERATE_FSDP += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shard")
    save_lm(root / "llama")
    rows = [
        {"text": f"the {a} {b}", "label": "pet" if a in ("cat", "dog") else "thing"}
        for a in WORDS
        for b in WORDS[:4]
    ]
    _write(root / "train.jsonl", rows[:21])
    _write(root / "validation.jsonl", rows[21:26])
    _write(root / "test.jsonl", rows[:7])
    pairs = [{"prompt": f"translate to spanish : the {w}", "response": f"el {w}"} for w in WORDS]
    _write(root / "gen-train.jsonl", pairs * 3)  # 21 again
    _write(root / "gen-validation.jsonl", pairs[:5])
    _write(root / "gen-test.jsonl", pairs[:3])
    return root


def _args(root: Path, out: Path, method: str = "lora", data: str = "") -> list[str]:
    """``adapterkit`` arguments; ``data``: "" for the classification files, "gen-" for the
    prompt/response ones."""
    args = ["train", "--model", str(root / "llama"), "--method", method, "--output", str(out)]
    for split in ("train", "validation", "test"):
        args += [f"--{split}", str(root / f"{data}{split}.jsonl")]
    args += ["--batch-size", "5", "--eval-batch-size", "2", "--epochs", "2", "--lr", "0.01"]
    return [*args, "--max-length", "40"]  # room for prompt tuning's 20 tokens in 64 positions


def _run(
    launcher: list[str], root: Path, out: Path, *extra: str, method: str = "lora", data: str = ""
):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [*launcher, "-m", "adapterkit", *_args(root, out, method, data), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def unsharded(setup: Path, tmp_path_factory: pytest.TempPathFactory):
    """The same two-process run without sharding, per method (trained once each)."""
    runs: dict[tuple[str, str], Path] = {}

    def run(method: str, data: str) -> Path:
        if (method, data) not in runs:
            out = tmp_path_factory.mktemp("unsharded") / method
            done = _run(TORCHRUN, setup, out, method=method, data=data)
            assert done.returncode == 0, done.stderr[-2000:]
            assert "base sharded" not in done.stdout
            runs[method, data] = out
        return runs[method, data]

    return run


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "adapter" / "adapterkit.safetensors"))


@pytest.mark.parametrize(
    ("launcher", "flag", "method", "data"),
    [
        (TORCHRUN, "--shard-base", "lora", ""),
        (ACCELERATE_FSDP, None, "lora", ""),
        # Frozen adapter parameters (the rank mask) stay whole; soft tokens enter through
        # the sharded embeddings.
        (TORCHRUN, "--shard-base", "adalora", ""),
        (TORCHRUN, "--shard-base", "prompt", ""),
        # The base's own LM head, and decoding on both processes until both are done.
        (TORCHRUN, "--shard-base", "lora", "gen-"),
    ],
    ids=["torchrun", "accelerate-fsdp", "adalora", "prompt", "causal-lm"],
)
def test_a_sharded_base_trains_the_weights_of_a_whole_one(
    launcher, flag, method, data, setup, unsharded, tmp_path
) -> None:
    out = tmp_path / "two"
    done = _run(launcher, setup, out, *([flag] if flag else []), method=method, data=data)
    unsharded = unsharded(method, data)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(t for t in done.stdout.splitlines() if t.startswith("base sharded"))
    assert line.startswith("base sharded over 2 processes (3 FSDP units): each keeps ")
    kept, total = (float(w.replace(",", "")) for w in line.split() if w[0].isdigit() and "." in w)
    assert total > 0
    assert kept == pytest.approx(total / 2, abs=0.015)  # half of every weight, to the rounding
    one, two = _weights(unsharded), _weights(out)
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)
    # Validation (padded to equal forward passes) and the final test scores agree too.
    state = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    alone = json.loads((unsharded / "checkpoints" / "last" / "trainer_state.json").read_text())
    for mine, theirs in zip(state["trainer"]["history"], alone["trainer"]["history"], strict=True):
        for key in ("train_loss", "eval_loss"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-5), key
    final, final_alone = (
        json.loads((run / "metrics.json").read_text()) for run in (out, unsharded)
    )
    assert final["loss"] == pytest.approx(final_alone["loss"], rel=1e-5)
    if data:  # the same continuations decoded
        assert final["samples"] == final_alone["samples"]
    else:
        assert final["accuracy"] == final_alone["accuracy"]
    # The other process evaluated into a scratch folder: nothing of it is left in the run.
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in unsharded.iterdir())


def test_kill_9_then_resume_ends_as_the_uninterrupted_run(setup, tmp_path) -> None:
    """A sharded two-process run killed in its fourth epoch and resumed ends with the
    uninterrupted run's weights (the head's dropout on; that each process gets its own
    random state back is checked directly in tests/train/test_checkpoint_rng.py)."""
    import signal
    import time

    flags = ("--shard-base", "--save-steps", "1", "--epochs", "6", "--patience", "6")
    straight = tmp_path / "straight"
    done = _run(TORCHRUN, setup, straight, *flags)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "resumed"
    argv = [*TORCHRUN, "-m", "adapterkit", *_args(setup, out), *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while _step(out) < 17 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
    proc.wait()
    assert not (out / "metrics.json").exists()  # killed mid-run (30 steps in all)
    done = _run(TORCHRUN, setup, out, *flags, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in done.stdout
    # The last checkpoint (the best one may come from before the kill).
    last = "checkpoints/last/adapterkit.safetensors"
    want, got = load_file(str(straight / last)), load_file(str(out / last))
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)


def _step(run: Path) -> int:
    """The optimizer step of the run's last checkpoint (0 before the first)."""
    try:
        state = json.loads((run / "checkpoints" / "last" / "trainer_state.json").read_text())
    except (OSError, ValueError):  # none yet, or being replaced
        return 0
    return state["trainer"]["global_step"]


def test_one_process_says_there_is_nothing_to_shard(setup, tmp_path) -> None:
    done = _run([sys.executable], setup, tmp_path / "one", "--shard-base", "--epochs", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--shard-base: one process, so the base stays whole" in done.stdout


@pytest.mark.parametrize(("arch", "blocks"), [("bert", 2), ("llama", 2), ("t5", 4)])
def test_transformer_blocks_are_the_checkpointed_layers(arch: str, blocks: int) -> None:
    found = transformer_blocks(tiny_model(arch))
    assert len(found) == blocks
    assert len({id(block) for block in found}) == blocks


def _spec(method: str = "lora", **options) -> JobSpec:
    return JobSpec("a", RunOptions(data="trec", method=method, **options), TrainConfig())


@pytest.mark.parametrize(
    ("spec", "env", "message"),
    [
        (_spec("full"), {}, "full fine-tuning trains the base"),
        (_spec(quantize="4bit"), {}, "--quantize cannot be combined"),
        (_spec(), {"ACCELERATE_USE_DEEPSPEED": "true"}, "DeepSpeed"),
    ],
    ids=["full", "quantized", "deepspeed"],
)
def test_what_cannot_be_sharded_is_refused_in_one_line(spec, env, message, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(AdapterkitError, match=message):
        check_shardable([spec])
