"""Evaluate text generation: teacher-forced perplexity, then decode and score against references.

Metrics (all in one dict, as ``metrics.json`` stores them): ``perplexity`` and
``token_accuracy`` on the reference answers; ``rouge1``/``rouge2``/``rougeL`` (summaries),
sacreBLEU ``bleu`` and ``chrf`` (translation; 0-100), ``exact_match``/``f1`` (short answers;
best over every acceptable reference); ``samples``: a few generations beside their
references. Decoding is greedy with left-padded batches, and ``max_new_tokens`` is capped
at the longest reference plus a margin: an answer longer than every reference only
costs time, it cannot score better.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from adapterkit.errors import AdapterkitError
from adapterkit.generation.decode import DecodeOptions, generate_texts
from adapterkit.metrics import bleu_chrf, exact_match_f1, rouge_scores
from adapterkit.model import AdaptedModel
from adapterkit.tasks.causal_lm import CausalLMTask, messages_of
from adapterkit.train.evaluate import evaluate_features

REFERENCE_MARGIN = 8  # tokens allowed beyond the longest reference (end-of-turn, punctuation)
SAMPLE_ROWS = 8


def pick_shots(train: list[dict[str, Any]], k: int, seed: int = 0) -> list[dict[str, Any]]:
    """``k`` demonstrations drawn (seeded) from the training examples; the same for every prompt."""
    if k < 0:
        raise AdapterkitError("shots must be >= 0")
    if k > len(train):
        raise AdapterkitError(
            f"asked for {k} shots but the training split has {len(train)} examples"
        )
    return random.Random(seed).sample(train, k)


def add_shots(example: dict[str, Any], shots: list[dict[str, Any]]) -> dict[str, Any]:
    """The example as a dialogue: each demonstration is a user turn and its assistant answer."""
    messages = [m for shot in shots for m in messages_of(shot)]
    messages += messages_of(example, with_answer=False)
    keep = {k: v for k, v in example.items() if k in ("reference", "references", "source")}
    return {"messages": messages, **keep}


def first_reference(reference: str | list[str]) -> str:
    """The reference that ROUGE/BLEU/chrF score against (the first when there are several)."""
    return reference if isinstance(reference, str) else reference[0]


def generation_metrics(
    predictions: list[str], references: list[str | list[str]]
) -> dict[str, float]:
    """ROUGE-1/2/L, BLEU, chrF (first reference) and exact match / F1 (any reference)."""
    first = [first_reference(r) for r in references]
    return {
        **rouge_scores(predictions, first),
        **bleu_chrf(predictions, first),
        **exact_match_f1(predictions, references),
    }


def reference_cap(tokenizer: Any, references: list[str | list[str]], limit: int) -> int:
    """``max_new_tokens`` for these references: the longest one in tokens plus a margin."""
    texts = [r for ref in references for r in ([ref] if isinstance(ref, str) else ref)]
    longest = max(
        (len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts), default=0
    )
    return max(1, min(limit, longest + REFERENCE_MARGIN))


def evaluate_generation(
    model: AdaptedModel,
    adapter: str | None,
    task: CausalLMTask,
    examples: list[dict[str, Any]],
    *,
    batch_size: int = 16,
    decoding: DecodeOptions | None = None,
    shots: list[dict[str, Any]] | None = None,
    generate: bool = True,
    perplexity: bool = True,
    samples: int = SAMPLE_ROWS,
) -> tuple[dict[str, Any], float | None]:
    """(metrics, mean loss) of ``adapter`` (None: the base alone) on examples with answers.

    Args:
        model: The adapted base.
        adapter: Adapter name, or None for the prompt-only baseline.
        task: The causal-lm (or seq2seq) task that encodes prompts.
        examples: Examples with ``prompt``/``response`` or ``messages``.
        batch_size: Rows per forward (perplexity) and per ``generate`` call.
        decoding: Decoding options (default greedy); ``max_new_tokens`` is capped by the
            references' length.
        shots: Demonstrations put before every prompt (k-shot prompting).
        generate: Decode and compute ROUGE/BLEU/chrF/EM (False: perplexity only).
        perplexity: Compute teacher-forced perplexity on the plain (no-shot) prompts.
        samples: How many generations to keep beside their references.
    """
    metrics: dict[str, Any] = {}
    loss = None
    references = task.references(examples)
    if perplexity:
        features = [task.encode(ex) for ex in examples]
        scored, loss, _ = evaluate_features(model, adapter, task, features, references, batch_size)
        metrics.update(scored)
    if not generate:
        return metrics, loss
    prompted = [add_shots(ex, shots) for ex in examples] if shots else examples
    prompts = [task.prompt_ids(ex) for ex in prompted]
    options = replace(decoding or DecodeOptions(), batch_size=batch_size)
    options.max_new_tokens = reference_cap(task.tokenizer, references, options.max_new_tokens)
    generations = generate_texts(model, task.tokenizer, prompts, adapter, options)
    predictions = [g.text.strip() for g in generations]
    metrics.update(generation_metrics(predictions, references))
    how = (
        "greedy"
        if options.sampling.greedy
        else f"sampling (T {options.temperature}, top-p {options.top_p})"
    )
    metrics["decoding"] = f"{how}, max_new_tokens {options.max_new_tokens}" + (
        f", {len(shots)}-shot" if shots else ""
    )
    metrics["samples"] = [
        {
            "input": ex.get("source") or ex.get("prompt") or messages_of(ex, False)[-1]["content"],
            "prediction": prediction,
            "reference": first_reference(reference),
        }
        for ex, prediction, reference in zip(
            examples[:samples], predictions, references, strict=False
        )
    ]
    return metrics, loss
