"""Relation extraction on the real MiniLM: a short run on a small hand-made set must beat
the trivial predictor (always "no_relation", F1 0) by a wide margin.

No pinned wheel carries a real relation-extraction data set (TACRED and SemEval-2010
Task 8 are not on PyPI), so the sentences are written here: several phrasings per
relation, with train and test drawing on disjoint names, so that the model must read
the context between the markers rather than remember the entities.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from adapterkit.cli import main

pytestmark = pytest.mark.real

# A sentence and its labelled pairs (head slot, tail slot, relation); slots: p/q person,
# o organisation, l place. Several pairs share a sentence, and a pair read backwards is
# no relation: only the markers tell the model which pair is asked about.
TEMPLATES = [
    ("{p} works at {o} as an engineer.", [("p", "o", "works_for"), ("o", "p", "no_relation")]),
    ("{o} hired {p} in the spring.", [("p", "o", "works_for")]),
    ("{p} was born in {l}.", [("p", "l", "born_in"), ("l", "p", "no_relation")]),
    ("Born in {l}, {p} moved abroad as a child.", [("p", "l", "born_in")]),
    ("The headquarters of {o} are in {l}.", [("o", "l", "headquartered_in")]),
    (
        "{p}, who was born in {l}, now works at {o}.",
        [("p", "l", "born_in"), ("p", "o", "works_for"), ("o", "l", "no_relation")],
    ),
    (
        "{p} of {o}, which is based in {l}, met {q} there.",
        [("p", "o", "works_for"), ("o", "l", "headquartered_in"), ("q", "o", "no_relation")],
    ),
    (
        "{p} visited {l} on holiday with {q}.",
        [("p", "l", "no_relation"), ("p", "q", "no_relation")],
    ),
]
NAMES = {
    "train": {
        "p": ["Alice Moreau", "Brian Okafor", "Chen Wei", "Dana Kowalski", "Emil Larsen"],
        "o": ["Acme Corp", "Globex", "Initech", "Umbrella Labs", "Stark Industries"],
        "l": ["Lisbon", "Nairobi", "Osaka", "Toronto", "Krakow"],
    },
    "test": {
        "p": ["Farah Haddad", "Goran Petrov", "Hana Sato", "Ivan Duarte"],
        "o": ["Hooli", "Vandelay Imports", "Wayne Enterprises", "Soylent"],
        "l": ["Lima", "Oslo", "Hanoi", "Dublin"],
    },
}


def _examples(pool: str, sentences: int, seed: int) -> list[dict]:
    rng, names, rows = random.Random(seed), NAMES[pool], []
    for i in range(sentences):
        sentence, pairs = TEMPLATES[i % len(TEMPLATES)]
        p, q = rng.sample(names["p"], 2)
        fill = {"p": p, "q": q, "o": rng.choice(names["o"]), "l": rng.choice(names["l"])}
        text = sentence.format(**fill)
        spans = {}
        for slot, name in fill.items():
            if "{" + slot + "}" in sentence:
                start = text.index(name)
                spans[slot] = [start, start + len(name)]
        for head, tail, relation in pairs:
            rows.append(
                {"text": text, "head": spans[head], "tail": spans[tail], "relation": relation}
            )
    return rows


def test_minilm_learns_relations_from_a_small_set(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    splits = {
        "train": _examples("train", 160, 0),  # 320 pairs
        "validation": _examples("train", 24, 1),
        "test": _examples("test", 64, 2),
    }
    for split, rows in splits.items():
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (data / f"{split}.jsonl").write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    args = ["train", "--model", "minilm", "--data", str(data), "--output", str(out)]
    args += ["--epochs", "3", "--max-length", "48", "--batch-size", "16", "--report-to", "none"]
    assert main([*args, "--lr", "2e-3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["no_relation"] == "no_relation"
    assert metrics["f1"] > 0.6, metrics  # the trivial predictor scores 0
    answer = tmp_path / "ask.jsonl"
    ask = {"text": "Hana Sato was born in Oslo.", "head": [0, 9], "tail": [22, 26]}
    answer.write_text(json.dumps(ask) + "\n", encoding="utf-8")
    assert main(["predict", str(out / "adapter"), "--file", str(answer)]) == 0
