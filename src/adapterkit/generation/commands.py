"""What ``adapterkit generate``, ``predict`` (on a generation bundle) and ``evaluate
--method none`` run: load a base with or without a bundle, then generate or evaluate."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from adapterkit.errors import AdapterkitError
from adapterkit.generation.decode import (
    DecodeOptions,
    StopStreamer,
    context_room,
    generate_texts,
)
from adapterkit.generation.evaluate import evaluate_generation, pick_shots
from adapterkit.model import AdaptedModel
from adapterkit.tasks import GENERATION_TASKS, make_task
from adapterkit.tasks.causal_lm import CausalLMTask


def bundle_task_type(bundle: str | Path) -> str | None:
    """The task a bundle was trained for (None when it records none)."""
    from adapterkit.bundle import read_bundle_config

    return (read_bundle_config(bundle).get("task") or {}).get("type")


def load_generation_model(
    model_name: str | None, bundle: str | Path | None = None, max_length: int | None = None
) -> tuple[AdaptedModel, str | None, CausalLMTask]:
    """Base (+ bundle) and the task that encodes prompts for it.

    Raises:
        AdapterkitError: One line when the bundle is not a generation adapter, was made
            for another base, or no model is named.
    """
    from adapterkit.models import base_kind, context_length, load_base, load_tokenizer
    from adapterkit.predict import base_name_of, base_quantization_of

    info: dict[str, Any] = {}
    if bundle is not None:
        from adapterkit.bundle import read_bundle_config

        info = read_bundle_config(bundle).get("task") or {}
        if info.get("type") not in GENERATION_TASKS:
            raise AdapterkitError(
                f"{bundle}: a {info.get('type') or 'task-less'} adapter, not a text-generation "
                "one; use `adapterkit predict` for it"
            )
        model_name = model_name or base_name_of(bundle)
    if not model_name:
        raise AdapterkitError("name the base model with --model (e.g. --model smollm2)")
    kind = base_kind(model_name, "causal-lm")
    tokenizer = load_tokenizer(model_name)
    quantize = base_quantization_of(bundle) if bundle is not None else None
    model = AdaptedModel(load_base(model_name, kind, quantize=quantize), name_or_path=model_name)
    name = model.load_adapter(bundle) if bundle is not None else None
    length = max_length or info.get("max_length") or context_length(model.base, tokenizer)
    task = make_task("seq2seq" if kind == "seq2seq" else "causal-lm", tokenizer, None, int(length))
    return model, name, task  # type: ignore[return-value]


def decode_options(values: dict[str, Any]) -> DecodeOptions:
    """DecodeOptions from CLI values (absent ones keep their defaults)."""
    keys = ("max_new_tokens", "temperature", "top_p", "batch_size", "seed")
    given = {k: values[k] for k in keys if values.get(k) is not None}
    return DecodeOptions(**given, stop=tuple(values.get("stop") or ()))


def generate_command(values: dict[str, Any], inputs: list[Any]) -> int:
    """Generate for raw inputs: stream one prompt's text, or print JSON lines for several."""
    model, name, task = load_generation_model(
        values.get("model"), values.get("adapter") or values.get("bundle"), values.get("max_length")
    )
    options = decode_options(values)
    prompts = [task.prompt_ids(task.parse_input(raw)) for raw in inputs]
    widest = max((len(prompt) for prompt in prompts), default=0)
    room = context_room(model, widest)
    if room is not None and options.max_new_tokens > room:  # generate_texts keeps to it
        print(
            f"max_new_tokens {options.max_new_tokens} lowered to {room}: that is what fits "
            f"in the base's context after the longest prompt ({widest} tokens)",
            file=sys.stderr,
        )
    if len(inputs) == 1 and values.get("stream", False):
        generate_texts(
            model,
            task.tokenizer,
            prompts,
            name,
            options,
            StopStreamer(task.tokenizer, options.stop),
        )
        return 0
    for raw, generation in zip(
        inputs, generate_texts(model, task.tokenizer, prompts, name, options), strict=True
    ):
        row = {"input": raw, "text": generation.text, "finish_reason": generation.finish_reason}
        row["completion_tokens"] = generation.completion_tokens
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return 0


def evaluate_command(values: dict[str, Any]) -> int:
    """Evaluate a generation bundle, or the base alone (``--method none``, optional shots)."""
    from adapterkit.data import CAUSAL_LM, load_data, sample_examples
    from adapterkit.metrics import format_summary, write_metrics

    bundle = values.get("bundle")
    model, name, task = load_generation_model(values.get("model"), bundle, values.get("max_length"))
    splits = load_data(values["data"], task=CAUSAL_LM)
    examples = sample_examples(
        getattr(splits, values["split"]) or [], values.get("max_eval_samples"), 0
    )
    if not examples:
        raise AdapterkitError(f"the data has no '{values['split']}' split")
    shots = int(values.get("shots") or 0)
    demos = pick_shots(splits.train, shots) if shots else None
    options = decode_options({**values, "batch_size": None})
    metrics, loss = evaluate_generation(
        model,
        name,
        task,
        examples,
        batch_size=values.get("batch_size") or 16,
        decoding=options,
        shots=demos,
    )
    metrics = {**metrics, "loss": loss}
    print(format_summary({**metrics, "split": values["split"]}))
    for sample in metrics.get("samples", [])[:3]:
        print(
            f"  {sample['prediction'][:100]!r}  <-  reference {sample['reference'][:100]!r}",
            file=sys.stderr,
        )
    if values.get("output"):
        method = "none" if bundle is None else str(bundle)
        what = f"{shots}-shot prompt" if shots else ("zero-shot prompt" if bundle is None else name)
        extra = {
            "method": method,
            "model": str(model.base_name),
            "data": values["data"],
            "shots": shots,
        }
        paths = write_metrics(
            Path(values["output"]), metrics, split=values["split"],
            title=f"{what} on {values['data']}", extra=extra,
        )  # fmt: skip
        print(f"wrote {paths[0]} and {paths[1]}")
    return 0
