"""Unanswerable questions on the real MiniLM: a hand-made SQuAD 2.0-style set (no such set
ships offline in a pinned wheel), a third of whose questions the context does not answer."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from adapterkit.bundle import read_bundle_config
from adapterkit.cli import main

pytestmark = pytest.mark.real

NAMES = ["Alice", "Bruno", "Chen", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas"]
CITIES = ["Lisbon", "Osaka", "Nairobi", "Toronto", "Krakow", "Lima", "Perth", "Oslo", "Quito"]
JOBS = ["a baker", "a pilot", "a nurse", "a chemist", "a teacher", "a welder", "a judge"]


def _examples(count: int, seed: int) -> list[dict]:
    """Contexts of two facts about a person; questions about one of them, or a third that
    the context does not state (empty answers)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        name, city, job = rng.choice(NAMES), rng.choice(CITIES), rng.choice(JOBS)
        context = f"{name} was born in {city}. Later {name} worked as {job} for many years."
        kind = rng.choice(["city", "job", "none"])
        if kind == "city":
            question, answer = f"Where was {name} born?", city
        elif kind == "job":
            question, answer = f"What did {name} work as?", job
        else:
            question, answer = f"How old is {name}?", None
        answers = (
            {"text": [answer], "answer_start": [context.index(answer)]}
            if answer
            else {"text": [], "answer_start": []}
        )
        rows.append({"question": question, "context": context, "answers": answers})
    return rows


def test_minilm_learns_when_to_answer_nothing(tmp_path: Path) -> None:
    data = tmp_path / "qa"
    data.mkdir()
    for split, count, seed in (("train", 300, 0), ("validation", 90, 1), ("test", 90, 2)):
        lines = [json.dumps(row) for row in _examples(count, seed)]
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    argv = ["train", "--model", "minilm", "--data", str(data), "--output", str(out)]
    common = ["--max-length", "64", "--epochs", "4", "--batch-size", "16", "--report-to", "none"]
    assert main([*argv, *common]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    threshold = read_bundle_config(out / "adapter")["task"]["no_answer_threshold"]
    assert 0 <= threshold <= 1
    # Answering nothing scores the unanswerable third; the adapter must do far better on both.
    assert metrics["NoAns_total"] > 0 and metrics["HasAns_total"] > 0
    assert metrics["NoAns_f1"] > 0.8 and metrics["HasAns_f1"] > 0.6
    assert metrics["f1"] > 0.75
