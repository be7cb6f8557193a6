"""Instruction tuning and chat for decoder-only LMs: loss on the response tokens only.

An example is ``{"prompt", "response"}`` or ``{"messages": [{"role", "content"}, ...]}``.
With a chat template (SmolLM2's ChatML, say) a prompt/response pair becomes one user and
one assistant turn; every assistant turn of a dialogue is learned, everything else is
context whose labels are -100. Without a template the prompt and response are joined as
they are (the user's own format) and the response ends with the end-of-sequence token.

There is no head: the base's own LM head scores the vocabulary, so ``build_head`` returns
None and :meth:`CausalLMTask.forward` asks the base for logits, only at the positions that
predict labelled tokens (``logits_to_keep``: a 300-token prompt costs no LM-head work).
Generation and its metrics live in :mod:`adapterkit.generation`, a layer above: a task
encodes and scores, it never decodes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from adapterkit.errors import AdapterkitError, DataError
from adapterkit.metrics import perplexity
from adapterkit.model import AdaptedModel
from adapterkit.padding import pad_rows
from adapterkit.tasks.base import Task

IGNORE = -100  # label of a token that is context, not something to learn
Piece = tuple[str | int, bool]  # (text, or one token id; trained?)


def messages_of(example: dict[str, Any], with_answer: bool = True) -> list[dict[str, str]]:
    """The example as chat messages; ``with_answer=False`` drops the final assistant turn."""
    if "messages" in example:
        messages = [dict(m) for m in example["messages"]]
    else:
        messages = [{"role": "user", "content": example["prompt"]}]
        if "response" in example:
            messages.append({"role": "assistant", "content": example["response"]})
    if not with_answer and messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    return messages


class CausalLMTask(Task):
    """Next-token prediction on response tokens; prompts are masked out of the loss."""

    task_type = "causal-lm"
    primary_metric = "perplexity"
    greater_is_better = False

    def trivial_score(self, references: list[Any]) -> float | None:
        """Perplexity has no trivial predictor's score to wait for."""
        return None

    """The trainer keeps the checkpoint with the lowest validation perplexity."""

    def __init__(
        self, tokenizer: Any, label_names: list[str] | None, max_length: int = 128
    ) -> None:
        super().__init__(tokenizer, None, max_length)
        self.truncated = 0
        self.encoded = 0

    @property
    def has_template(self) -> bool:
        """Whether the tokenizer brings a chat template (then prompts are rendered with it)."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def build_head(self, hidden_size: int) -> None:  # type: ignore[override]
        return None  # the base's LM head is the head

    # Example -> pieces -> ids --------------------------------------------------------------
    def _render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt
            )
        )

    def pieces(self, example: dict[str, Any], with_answer: bool = True) -> list[Piece]:
        """The example as (text or token id, trained) pieces, in order.

        ``with_answer=False`` gives the generation prompt: everything before the answer.
        """
        eos = self.tokenizer.eos_token_id
        if not self.has_template and "messages" not in example:
            # The user's own format: the prompt, then (when learning) the response and EOS.
            out: list[Piece] = [(example["prompt"], False)]
            if with_answer:
                out += [(example["response"], True)] + ([(eos, True)] if eos is not None else [])
            return out
        messages = messages_of(example, with_answer)
        return (
            self._template_pieces(messages) if self.has_template else self._plain_pieces(messages)
        )

    def _template_pieces(self, messages: list[dict[str, str]]) -> list[Piece]:
        out: list[Piece] = []
        done = ""
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self._render(messages[:i], generation_prompt=True)
            after = self._render(messages[: i + 1], generation_prompt=False)
            if not before.startswith(done) or not after.startswith(before):
                raise DataError(
                    "the chat template does not render earlier turns as a prefix of later ones; "
                    "cannot tell the assistant's tokens apart"
                )
            out += [(before[len(done) :], False), (after[len(before) :], True)]
            done = after
        if not messages or messages[-1]["role"] != "assistant":  # generation prompt
            out.append((self._render(messages, generation_prompt=True)[len(done) :], False))
        return [(text, trained) for text, trained in out if text != ""]

    def _plain_pieces(self, messages: list[dict[str, str]]) -> list[Piece]:
        eos = self.tokenizer.eos_token_id
        out: list[Piece] = []
        for message in messages:
            if message["role"] == "assistant":
                out += [("assistant: ", False), (message["content"], True)]
                out += [(eos, True), ("\n", False)] if eos is not None else [("\n", True)]
            else:
                out.append((f"{message['role']}: {message['content']}\n", False))
        if not messages or messages[-1]["role"] != "assistant":
            out.append(("assistant: ", False))
        return out

    def _ids(self, pieces: list[Piece]) -> tuple[list[int], list[int]]:
        ids: list[int] = []
        labels: list[int] = []
        for index, (piece, trained) in enumerate(pieces):
            if isinstance(piece, int):
                new = [piece]
            else:
                # BOS (when the tokenizer adds one) only at the start, and never when a
                # chat template wrote its own special tokens.
                specials = index == 0 and not self.has_template
                new = list(self.tokenizer(piece, add_special_tokens=specials)["input_ids"])
            ids += new
            labels += new if trained else [IGNORE] * len(new)
        if labels:
            labels[0] = IGNORE  # the first token has no context to be predicted from
        return ids, labels

    def prompt_ids(self, example: dict[str, Any]) -> list[int]:
        """Token ids of the generation prompt (everything before the answer)."""
        ids, _ = self._ids(self.pieces(example, with_answer=False))
        if len(ids) >= self.max_length:
            raise DataError(self._too_long(example, len(ids)))
        return ids

    def _too_long(self, example: dict[str, Any], n: int) -> str:
        text = str(example.get("prompt") or messages_of(example)[0]["content"])
        snippet = " ".join(text.split())[:40]
        return (
            f"a prompt of {n} tokens ('{snippet}...') does not fit max_length {self.max_length}: "
            "raise --max-length or shorten the prompt"
        )

    def encode(self, example: dict[str, Any]) -> dict[str, Any]:
        if "response" not in example and "messages" not in example:
            return {"input_ids": self.prompt_ids(example)}
        ids, labels = self._ids(self.pieces(example))
        first = next((i for i, label in enumerate(labels) if label != IGNORE), len(ids))
        if first >= self.max_length:
            raise DataError(self._too_long(example, first))
        self.encoded += 1
        if len(ids) > self.max_length:
            self.truncated += 1  # the response's end is cut; the prompt always stays whole
            ids, labels = ids[: self.max_length], labels[: self.max_length]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}

    def pop_notes(self) -> list[str]:
        """What encoding changed since the last call (logged by the trainer), then reset."""
        notes = []
        if self.truncated:
            notes.append(
                f"{self.truncated} of {self.encoded} examples longer than max_length "
                f"{self.max_length} were truncated (the end of the response is cut)"
            )
        self.truncated = self.encoded = 0
        return notes

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collate_inputs(features)
        if "labels" in features[0]:
            batch["labels"] = pad_rows([f["labels"] for f in features], IGNORE)
        return batch

    def pack(self, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Concatenate whole examples, in order, into rows of at most ``max_length`` tokens.

        Fewer pad tokens per batch; examples in one row attend to the earlier ones (the
        usual cheap packing), which the masks on the prompts keep out of the loss.
        """
        packed: list[dict[str, Any]] = []
        for feature in features:
            last = packed[-1] if packed else None
            if (
                last is not None
                and len(last["input_ids"]) + len(feature["input_ids"]) <= self.max_length
            ):
                for key in ("input_ids", "attention_mask", "labels"):
                    last[key] = last[key] + feature[key]
            else:
                packed.append({k: list(v) for k, v in feature.items()})
        return packed

    # Forward, loss, perplexity ----------------------------------------------------------
    def forward(
        self, model: AdaptedModel, adapter: str | None, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Logits (B, K, V) of the last K positions: those that predict labelled tokens."""
        labels = batch["labels"]
        labelled = (labels != IGNORE).any(0).nonzero()
        start = int(labelled[0]) - 1 if len(labelled) else labels.shape[1] - 1
        keep = labels.shape[1] - max(start, 0)
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        return model(**inputs, adapter=adapter, logits_to_keep=keep).logits

    def _aligned(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predictions (B, N, V), targets (B, N)): logits at p score the token at p + 1."""
        offset = batch["labels"].shape[1] - logits.shape[1]  # the model kept the last K positions
        targets = batch["labels"][:, offset + 1 :]
        return logits[:, :-1], targets

    def token_nll(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-token NLL (B, N), the mask of scored tokens, and whether argmax was right."""
        pred, targets = self._aligned(logits, batch)
        nll = F.cross_entropy(
            pred.float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
        )  # (B, N)
        mask = targets != IGNORE
        return nll, mask, (pred.argmax(-1) == targets) & mask

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        nll, mask, _ = self.token_nll(logits, batch)
        return nll.sum() / mask.sum().clamp(min=1)

    def loss_count(self, batch: dict[str, torch.Tensor]) -> int:
        # A label at position p is predicted from p - 1: the first position scores nothing.
        return int((batch["labels"][:, 1:] != IGNORE).sum())

    def decode(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        """Per example: (summed NLL, scored tokens, correctly predicted tokens)."""
        nll, mask, right = self.token_nll(logits, batch)
        return [
            (float(n), int(m), int(r))
            for n, m, r in zip(
                nll.sum(1).tolist(), mask.sum(1).tolist(), right.sum(1).tolist(), strict=True
            )
        ]

    def references(self, examples: list[dict[str, Any]]) -> list[Any]:
        """Reference texts: every acceptable one (``references``) or the single answer."""
        refs = []
        for ex in examples:
            if ex.get("references"):
                refs.append(list(ex["references"]))
            else:
                answer = ex.get("reference") or ex.get("response")
                if answer is None and "messages" in ex:
                    answer = messages_of(ex)[-1]["content"]
                refs.append(answer or "")
        return refs

    def metrics(self, references: list[Any], predictions: list[Any]) -> dict[str, Any]:
        """Teacher-forced perplexity and token accuracy over the response tokens."""
        nll = sum(p[0] for p in predictions)
        tokens = sum(p[1] for p in predictions)
        right = sum(p[2] for p in predictions)
        return {
            # No scored token at all (every response cut away) counts as infinitely bad.
            "perplexity": perplexity(nll, tokens) if tokens else math.inf,
            "token_accuracy": right / max(tokens, 1),
            "tokens": tokens,
        }

    # Raw inputs --------------------------------------------------------------------------
    def parse_input(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, str):
            return {"prompt": raw}
        if isinstance(raw, dict) and isinstance(raw.get("prompt"), str):
            return {"prompt": raw["prompt"]}
        if isinstance(raw, dict) and isinstance(raw.get("messages"), list):
            return {"messages": raw["messages"]}
        raise DataError("each input must be a string, or an object with 'prompt' or 'messages'")

    def format_prediction(
        self, example: dict[str, Any], logits: torch.Tensor, features: dict
    ) -> dict:
        raise AdapterkitError("a causal-lm adapter generates text: use `adapterkit generate`")
