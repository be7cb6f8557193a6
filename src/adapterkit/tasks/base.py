"""The task interface: examples → batches → head logits → loss, predictions, metrics.

A task owns everything specific to one kind of problem: tokenisation and label
alignment, dynamic-padding collation, its head, its loss, decoding logits back to
labels/entities/spans, its metrics, and how raw user inputs become JSON answers.
The trainer, evaluator, predictor and server only speak this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from adapterkit.errors import BundleError, DataError
from adapterkit.heads import Head
from adapterkit.model import AdaptedModel
from adapterkit.padding import mask_rows, pad_rows, pad_token_id

# Keys a task's batch may hold that go to the base model's forward.
MODEL_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


class Task(ABC):
    """One task type. Subclasses set ``task_type`` and implement the abstract methods.

    Args:
        tokenizer: A fast transformers tokenizer (offsets are needed by some tasks).
        label_names: The label set, in head output order (None for label-free tasks).
        max_length: Token cap per example; longer inputs are truncated.
    """

    task_type: ClassVar[str] = ""
    primary_metric: ClassVar[str] = "f1"
    """The validation metric that picks the best checkpoint and drives early stopping."""

    def __init__(
        self, tokenizer: Any, label_names: list[str] | None, max_length: int = 128
    ) -> None:
        self.tokenizer = tokenizer
        self.label_names = list(label_names or [])
        self.label_to_id = {label: i for i, label in enumerate(self.label_names)}
        self.max_length = max_length

    def label_id(self, label: str, kind: str = "label") -> int:
        """The head output of ``label``; one the task was not trained on (an evaluation
        file with a new label) is a DataError naming it and the trained ones."""
        if label not in self.label_to_id:
            raise DataError(f"{kind} '{label}' is not one of the trained labels {self.label_names}")
        return self.label_to_id[label]

    # Bundle round trip ---------------------------------------------------------------------
    trivial_predictor: ClassVar[str] = "predicting nothing"
    """What the trivial predictor of :meth:`trivial_score` does, for messages."""

    def trivial_score(self, references: list[Any]) -> float | None:
        """The primary metric of the trivial predictor on ``references``: a run that scores
        no better has learned nothing (early stopping waits until it does). The default,
        for F1-like metrics, is the score of predicting nothing: 0. None: no such floor."""
        return 0.0

    def task_info(self) -> dict[str, Any]:
        """What a bundle stores to rebuild this task: type, labels, max_length."""
        return {"type": self.task_type, "labels": self.label_names, "max_length": self.max_length}

    def apply_info(self, info: dict[str, Any]) -> None:
        """Take what a bundle's task record holds beyond type, labels and max_length (what
        :meth:`calibrate` chose); the default task keeps nothing more."""
        return None

    def calibrate(self, references: list[Any], predict: Callable[[], list[Any]]) -> dict[str, Any]:
        """After training: settle what the task decides from its validation predictions
        (``predict()`` makes them; a pass over validation, so only when needed), and return
        it for the bundle's task record; default: nothing."""
        return {}

    # Training and evaluation --------------------------------------------------------------
    @abstractmethod
    def build_head(self, hidden_size: int) -> Head:
        """A freshly initialised head for this task's label set."""

    @abstractmethod
    def encode(self, example: dict[str, Any]) -> dict[str, Any]:
        """One example → unpadded features (lists of ints) including its labels."""

    def encode_windows(self, example: dict[str, Any]) -> list[dict[str, Any]]:
        """One example → one or more features (rows).

        A task whose inputs can outgrow ``max_length`` without losing the answer (extractive
        QA over a long context) returns several overlapping windows, each marked
        ``"window": [i, n]``; every caller keeps one example's windows next to each other,
        and :func:`merge_windows` folds their predictions back into one. By default an
        example is one row.
        """
        return [self.encode(example)]

    def merge_window_predictions(self, predictions: list[Any]) -> Any:
        """One example's per-window predictions (decoded or formatted) → its prediction."""
        return predictions[0]

    @abstractmethod
    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Pad a list of features to the longest in the batch (dynamic padding).

        Tasks start from :meth:`collate_inputs` and add their own tensors (labels,
        word alignment, offsets ...).
        """

    def collate_inputs(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The base model's inputs of ``features``, right-padded (see :func:`pad_model_inputs`)."""
        return pad_model_inputs(features, pad_token_id(self.tokenizer))

    @abstractmethod
    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean loss of a batch."""

    def loss_count(self, batch: dict[str, torch.Tensor]) -> int:
        """How many items :meth:`loss` averages over: rows here; labelled tokens for
        token-level tasks. Runs split across processes weigh each share's loss by it."""
        return len(batch["input_ids"])

    @abstractmethod
    def decode(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        """Predictions in label space, one per example of the batch."""

    @abstractmethod
    def references(self, examples: list[dict[str, Any]]) -> list[Any]:
        """Gold answers in the same form as :meth:`decode` returns."""

    @abstractmethod
    def metrics(self, references: list[Any], predictions: list[Any]) -> dict[str, Any]:
        """The evaluation report (top-level accuracy/f1/precision/recall as the task has them)."""

    # Inference on raw inputs ------------------------------------------------------------
    @abstractmethod
    def parse_input(self, raw: Any) -> dict[str, Any]:
        """A user input (a string, or a dict for pairs/QA) → an example without labels."""

    @abstractmethod
    def format_prediction(
        self, example: dict[str, Any], logits: torch.Tensor, features: dict[str, Any]
    ) -> dict:
        """One example's logits → a JSON-ready answer (labels with scores, entities, spans)."""


def check_input_fields(raw: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse an input object with fields the task does not read (a typo would be
    silently ignored otherwise)."""
    unknown = sorted(str(key) for key in set(raw) - set(allowed))
    if unknown:
        raise DataError(
            f"an input has unknown field(s) {', '.join(unknown)}; use {', '.join(allowed)}"
        )


def encode_examples(task: Task, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every example's rows, in order (one example's windows stay together)."""
    return [features for example in examples for features in task.encode_windows(example)]


def merge_windows(task: Task, features: list[dict[str, Any]], predictions: list[Any]) -> list[Any]:
    """Per-row predictions → one per example, using the rows' ``"window": [i, n]`` marks."""
    merged, index = [], 0
    while index < len(features):
        count = features[index].get("window", [0, 1])[1]
        merged.append(task.merge_window_predictions(predictions[index : index + count]))
        index += count
    return merged


def pad_model_inputs(
    features: list[dict[str, Any]], pad_id: int, device: torch.device | None = None
) -> dict[str, torch.Tensor]:
    """(B, T) tensors of the model-input keys all ``features`` hold, right-padded.

    ``input_ids`` are padded with ``pad_id``, the other keys with 0; features without
    an ``attention_mask`` (prompts) get one from their lengths. Rows may come from
    different tasks (the server batches them together).
    """
    batch = {
        key: pad_rows(
            [f[key] for f in features], pad_id if key == "input_ids" else 0, device=device
        )
        for key in MODEL_INPUT_KEYS
        if all(key in f for f in features)
    }
    if "attention_mask" not in batch:
        batch["attention_mask"] = mask_rows([f["input_ids"] for f in features], device=device)
    return batch


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The part of a batch the base model's forward takes."""
    return {k: v for k, v in batch.items() if k in MODEL_INPUT_KEYS}


def head_forward(model: AdaptedModel, adapter: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Run the base with ``adapter`` and apply that adapter's head: the logits of the batch."""
    inputs = model_inputs(batch)
    outputs = model(**inputs, adapter=adapter)
    return model.head_logits(adapter, outputs.last_hidden_state, inputs.get("attention_mask"))


def not_finite(adapter: str) -> BundleError:
    """The error for an adapter whose outputs are inf or NaN: its weights are too large for
    the forward's precision (a bundle trained with a runaway learning rate), and its scores
    would be NaN, which is neither an answer nor JSON."""
    return BundleError(
        f"adapter '{adapter}' gives scores that are not finite numbers (inf or NaN): "
        "its weights are too large for this precision; retrain it with a lower --lr"
    )


def finite_logits(adapter: str, logits: torch.Tensor) -> torch.Tensor:
    """``logits`` when every one is a finite number, else :func:`not_finite`'s error."""
    if not bool(torch.isfinite(logits).all()):
        raise not_finite(adapter)
    return logits
