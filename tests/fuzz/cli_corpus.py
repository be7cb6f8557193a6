"""A generated corpus of bad command lines, by class of defect.

Each case builds its arguments (and whatever files it needs) in a fresh folder. Every
one of them must end in exit code 2 with one line on stderr: nothing in this corpus is
valid input.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fuzz.bad_flag_values import BAD_METHOD_FLAGS, BAD_TRAIN_FLAGS
from tests.fuzz.bundle_mutations import (
    BACKTRACKING,
    BUNDLE_MUTATIONS,
    OVERFLOW,
    config_not_json,
    config_of_a_list,
    missing_bundle,
    mutated,
    set_field,
    weights_missing,
)

Build = Callable[[Any, Path], list[str]]  # (Env, a fresh folder) -> argv


@dataclass(frozen=True)
class Case:
    """One bad command line."""

    klass: str
    """The class of defect (the closing note counts cases per class)."""
    name: str
    build: Build

    @property
    def id(self) -> str:
        return f"{self.klass}:{self.name}"


def train(
    env: Any, tmp: Path, *extra: str, data: Path | None = None, output: str | None = None
) -> list[str]:
    """``adapterkit train`` on the tiny model and the good CSV, one epoch, plus ``extra``."""
    return [
        *("train", "--model", str(env.model), "--train", str(data or env.train)),
        *("--output", output or str(tmp / "run"), "--epochs", "1", "--report-to", "none"),
        *extra,
    ]


CASES: list[Case] = []


def _write(path: Path, content: bytes | str) -> str:
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return str(path)


def case(klass: str, name: str, build: Build) -> None:
    CASES.append(Case(klass, name, build))


# --- Options out of range or of the wrong type, as flags ------------------------------------
for flag, values in BAD_TRAIN_FLAGS.items():
    for value in values:
        case("option", f"{flag}={value[:12]}", lambda e, t, f=flag, v=value: train(e, t, f, v))
for method, pairs in BAD_METHOD_FLAGS.items():
    for flag, value in pairs:
        case(
            "option",
            f"{method}{flag}={value}",
            lambda e, t, m=method, f=flag, v=value: train(e, t, "--method", m, f, v),
        )
case("option", "lists-of-different-sizes", lambda e, t: train(e, t, "--seeds", "0", "0"))

# --- Target patterns: pathological or matching nothing ----------------------------------------
for pattern in [BACKTRACKING, "(.*.*)*Z", "(a+)+$", "[", "no_such_layer", "(?P<x", "x" * 2000]:
    case(
        "target pattern",
        pattern[:20],
        lambda e, t, p=pattern: train(e, t, "--method", "lora", "--target-modules", p),
    )


# --- Output folders that cannot be written ------------------------------------------------------
case("output", "output-is-a-file", lambda e, t: train(e, t, output=_write(t / "file", "x")))
case(
    "output",
    "output-under-a-file",
    lambda e, t: train(e, t, output=_write(t / "file", "x") + "/run"),
)
case("output", "output-unwritable", lambda e, t: train(e, t, output="/proc/adapterkit-run"))


# --- YAML configs with wrong types and shapes ---------------------------------------------------
def _config(text: str) -> Build:
    def build(env: Any, tmp: Path) -> list[str]:
        path = tmp / "config.yaml"
        path.write_text(text)
        # No --epochs or --report-to here: flags would win over the file's values.
        return [*train(env, tmp)[:-4], "--config", str(path)]

    return build


def alias_bomb(levels: int, width: int) -> str:
    """YAML whose aliases expand to ``width ** levels`` mappings ("billion laughs")."""
    lines = ["l0: &l0 {x: 1}"]
    for level in range(1, levels + 1):
        refs = ", ".join(f"k{j}: *l{level - 1}" for j in range(width))
        lines.append(f"l{level}: &l{level} {{{refs}}}")
    return "\n".join(lines) + "\n"


BAD_YAML = {
    "epochs-word": "epochs: three\n",
    "epochs-float": "epochs: 1.5\n",
    "epochs-bool": "epochs: true\n",
    "batch-map": "batch_size: {a: 1}\n",
    "lr-word": "lr: fast\n",
    "lr-nan": "lr: .nan\n",
    "lr-list-empty": "lr: []\n",
    "max-length-neg": "max_length: -1\n",
    "max-length-list": "max_length: [a]\n",
    "weight-decay-bool": "weight_decay: true\n",
    "targets-int": "method: lora\ntarget_modules: 5\n",
    "targets-map": "method: lora\ntarget_modules: {a: b}\n",
    "layers-word": "method: lora\nlayers: first\n",
    "layers-words": "method: lora\nlayers: [a, b]\n",
    "report-int": "report_to: 7\n",
    "method-int": "method: 5\n",
    "method-list": "method: [lora, 3]\n",
    "data-int": "data: 5\n",
    "seed-float": "seed: 1.5\n",
    "patience-word": "patience: 2x\n",
    "grad-acc-zero": "grad_accumulation: 0\n",
    "precision-int": "precision: 16\n",
    "save-steps-neg": "save_steps: -1\n",
    "unknown-key": "foo: 1\n",
    "jobs-int": "jobs: 5\n",
    "jobs-empty": "jobs: []\n",
    "jobs-number": "jobs: [5]\n",
    "jobs-duplicate": "jobs:\n  - {name: a}\n  - {name: a}\n",
    "jobs-unknown-key": "jobs:\n  - {name: a, bogus: 1}\n",
    "jobs-bad-name": "jobs:\n  - {name: ../x}\n",
    "jobs-bad-value": "jobs:\n  - {name: a, epochs: -1}\n",
    "not-a-mapping": "- a\n- b\n",
    "scalar": "42\n",
    "syntax": "epochs: [1,\n",
    "tab-indent": "train:\n\tepochs: 1\n",
    "alias-bomb": alias_bomb(levels=9, width=9),
}
for name, text in BAD_YAML.items():
    case("yaml", name, _config(text))
case("yaml", "binary", lambda e, t: train(e, t, "--config", _write(t / "c.yaml", b"\xff\xfe\x00")))
case("yaml", "missing", lambda e, t: train(e, t, "--config", str(t / "nope.yaml")))
case("yaml", "directory", lambda e, t: train(e, t, "--config", str(t)))


# --- Data files ----------------------------------------------------------------------------------
def _data(name: str, content: bytes | str, *extra: str) -> Build:
    return lambda env, tmp: train(env, tmp, *extra, data=Path(_write(tmp / name, content)))


SQUAD_OK = {"title": "t", "paragraphs": [{"context": "john went to paris", "qas": []}]}
BAD_DATA: dict[str, tuple[str, bytes | str, tuple[str, ...]]] = {
    "empty": ("t.csv", "", ()),
    "header-only": ("t.csv", "text,label\n", ()),
    "binary": ("t.csv", bytes(range(256)) * 4, ()),
    "non-utf8": ("t.csv", b"text,label\ngood \xff movie,pos\nbad,neg\n", ()),
    "no-text-column": ("t.csv", "sentence,label\ngood,pos\nbad,neg\n", ()),
    "no-label-column": ("t.csv", "text,tag\ngood,pos\nbad,neg\n", ()),
    "one-row": ("t.csv", "text,label\ngood movie,pos\n", ()),
    "one-class": ("t.csv", "text,label\n" + "good movie,pos\nfun actor,pos\n" * 5, ()),
    "empty-texts": ("t.csv", "text,label\n" + ",pos\n,neg\n" * 5, ()),
    # An id column taken for labels: nothing can be held out (was "validation split is empty").
    "labels-all-distinct": (
        "t.csv",
        "text,label\n" + "".join(f"good movie,c{i}\n" for i in range(40)),
        (),
    ),
    "jsonl-not-object": ("t.jsonl", '{"text": "good", "label": "pos"}\n[1, 2]\n', ()),
    "jsonl-number": ("t.jsonl", "5\n6\n", ()),
    "jsonl-bad-json": ("t.jsonl", '{"text": "good", "label": \n', ()),
    "jsonl-text-number": ("t.jsonl", '{"text": 5, "label": "pos"}\n' * 4, ()),
    "jsonl-text-pair-number": (
        "t.jsonl",
        '{"text": "good", "text_pair": 7, "label": "pos"}\n'
        '{"text": "bad", "text_pair": 8, "label": "neg"}\n' * 3,
        ("--text-pair-column", "text_pair"),
    ),
    "jsonl-label-null": ("t.jsonl", '{"text": "good", "label": null}\n' * 4, ()),
    "jsonl-label-object": ("t.jsonl", '{"text": "good", "label": {"a": 1}}\n' * 4, ()),
    "json-list-of-numbers": ("t.json", "[1, 2, 3]", ()),
    "squad-data-numbers": ("t.json", json.dumps({"data": [1, 2]}), ()),
    "squad-data-string": ("t.json", json.dumps({"data": "abc"}), ()),
    "squad-answer-start-string": (
        "t.json",
        json.dumps(
            {
                "data": [
                    {
                        "title": "t",
                        "paragraphs": [
                            {
                                "context": "john went to paris",
                                "qas": [
                                    {
                                        "id": "1",
                                        "question": "where?",
                                        "answers": [{"text": "paris", "answer_start": "x"}],
                                    }
                                ],
                            }
                        ],
                    }
                ]
            }
        ),
        (),
    ),
    "squad-no-questions": ("t.json", json.dumps({"data": [SQUAD_OK]}), ()),
    "squad-context-number": (
        "t.json",
        json.dumps({"data": [{"title": "t", "paragraphs": [{"context": 5, "qas": []}]}]}),
        (),
    ),
    "conll-malformed": ("t.conll", "good B-X\nmovie O\n\nbadline\nplot O\n", ()),
    "conll-docstart-only": ("t.conll", "-DOCSTART- -X- O O\n\n", ()),
    "unknown-extension": ("t.parquet", "PAR1", ()),
    "csv-one-column": ("t.csv", "text\ngood\nbad\n", ()),
    "task-mismatch": (
        "t.csv",
        "text,label\ngood,pos\nbad,neg\n" * 3,
        ("--task", "token-classification"),
    ),
    "causal-lm-on-encoder": ("t.csv", "text\ngood movie\nbad plot\n" * 3, ("--task", "causal-lm")),
}
for name, (file_name, content, extra) in BAD_DATA.items():
    case("data", name, _data(file_name, content, *extra))
case("data", "missing", lambda e, t: train(e, t, data=t / "nope.csv"))
case("data", "directory-empty", lambda e, t: train(e, t, data=t))
case("data", "dev-zero", lambda e, t: train(e, t, data=Path("/dev/zero")))


def _fifo(env: Any, tmp: Path) -> list[str]:
    os.mkfifo(tmp / "pipe.csv")
    return train(env, tmp, data=tmp / "pipe.csv")


case("data", "fifo", _fifo)


def _unseen_validation_label(env: Any, tmp: Path) -> list[str]:
    _write(tmp / "v.csv", "text,label\ngood,meh\n")
    return train(env, tmp, "--validation", str(tmp / "v.csv"))


case("data", "unseen-validation-label", _unseen_validation_label)


# --- Base models that are not there or not usable -------------------------------------------------
def _model(make: Callable[[Path], str]) -> Build:
    def build(env: Any, tmp: Path) -> list[str]:
        argv = train(env, tmp)
        argv[argv.index("--model") + 1] = make(tmp)
        return argv

    return build


case("model", "missing-dir", _model(lambda t: str(t / "nope")))
case("model", "a-file", _model(lambda t: _write(t / "m.bin", "x")))
case("model", "dir-without-config", _model(lambda t: str(t)))
case("model", "garbage-config", _model(lambda t: (_write(t / "config.json", "{x"), str(t))[1]))
case(
    "model",
    "config-of-nothing",
    _model(lambda t: (_write(t / "config.json", '{"model_type": "nope"}'), str(t))[1]),
)


def _pickled(env: Any, tmp: Path) -> list[str]:
    """A model folder whose weights are a pickle (pytorch_model.bin), never loaded."""
    folder = tmp / "pickled"
    folder.mkdir()
    for item in env.model.iterdir():
        if item.suffix != ".safetensors":
            shutil.copy(item, folder / item.name)
    _write(folder / "pytorch_model.bin", b"not a pickle either")
    argv = train(env, tmp)
    argv[argv.index("--model") + 1] = str(folder)
    return argv


case("model", "pickled-weights", _pickled)
case("model", "hub-id-offline", _model(lambda t: "no-such-org/no-such-model"))
case("model", "empty", _model(lambda t: ""))
case("model", "generate-on-encoder", lambda e, t: ["generate", "--model", str(e.model), "hello"])


# --- Bundles with a bad field, for info, predict and evaluate -----------------------------------
BUILD_TIME = {"config-width-huge", "config-targets-regex"}


def _bundle_case(command: str, make: Callable[[Any, Path], Path]) -> Build:
    def build(env: Any, tmp: Path) -> list[str]:
        folder = str(make(env, tmp))
        if command == "info":
            return ["info", folder]
        if command == "predict":
            return ["predict", folder, "good movie", "--model", str(env.model)]
        return ["evaluate", folder, "--data", str(env.train), "--split", "train"]

    return build


for name, mutate in BUNDLE_MUTATIONS.items():
    # What does not fit a base (tensor shapes, widths, layer patterns) is found when the
    # adapter is built, which `info` does not do: it checks fields and the file's checksum.
    needs_base = name in BUILD_TIME or (name.startswith("weights-") and name != "weights-truncated")
    for command in ("predict", "evaluate") if needs_base else ("info", "predict", "evaluate"):
        case(f"bundle ({command})", name, _bundle_case(command, mutated(mutate)))


for command in ("predict", "evaluate"):
    case(f"bundle ({command})", "weights-overflow", _bundle_case(command, mutated(OVERFLOW)))


for name, make in {
    "no-bundle": missing_bundle,
    "config-not-json": config_not_json,
    "config-json-list": config_of_a_list,
    "weights-missing": weights_missing,
}.items():
    for command in ("info", "predict", "evaluate"):
        case(f"bundle ({command})", name, _bundle_case(command, make))
case(
    "bundle (predict)",
    "base-model-path-elsewhere",
    lambda e, t: [
        "predict",
        str(mutated(set_field("base_model.name_or_path", "/nonexistent"))(e, t)),
        "x",
    ],
)


# --- Evaluation and decoding flags ----------------------------------------------------------------
def _evaluate(*extra: str) -> Build:
    return lambda env, tmp: ["evaluate", str(env.bundle), "--data", str(env.train), *extra]


for flag, value in [
    ("--max-eval-samples", "0"),
    ("--max-eval-samples", "-2"),
    ("--shots", "-1"),
    ("--split", "dev"),
    ("--max-new-tokens", "0"),
    ("--temperature", "-1"),
    ("--temperature", "nan"),
    ("--top-p", "0"),
    ("--top-p", "1.5"),
    ("--batch-size", "0"),
    ("--max-length", "0"),
    ("--output", "/proc/adapterkit-eval"),
]:
    case("evaluate option", f"{flag}={value[:12]}", _evaluate(flag, value))
for flag, value in [("--max-new-tokens", "-3"), ("--top-p", "inf"), ("--seed", "-1")]:
    case(
        "evaluate option",
        f"generate{flag}={value}",
        lambda e, t, f=flag, v=value: ["generate", "--model", str(e.model), "hi", f, v],
    )


# --- Search requests --------------------------------------------------------------------------
def _search(*extra: str, space: str | None = None) -> Build:
    def build(env: Any, tmp: Path) -> list[str]:
        argv = ["search", *train(env, tmp)[1:], *extra]
        if space is not None:
            argv += ["--space", _write(tmp / "space.yaml", space)]
        return argv

    return build


case("search", "trials-zero", _search("--trials", "0"))
case("search", "trials-negative", _search("--trials", "-1"))
case("search", "parallel-zero", _search("--parallel", "0"))
case("search", "prune-from-zero", _search("--prune-from", "0"))
case(
    "search",
    "config-trials-text",
    lambda e, t: [*_search()(e, t), "--config", _write(t / "search.yaml", "trials: lots\n")],
)
case(
    "search",
    "config-parallel-bool",
    lambda e, t: [*_search()(e, t), "--config", _write(t / "search.yaml", "parallel: true\n")],
)
BAD_SPACES = {
    "unknown-option": "bogus: {type: uniform, low: 0, high: 1}\n",
    "empty-range": "lr: {type: uniform, low: 0.1, high: 0.1}\n",
    "log-over-zero": "lr: {type: loguniform, low: 0, high: 0.1}\n",
    "low-above-high": "lr: {type: uniform, low: 1, high: 0.1}\n",
    "no-type": "lr: {low: 0, high: 1}\n",
    "bogus-type": "lr: {type: gaussian, low: 0, high: 1}\n",
    "categorical-empty": "method: {type: categorical, choices: []}\n",
    "categorical-bogus-method": "method: {type: categorical, choices: [bogus]}\n",
    "not-a-mapping": "- lr\n",
    "value-not-a-mapping": "lr: 5\n",
    "rank-from-zero": "method: {type: categorical, choices: [lora]}\nrank: {type: int, low: 0, high: 8}\n",
    "dropout-above-one": "adapter_dropout: {type: uniform, low: 0.0, high: 1.5}\n",
    "lr-choice-negative": "lr: {type: categorical, choices: [0.001, -1]}\n",
    "epochs-choice-zero": "epochs: {type: categorical, choices: [1, 0]}\n",
    "reduction-choice-word": "reduction_factor: {type: categorical, choices: [8, big]}\n",
}
for name, text in BAD_SPACES.items():
    case("search", f"space-{name}", _search(space=text))


# --- Serve settings (the server must never start with these) ----------------------------------
def _serve(*extra: str, adapters: str | None = None) -> Build:
    def build(env: Any, tmp: Path) -> list[str]:
        folder = adapters if adapters is not None else str(env.bundle.parent)
        return ["serve", "--model", str(env.model), "--adapters", folder, *extra]

    return build


for flag, value in [
    ("--port", "99999"),
    ("--port", "-1"),
    ("--threads", "0"),
    ("--threads", "-2"),
    ("--max-batch", "0"),
    ("--max-wait-ms", "-1"),
    ("--max-wait-ms", "nan"),
    ("--max-chars", "0"),
    ("--max-inputs", "-5"),
    ("--max-new-tokens", "0"),
    ("--device", "cuda"),
    ("--device", "bogus"),
    ("--kind", "bogus"),
    ("--model", "/nonexistent"),
]:
    case("serve option", f"{flag}={value}", _serve(flag, value))
case("serve option", "adapters-missing", _serve(adapters="/nonexistent"))
case("serve option", "adapters-a-file", lambda e, t: _serve(adapters=_write(t / "f", "x"))(e, t))
