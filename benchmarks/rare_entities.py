"""A CoNLL-2003 variant whose least frequent entity types are kept rare, as user files.

Skewed NER data (a few types with a handful of mentions) is what users bring and what the
defaults were not chosen on. This builds it from the built-in set: the two entity types
with the fewest mentions in train are found from the data; every sentence that mentions
one of them is kept with probability ``keep`` (seeded); then ``train_size`` training and
``eval_size`` validation sentences are drawn from what is left. Validation is thinned the
same way, so the rare types stay rare where early stopping looks too. The files are
CoNLL (``token tag`` lines), so a run trains on them through the user-file path.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from adapterkit.data import load_data


def mentioned_types(example: dict) -> set[str]:
    """Entity types that begin in one sentence (IOB2: a ``B-`` tag)."""
    return {tag[2:] for tag in example["tags"] if tag.startswith("B-")}


def rarest_types(examples: list[dict], how_many: int = 2) -> list[str]:
    """The ``how_many`` entity types with the fewest mentions."""
    counts = Counter(tag[2:] for ex in examples for tag in ex["tags"] if tag.startswith("B-"))
    return [name for name, _ in sorted(counts.items(), key=lambda kv: (kv[1], kv[0]))][:how_many]


def _write_conll(path: Path, examples: list[dict]) -> None:
    lines = []
    for ex in examples:
        lines += [f"{token} {tag}" for token, tag in zip(ex["tokens"], ex["tags"], strict=True)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def write_rare_variant(
    out: Path, seed: int, train_size: int = 1000, eval_size: int = 500, keep: float = 0.1
) -> tuple[Path, str]:
    """Write ``out/train.conll`` and ``out/validation.conll`` (once); return the folder and a
    line saying which types were made rare and their share of the training mentions."""
    splits = load_data("conll2003")
    rare = set(rarest_types(splits.train))
    rng = random.Random(seed)

    def thinned(examples: list[dict]) -> list[dict]:
        return [ex for ex in examples if not mentioned_types(ex) & rare or rng.random() < keep]

    train = rng.sample(thinned(splits.train), train_size)
    validation = rng.sample(thinned(splits.validation or []), eval_size)
    mentions = Counter(t for ex in train for t in ex["tags"] if t.startswith("B-"))
    share = sum(mentions[f"B-{name}"] for name in rare) / max(1, sum(mentions.values()))
    summary = (
        f"rare types {', '.join(sorted(rare))}: {100 * share:.1f} % of the "
        f"{sum(mentions.values())} training mentions"
    )
    if not (out / "validation.conll").exists():
        out.mkdir(parents=True, exist_ok=True)
        _write_conll(out / "train.conll.tmp", train)
        _write_conll(out / "validation.conll.tmp", validation)
        (out / "train.conll.tmp").replace(out / "train.conll")
        (out / "validation.conll.tmp").replace(out / "validation.conll")
    return out, summary
