"""Sequence classification: single-label (softmax) and multi-label (sigmoid), single texts or pairs."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
import torch.nn.functional as F

from adapterkit.errors import DataError
from adapterkit.heads import ClassificationHead, Head
from adapterkit.metrics import classification_metrics, multilabel_metrics
from adapterkit.tasks.base import Task, check_input_fields

MULTI_LABEL_THRESHOLD = 0.5


class SequenceClassificationTask(Task):
    """One label per text (or text pair), from a pooled head and cross-entropy."""

    task_type = "sequence-classification"
    primary_metric = "accuracy"
    multi_label = False

    def build_head(self, hidden_size: int) -> Head:
        return ClassificationHead(hidden_size, len(self.label_names))

    def _tokenize(self, example: dict[str, Any]) -> dict[str, list[int]]:
        text = example.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError("an example has no text")
        pair = example.get("text_pair")
        encoded = self.tokenizer(text, pair or None, truncation=True, max_length=self.max_length)
        return {
            k: list(v)
            for k, v in encoded.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")
        }

    def encode(self, example: dict[str, Any]) -> dict[str, Any]:
        features = self._tokenize(example)
        if "label" in example:
            features["labels"] = self.label_id(example["label"])
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collate_inputs(features)
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features])
        return batch

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits.float(), batch["labels"])

    def decode(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        return [self.label_names[i] for i in logits.argmax(-1).tolist()]

    def references(self, examples: list[dict[str, Any]]) -> list[Any]:
        return [ex["label"] for ex in examples]

    def metrics(self, references: list[Any], predictions: list[Any]) -> dict[str, Any]:
        return classification_metrics(references, predictions, self.label_names)

    trivial_predictor = "always answering the most frequent label"

    def trivial_score(self, references: list[Any]) -> float | None:
        """Accuracy of always answering the most frequent label (None when that is perfect:
        a validation split of one label cannot tell a model that learned from one that
        did not)."""
        if not references:
            return None
        majority = Counter(references).most_common(1)[0][0]
        score = self.metrics(references, [majority] * len(references))[self.primary_metric]
        return None if score >= 1.0 else float(score)

    def parse_input(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, str):
            return {"text": raw, "text_pair": None}
        if isinstance(raw, dict) and isinstance(raw.get("text"), str):
            check_input_fields(raw, ("text", "text_pair"))
            pair = raw.get("text_pair")
            if pair is not None and not isinstance(pair, str):
                raise DataError(f"'text_pair' must be a string, got {type(pair).__name__}")
            return {"text": raw["text"], "text_pair": pair}
        raise DataError(
            "each input must be a string or an object with 'text' (and optional 'text_pair')"
        )

    def format_prediction(
        self, example: dict[str, Any], logits: torch.Tensor, features: dict[str, Any]
    ) -> dict:
        probs = logits.float().softmax(-1).tolist()
        ranked = sorted(zip(self.label_names, probs, strict=True), key=lambda kv: -kv[1])
        return {"label": ranked[0][0], "score": ranked[0][1], "scores": dict(ranked)}


class MultiLabelClassificationTask(SequenceClassificationTask):
    """Any number of labels per text: one sigmoid per label, binary cross-entropy."""

    task_type = "multi-label-classification"
    primary_metric = "micro_f1"
    multi_label = True

    def encode(self, example: dict[str, Any]) -> dict[str, Any]:
        features = self._tokenize(example)
        if "labels" in example:
            target = [0.0] * len(self.label_names)
            for label in example["labels"]:
                target[self.label_id(label)] = 1.0
            features["labels"] = target
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = super().collate(features)
        if "labels" in batch:
            batch["labels"] = batch["labels"].float()
        return batch

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), batch["labels"])

    def decode(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        chosen = logits.float().sigmoid() >= MULTI_LABEL_THRESHOLD
        return [[self.label_names[j] for j in row.nonzero().flatten().tolist()] for row in chosen]

    def references(self, examples: list[dict[str, Any]]) -> list[Any]:
        return [list(ex["labels"]) for ex in examples]

    def metrics(self, references: list[Any], predictions: list[Any]) -> dict[str, Any]:
        return multilabel_metrics(references, predictions, self.label_names)

    trivial_predictor = "predicting no label"

    def trivial_score(self, references: list[Any]) -> float | None:
        """Micro-F1 of predicting no label: 0."""
        return 0.0

    def format_prediction(
        self, example: dict[str, Any], logits: torch.Tensor, features: dict[str, Any]
    ) -> dict:
        probs = logits.float().sigmoid().tolist()
        scores = dict(zip(self.label_names, probs, strict=True))
        return {
            "labels": [k for k, v in scores.items() if v >= MULTI_LABEL_THRESHOLD],
            "scores": scores,
        }
