"""Bad command lines of the commands that make bundles from bundles (``train --init-from``,
``--fuse``, ``--stack-on``, ``merge``, ``compose``), of the no-answer threshold, and of
relation-extraction data. Same rules as :mod:`tests.fuzz.cli_corpus`: each ends in exit
code 2 with one line, and leaves nothing that looks finished."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.fuzz.cli_corpus import Build, Case, train

LIFECYCLE_CASES: list[Case] = []


def case(klass: str, name: str, build: Build) -> None:
    LIFECYCLE_CASES.append(Case(klass, name, build))


def _copy(env: Any, tmp: Path) -> str:
    """A copy of the good bundle under a ``bundle`` folder (inputs are not run outputs)."""
    target = tmp / "bundle" / "copy"
    shutil.copytree(env.bundle, target)
    return str(target)


# --- train --init-from, replay, anchor, old data ----------------------------------------------
def _continue(*extra: str) -> Build:
    return lambda env, tmp: train(env, tmp, "--init-from", str(env.bundle), *extra)


for name, extra in {
    "another-method": ("--method", "lora"),
    "another-option": ("--reduction-factor", "4"),
    "stray-option": ("--rank", "4"),
    "into-full": ("--method", "full"),
    "replay-ratio-zero": ("--replay", "x.csv", "--replay-ratio", "0"),
    "replay-ratio-one": ("--replay", "x.csv", "--replay-ratio", "1"),
    "replay-missing": ("--replay", "/nonexistent.csv"),
    "old-data-missing": ("--old-data", "/nonexistent.csv"),
    "anchor-negative": ("--anchor-weight", "-1"),
    "anchor-nan": ("--anchor-weight", "nan"),
    "with-fuse": ("--fuse", "a", "b"),
}.items():
    case("init-from", name, _continue(*extra))
case("init-from", "missing-bundle", lambda e, t: train(e, t, "--init-from", "/nonexistent"))
case("init-from", "not-a-bundle", lambda e, t: train(e, t, "--init-from", str(e.root)))
case(
    "init-from",
    "output-over-parent",
    lambda e, t: train(e, t, "--init-from", (p := _copy(e, t)), output=str(Path(p).parent)),
)
for flag, value in [("--replay", "x.csv"), ("--anchor-weight", "1"), ("--old-data", "x.csv")]:
    case("init-from", f"{flag}-alone", lambda e, t, f=flag, v=value: train(e, t, f, v))
case("init-from", "ratio-alone", lambda e, t: train(e, t, "--replay-ratio", "0.3"))


# --- train --fuse / --stack-on ------------------------------------------------------------------
case("compose (train)", "fuse-one", lambda e, t: train(e, t, "--fuse", str(e.bundle)))
case("compose (train)", "fuse-missing", lambda e, t: train(e, t, "--fuse", str(e.bundle), "/no"))
case(
    "compose (train)",
    "fuse-with-lora",
    lambda e, t: train(e, t, "--fuse", str(e.bundle), _copy(e, t), "--method", "lora"),
)
case(
    "compose (train)",
    "stack-on-fusion",
    lambda e, t: train(e, t, "--stack-on", str(e.bundle), "--method", "fusion"),
)
case("compose (train)", "method-fusion-alone", lambda e, t: train(e, t, "--method", "fusion"))


# --- merge and compose ------------------------------------------------------------------------
def _merge(*extra: str, count: int = 2) -> Build:
    def build(env: Any, tmp: Path) -> list[str]:
        return ["merge", *[str(env.bundle)] * count, "--out", str(tmp / "merged"), *extra]

    return build


for name, extra in {
    "weights-count": ("--weights", "1"),
    "weights-nan": ("--weights", "nan", "1"),
    "weights-zero-sum": ("--weights", "1", "-1"),
    "density-zero": ("--combine", "ties", "--density", "0"),
    "density-above-one": ("--combine", "dare", "--density", "1.5"),
    "ties-on-bottleneck": ("--combine", "ties"),
    "rank-zero": ("--rank", "0"),
    "head-from-out-of-range": ("--head-from", "5"),
    "combine-bogus": ("--combine", "mean"),
    "name-bad": ("--name", "a/b"),
}.items():
    case("merge", name, _merge(*extra))
case("merge", "one-bundle", _merge(count=1))
case("merge", "missing-bundle", lambda e, t: ["merge", str(e.bundle), "/no", "--out", str(t)])
case(
    "merge",
    "out-is-input",
    lambda e, t: ["merge", (p := _copy(e, t)), str(e.bundle), "--out", p],
)


def _compose(*extra: str, count: int = 2) -> Build:
    def build(env: Any, tmp: Path) -> list[str]:
        return ["compose", *[str(env.bundle)] * count, "--out", str(tmp / "composed"), *extra]

    return build


for name, extra in {
    "mode-bogus": ("--mode", "mix", "--head-from", "1"),
    "no-head-from": ("--mode", "average"),
    "head-from-zero": ("--mode", "average", "--head-from", "0"),
    "weights-on-stack": ("--mode", "stack", "--head-from", "1", "--weights", "1", "1"),
    "weights-count": ("--mode", "average", "--head-from", "1", "--weights", "1"),
}.items():
    case("compose", name, _compose(*extra))
case("compose", "one-part", _compose("--mode", "average", "--head-from", "1", count=1))


# --- The no-answer threshold --------------------------------------------------------------------
for value in ("-0.5", "1.01", "nan", "half"):
    case(
        "no-answer threshold",
        f"value={value}",
        lambda e, t, v=value: ["predict", str(e.bundle), "x", "--no-answer-threshold", v],
    )
case(
    "no-answer threshold",
    "classification-bundle",
    lambda e, t: ["predict", str(e.bundle), "good movie", "--no-answer-threshold", "0.5"],
)


# --- Relation-extraction data ---------------------------------------------------------------------
GOOD_RELATION = {"text": "john visited paris", "head": [0, 4], "tail": [13, 18], "relation": "v"}
BAD_RELATIONS = {
    "span-outside-text": {"tail": [13, 99]},
    "span-empty": {"head": [3, 3]},
    "span-reversed": {"head": [4, 0]},
    "spans-overlap": {"tail": [2, 8]},
    "span-not-numbers": {"head": ["a", "b"]},
    "no-relation-field": {"relation": None},
}


def _relations(change: dict[str, Any]) -> Build:
    def build(env: Any, tmp: Path) -> list[str]:
        other = {**GOOD_RELATION, "relation": "w", "head": [13, 18], "tail": [0, 4]}
        bad = {k: v for k, v in {**GOOD_RELATION, **change}.items() if v is not None}
        rows = [GOOD_RELATION, other] * 4 + [bad]
        data = tmp / "relations.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return train(env, tmp, data=data)

    return build


for name, change in BAD_RELATIONS.items():
    case("relation data", name, _relations(change))
