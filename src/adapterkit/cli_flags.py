"""Flag definitions of the ``adapterkit`` subcommands, and YAML config merging.

Kept apart from ``cli.py`` so that file holds the commands themselves.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from adapterkit.errors import AdapterkitError

# Flags that become adapter-method options when given.
METHOD_FLAGS = {
    "reduction_factor": float,
    "bottleneck_size": int,
    "non_linearity": str,
    "adapter_dropout": float,
    "adapter_scaling": float,
    "rank": int,
    "alpha": float,
    "use_rslora": bool,
}
METHOD_FIELD = {"rank": "r", "adapter_dropout": "dropout", "adapter_scaling": "scaling"}


def add_train_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and data")
    g.add_argument("--config", help="YAML file of option: value pairs (flags override it)")
    g.add_argument(
        "--model",
        default="minilm",
        help="built-in alias (minilm, smollm2), local path or hub id (default: minilm)",
    )
    g.add_argument(
        "--data",
        help="built-in data set (trec, conll2003, movie-sentiment, aclsum, tatoeba-en-es), a folder or one file",
    )
    g.add_argument("--train", dest="train_file", help="training file (instead of --data)")
    g.add_argument("--validation", dest="validation_file", help="validation file")
    g.add_argument("--test", dest="test_file", help="test file")
    g.add_argument("--task", help="task name; detected from the data when omitted")
    g.add_argument(
        "--text-column", default="text", help="text field in CSV/TSV/JSONL (default: text)"
    )
    g.add_argument("--text-pair-column", help="second-text field for sentence pairs")
    g.add_argument("--label-column", default="label", help="label field (default: label)")
    g.add_argument(
        "--max-length", type=int, default=128, help="token cap per example (default: 128)"
    )
    g.add_argument(
        "--max-train-samples", type=int, help="train on a seeded sample of this many examples"
    )
    g.add_argument(
        "--max-eval-samples", type=int, help="evaluate on a seeded sample of this many per split"
    )
    g.add_argument("--output", default="runs/latest", help="run directory (default: runs/latest)")
    g.add_argument("--name", dest="adapter_name", help="adapter name (default: from the data set)")
    g.add_argument(
        "--resume", action="store_true", help="continue from the run directory's last checkpoint"
    )
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (default: auto)")
    g.add_argument(
        "--packing", action="store_true", help="causal-lm: pack examples into max-length rows"
    )
    m = p.add_argument_group("adapter method")
    m.add_argument(
        "--method",
        default="pfeiffer",
        help="houlsby, pfeiffer, parallel, lora, head (frozen base) or full (default: pfeiffer)",
    )
    m.add_argument(
        "--reduction-factor",
        type=float,
        help="bottleneck: hidden size / bottleneck width (default 16)",
    )
    m.add_argument("--bottleneck-size", type=int, help="bottleneck: explicit width")
    m.add_argument("--non-linearity", help="bottleneck: relu, gelu, swish, tanh (default relu)")
    m.add_argument("--adapter-dropout", type=float, help="dropout inside the adapter (default 0)")
    m.add_argument(
        "--adapter-scaling",
        type=float,
        help="bottleneck: multiplier of the adapter's output (default 1; He et al. 2022 use 4 "
        "for parallel adapters)",
    )
    m.add_argument("--rank", type=int, help="LoRA rank r (default 8)")
    m.add_argument("--alpha", type=float, help="LoRA alpha (default 16)")
    m.add_argument(
        "--use-rslora", action="store_true", default=None, help="LoRA: alpha/sqrt(r) scaling"
    )
    m.add_argument("--target-modules", nargs="+", help="layer names/suffixes/regexes to adapt")
    m.add_argument("--layers", type=int, nargs="+", help="adapt only these layer indices")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, help="passes over the training data (default 5)")
    t.add_argument("--batch-size", type=int, help="examples per step (default 32)")
    t.add_argument(
        "--eval-batch-size", type=int, help="examples per evaluation forward (default 64)"
    )
    t.add_argument(
        "--lr",
        type=float,
        help="peak learning rate (default: per method, 3e-3 bottleneck adapters, 1e-3 LoRA and head, 5e-5 full)",
    )
    t.add_argument("--optimizer", choices=["adamw", "sgd"], help="default adamw")
    t.add_argument("--weight-decay", type=float, help="default 0.01")
    t.add_argument("--scheduler", choices=["linear", "cosine", "constant"], help="default linear")
    t.add_argument("--warmup-ratio", type=float, help="default 0.06")
    t.add_argument("--grad-accumulation", type=int, help="batches per optimizer step (default 1)")
    t.add_argument("--max-grad-norm", type=float, help="gradient clipping, 0 = off (default 1.0)")
    t.add_argument("--patience", type=int, help="early stopping patience in epochs (default 2)")
    t.add_argument("--seed", type=int, help="default 0")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], help="default auto")
    t.add_argument(
        "--save-steps", type=int, help="also checkpoint every N steps (default: each epoch)"
    )
    t.add_argument(
        "--attention-dropout",
        type=float,
        help="attention-probability dropout of the base while training (default: the model's "
        "own); 0 is faster and uses less memory on CPU, see docs/benchmarks.md",
    )
    t.add_argument(
        "--activation-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="recompute each block in the backward pass: much less memory, ~1 more forward of "
        "compute (default off)",
    )
    t.add_argument(
        "--group-by-length",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="batch training examples of similar length together: less padding, faster, but can cost accuracy (default off)",
    )


TRAIN_FIELDS = (
    "epochs",
    "batch_size",
    "eval_batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "scheduler",
    "warmup_ratio",
    "grad_accumulation",
    "max_grad_norm",
    "patience",
    "seed",
    "precision",
    "save_steps",
    "group_by_length",
    "attention_dropout",
    "activation_checkpointing",
)
RUN_FIELDS = (
    "model",
    "data",
    "train_file",
    "validation_file",
    "test_file",
    "task",
    "text_column",
    "text_pair_column",
    "label_column",
    "max_length",
    "max_train_samples",
    "max_eval_samples",
    "output",
    "adapter_name",
    "resume",
    "device",
    "method",
    "packing",
)


def merged_values(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Flags over YAML config over defaults: a flag wins only when given on the command line."""
    values = vars(args).copy()
    if not args.config:
        return values
    path = Path(args.config)
    if not path.is_file():
        raise AdapterkitError(f"{path}: config file not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise AdapterkitError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise AdapterkitError(f"{path}: expected 'option: value' pairs")
    flat: dict[str, Any] = {}
    for key, value in loaded.items():  # accept nested sections (run:/train:/adapter:) and dashes
        if isinstance(value, dict):
            flat.update({k.replace("-", "_"): v for k, v in value.items()})
        else:
            flat[key.replace("-", "_")] = value
    unknown = sorted(set(flat) - set(values) - {"r", "dropout"})
    if unknown:
        raise AdapterkitError(f"{path}: unknown option(s) {', '.join(unknown)}")
    defaults = vars(parser.parse_args([args.command]))
    for key, value in flat.items():
        key = {"r": "rank", "dropout": "adapter_dropout"}.get(key, key)
        if values.get(key) == defaults.get(key):  # not given as a flag
            values[key] = value
    return values


def add_decode_flags(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("decoding")
    d.add_argument("--max-new-tokens", type=int, help="most tokens to generate (default 128)")
    d.add_argument("--temperature", type=float, help="0 = greedy (default); > 0 samples")
    d.add_argument("--top-p", type=float, help="nucleus sampling threshold (default 1.0)")
    d.add_argument("--stop", action="append", help="stop string (repeatable)")
    d.add_argument("--seed", type=int, help="sampling seed (default 0)")
    d.add_argument("--batch-size", type=int, help="prompts per generate call (default 16)")
    d.add_argument("--max-length", type=int, help="prompt token cap (default: the model's)")


def add_serve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="minilm", help="base model: alias, local path or hub id")
    p.add_argument("--adapters", required=True, help="folder of bundle folders to serve")
    p.add_argument(
        "--kind",
        default="encoder",
        choices=["encoder", "causal-lm"],
        help="encoder (task heads) or causal-lm (generation)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--max-batch", type=int, default=32, help="most rows per model call")
    p.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="how long a batch waits to fill up"
    )
    p.add_argument("--max-inputs", type=int, default=64, help="most inputs per request")
    p.add_argument("--max-chars", type=int, default=10_000, help="most characters per input")
    p.add_argument(
        "--max-new-tokens", type=int, default=512, help="largest generation length allowed"
    )
    p.add_argument(
        "--naive",
        action="store_true",
        help="baseline: one request at a time, no batching (for benchmarks)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, help="torch threads (default: $ADAPTERKIT_THREADS)")
    p.add_argument("--access-log", action="store_true", help="log every request")
