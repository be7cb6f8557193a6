"""The causal-lm data on an encoder-decoder base (T5, BART): the prompt is the encoder input.

Same examples, metrics and generation as :class:`~adapterkit.tasks.causal_lm.CausalLMTask`;
only the layout differs: the encoder reads the whole prompt, the decoder learns the
response (every decoder token is a response token, so nothing needs masking but padding).
"""

from __future__ import annotations

from typing import Any

import torch

from adapterkit.errors import DataError
from adapterkit.model import AdaptedModel
from adapterkit.padding import pad_rows
from adapterkit.tasks.causal_lm import IGNORE, CausalLMTask, messages_of


class Seq2SeqTask(CausalLMTask):
    """Prompt → encoder, response → decoder labels."""

    task_type = "seq2seq"

    def source_text(self, example: dict[str, Any]) -> str:
        """The encoder input: the prompt, or the dialogue so far as ``role: content`` lines."""
        if "messages" not in example:
            return example["prompt"]
        history = messages_of(example, with_answer=False)
        return "\n".join(f"{m['role']}: {m['content']}" for m in history)

    def prompt_ids(self, example: dict[str, Any]) -> list[int]:
        ids = list(self.tokenizer(self.source_text(example))["input_ids"])
        if len(ids) > self.max_length:
            raise DataError(self._too_long(example, len(ids)))
        return ids

    def encode(self, example: dict[str, Any]) -> dict[str, Any]:
        ids = self.prompt_ids(example)
        features: dict[str, Any] = {"input_ids": ids, "attention_mask": [1] * len(ids)}
        if "response" in example or "messages" in example:
            answer = messages_of(example)[-1]["content"]
            labels = list(self.tokenizer(text_target=answer)["input_ids"])
            self.encoded += 1
            if len(labels) > self.max_length:
                self.truncated += 1
                labels = labels[: self.max_length]
            features["labels"] = labels
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collate_inputs(features)
        if "labels" in features[0]:
            batch["labels"] = pad_rows([f["labels"] for f in features], IGNORE)
        return batch

    def pack(self, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return features  # an encoder-decoder pair has no single sequence to pack into

    def forward(
        self, model: AdaptedModel, adapter: str | None, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Decoder logits (B, L, V), one per label position (the model shifts labels right)."""
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
        return model(**inputs, adapter=adapter).logits

    def loss_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"] != IGNORE).sum())  # logit t scores label t

    def _aligned(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return logits, batch["labels"]  # already aligned: logit t scores label t
