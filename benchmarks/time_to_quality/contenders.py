"""The contenders, the data they all train on, and one run of each as a curve.

A curve is what every contender's run leaves, whatever trained it: per epoch, the training
seconds so far (validation included) and the validation score, scored by adapterkit's own
task metrics from each run's predictions; and the test score of the model the run ends with.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapterkit.data.loading import DataSplits
from adapterkit.files import atomic_write_bytes
from adapterkit.models import resolve_model
from adapterkit.tasks import make_task
from adapterkit.train.default_method import default_method

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Contender:
    """One way to get an adapted model: a tool at its documented settings."""

    name: str
    what: str
    """The table's description of its settings."""
    venv: str | None
    """The peer venv whose Trainer runs it (None: adapterkit's own CLI in this venv)."""
    lr: float | None = None
    adapter: bool = True
    """Whether it is a parameter-efficient run (the target is the best such peer's)."""
    keeps_best: bool = False
    """Whether its run ends with its best validation epoch's model (else its last)."""
    flags: tuple[str, ...] = ()
    """adapterkit's own contenders: flags beside the defaults (a candidate default)."""
    candidate_of: str | None = None
    """The contender this one is a candidate switch of: the page judges its quality
    against that one's by the rule of docs/switches.md."""


CONTENDERS = {
    c.name: c
    for c in [
        Contender(
            "adapterkit", "`adapterkit train --data D`: every default", None, keeps_best=True
        ),
        Contender(
            "adapterkit-attn0",
            "`adapterkit train --data D --attention-dropout 0`: the defaults with "
            "attention-probability dropout off (a candidate default)",
            None,
            keeps_best=True,
            flags=("--attention-dropout", "0"),
            candidate_of="adapterkit",
        ),
        Contender(
            "peft-lora",
            "peft LoRA at LoraConfig's defaults (r 8, alpha 8, query/value), lr 5e-4, Trainer",
            ".venv-peft",
            5e-4,
        ),
        Contender(
            "adapterhub-pfeiffer",
            "AdapterHub `seq_bn` (Pfeiffer, reduction factor 16), lr 1e-3, AdapterTrainer",
            ".venv-adapters",
            1e-3,
        ),
        Contender("full", "full fine-tuning, lr 5e-5, Trainer", ".venv-peft", 5e-5, adapter=False),
    ]
}


@dataclass
class Curve:
    """One run: validation score after each epoch against training seconds, and the end."""

    contender: str
    seed: int
    seconds: list[float]
    validation: list[float]
    test: float | None
    """Test score of the model the run ends with (adapterkit: its best validation epoch;
    Trainer: its last epoch, as ``load_best_model_at_end`` is off by default)."""
    run_seconds: float
    trainable_percent: float
    version: str
    day: str = ""
    """The date the run finished (its record's file time): times from different days
    need not compare, as this machine's speed varies from day to day."""

    def first_reaching(self, target: float) -> float | None:
        """Training seconds until validation first reached ``target`` (None: never)."""
        for seconds, score in zip(self.seconds, self.validation, strict=True):
            if score >= target:
                return seconds
        return None


@dataclass(frozen=True)
class Setup:
    """The task every contender trains on: data, model and the peers' budget."""

    data: str
    model: str
    batch_size: int
    max_length: int
    epochs: int


def task_of(splits: DataSplits, setup: Setup) -> Any:
    """adapterkit's task object for the data: its metrics score every contender (the
    tokenizer and max length it is built with play no part in scoring)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(setup.model))
    return make_task(splits.task, tokenizer, splits.label_names, setup.max_length)


def export_data(splits: DataSplits, path: Path) -> None:
    """The splits adapterkit uses, with label ids, as the peers' runner reads them."""
    index = {name: i for i, name in enumerate(splits.label_names)}

    def row(example: dict[str, Any]) -> dict[str, Any]:
        if "tags" in example:
            return {"tokens": example["tokens"], "tags": [index[t] for t in example["tags"]]}
        return {
            "text": example["text"],
            "text_pair": example.get("text_pair"),
            "label": index[example["label"]],
        }

    content = {"label_names": splits.label_names, "task": splits.task}
    for name in ("train", "validation", "test"):
        content[name] = [row(e) for e in getattr(splits, name) or []]
    atomic_write_bytes(path, json.dumps(content).encode())


def _score(task: Any, splits: DataSplits, split: str, ids: list[Any]) -> float:
    """The primary metric of predicted label ids (per row, or per word: words a peer's
    truncation cut off count as ``O``)."""
    examples = getattr(splits, split)
    names = splits.label_names
    if examples and "tags" in examples[0]:
        outside = names.index("O") if "O" in names else 0
        ids = [
            row + [outside] * (len(e["tokens"]) - len(row))
            for row, e in zip(ids, examples, strict=True)
        ]
        predicted = [[names[i] for i in row] for row in ids]
    else:
        predicted = [names[i] for i in ids]
    return float(task.metrics(task.references(examples), predicted)[task.primary_metric])


def run_peer(
    contender: Contender,
    setup: Setup,
    seed: int,
    data_file: Path,
    out: Path,
    python: str,
    log: Path | None = None,
) -> dict[str, Any]:
    """Train a peer through its venv's Trainer; its raw record. ``log``: where the run's
    output goes (default: this process's)."""
    spec = {
        "contender": contender.name,
        "kind": json.loads(data_file.read_text())["task"],
        "model": resolve_model(setup.model),
        "data": str(data_file.resolve()),
        "lr": contender.lr,
        "epochs": setup.epochs,
        "batch_size": setup.batch_size,
        "max_length": setup.max_length,
        "seed": seed,
        "out": str(out.resolve()),
    }
    spec_file = out.with_suffix(".spec.json")
    spec_file.write_text(json.dumps(spec))
    command = [python, "-m", "benchmarks.time_to_quality.trainer_runner", "--spec", str(spec_file)]
    if log is None:
        subprocess.run(command, check=True, cwd=ROOT)
    else:
        with log.open("w") as sink:
            subprocess.run(command, check=True, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    return json.loads(out.read_text())


def method_today(contender: Contender, task_type: str) -> str:
    """The method ``adapterkit train`` trains for an own contender today: its ``--method``
    flag, else the task type's default (which docs/default_method.md may move)."""
    flags = list(contender.flags)
    if "--method" in flags:
        return flags[flags.index("--method") + 1]
    return default_method(task_type)


def is_stale(record: dict[str, Any], contender: Contender, task_type: str) -> bool:
    """Whether an own contender's record trained another method than it would today (a
    record from before records named their method counts as stale): rerun, not reuse."""
    if contender.venv is not None:
        return False
    return record.get("method") != method_today(contender, task_type)


def run_ours(contender: Contender, setup: Setup, seed: int, out: Path) -> dict[str, Any]:
    """``adapterkit train`` with every default but where its output goes, the seed and the
    contender's own flags."""
    run_dir = out.with_suffix("")
    command = [
        sys.executable,
        "-m",
        "adapterkit",
        "train",
        "--data",
        setup.data,
        "--model",
        setup.model,
    ]
    command += ["--seed", str(seed), "--output", str(run_dir), "--report-to", "none"]
    command += contender.flags
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - started
    state = json.loads((run_dir / "checkpoints" / "last" / "trainer_state.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    method = metrics["method"]  # the one trained: the default is filled in before the run
    record = {
        "contender": contender.name,
        "method": method,
        "version": f"adapterkit (this tree), method {method}",
        "trainable_percent": round(metrics["trainable_percent"], 3),
        "run_seconds": metrics["train_seconds"],
        "wall_seconds": round(wall, 1),
        "history": state["trainer"]["history"],
        "test_metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
    }
    atomic_write_bytes(out, json.dumps(record).encode())
    return record


def curve_of(
    record: dict[str, Any], seed: int, task: Any, splits: DataSplits, day: str = ""
) -> Curve:
    """A run's record as a curve, every score by adapterkit's metrics, in percent."""
    primary = task.primary_metric
    if "history" in record:  # adapterkit's own run
        history = record["history"]
        seconds = [row["train_seconds"] for row in history]
        validation = [100 * row[f"eval_{primary}"] for row in history]
        test = record["test_metrics"].get(primary)
        test = None if test is None else 100 * test
    else:
        epochs = record["epochs"]
        seconds = [row["seconds"] for row in epochs]
        validation = [100 * _score(task, splits, "validation", row["validation"]) for row in epochs]
        last = epochs[-1]["test"]
        test = None if last is None else 100 * _score(task, splits, "test", last)
    return Curve(
        record["contender"],
        seed,
        seconds,
        validation,
        test,
        record["run_seconds"],
        record["trainable_percent"],
        record["version"],
        day,
    )
