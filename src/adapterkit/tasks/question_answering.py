"""Extractive question answering (SQuAD-style): the answer is a span of the context.

The head gives a start and an end logit per token; the answer is the highest-scoring
span ``start <= end`` of at most :data:`MAX_ANSWER_TOKENS` tokens that lies inside the
context, mapped back to characters through the tokenizer's offsets.

A context longer than ``max_length`` (with the question) is split into overlapping
windows (:meth:`QuestionAnsweringTask.encode_windows`), each one row: in training, a
window that does not hold the whole answer targets the CLS position 0 ("no answer
here"); in evaluation and inference, each window proposes its best span and the span
with the highest probability wins. Span probabilities are normalised over the context
tokens *and* CLS, so a window the model judges to hold no answer proposes a weak span
and windows compare fairly (as transformers' question-answering pipeline does).

Questions the context does not answer (SQuAD 2.0) are trained towards CLS; a bundle
trained on data that has them stores a no-answer threshold, chosen on validation, above
which the answer is empty (see :mod:`adapterkit.tasks.unanswerable`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from adapterkit.errors import DataError
from adapterkit.heads import Head, SpanQAHead
from adapterkit.metrics import exact_match_f1
from adapterkit.padding import pad_rows
from adapterkit.tasks.base import Task
from adapterkit.tasks.unanswerable import (
    best_threshold,
    breakdown,
    check_threshold,
    has_unanswerable,
    no_answer_share,
)

MAX_ANSWER_TOKENS = 30
CONTEXT_SEQUENCE = 1  # sequence id of the context in a (question, context) encoding
NO_ANSWER_POSITION = 0  # CLS: the target of a window that does not hold the answer


class ScoredAnswer(str):
    """An answer string that also carries its span probability (``score``) and the
    probability of "no answer" (``null``).

    Evaluation compares answers as strings; the scores let the windows of one long
    context be merged into the single most probable answer, or none.
    """

    score: float
    null: float

    def __new__(cls, text: str, score: float, null: float = 0.0) -> ScoredAnswer:
        answer = super().__new__(cls, text)
        answer.score, answer.null = score, null
        return answer


def best_span(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    context_mask: torch.Tensor,
    max_tokens: int = MAX_ANSWER_TOKENS,
) -> tuple[int, int, float]:
    """The best answer span of one example.

    Args:
        start_logits: (T,) start score per token.
        end_logits: (T,) end score per token.
        context_mask: (T,) true on context tokens, the only ones an answer may use.
        max_tokens: Longest answer allowed, in tokens.

    Returns:
        ``(start, end, score)``: token positions (inclusive) and the probability
        ``p_start * p_end``, each a softmax over the context tokens and the no-answer
        position (CLS), so that the score says how sure the model is the answer is here.
    """
    mask = context_mask.bool()
    if not mask.any():
        return 0, 0, 0.0
    normaliser = mask.clone()
    normaliser[NO_ANSWER_POSITION] = True
    neg = torch.finfo(torch.float32).min
    log_start = start_logits.float().masked_fill(~normaliser, neg).log_softmax(-1)  # (T,)
    log_end = end_logits.float().masked_fill(~normaliser, neg).log_softmax(-1)  # (T,)
    scores = log_start[:, None] + log_end[None, :]  # (T, T): [start, end]
    length = scores.shape[0]
    # Allowed pairs: start <= end < start + max_tokens, both on context tokens.
    band = torch.ones(length, length, dtype=torch.bool, device=scores.device)
    band = band.triu().tril(max_tokens - 1)
    allowed = band & mask[:, None] & mask[None, :]
    flat = scores.masked_fill(~allowed, float("-inf")).flatten().argmax()
    start, end = divmod(int(flat), length)
    return start, end, float(scores[start, end].exp())


def null_probability(
    start_logits: torch.Tensor, end_logits: torch.Tensor, context_mask: torch.Tensor
) -> float:
    """``p_start(CLS) * p_end(CLS)`` in :func:`best_span`'s normalisation: how sure the
    model is that this window holds no answer."""
    normaliser = context_mask.bool().clone()
    normaliser[NO_ANSWER_POSITION] = True
    neg = torch.finfo(torch.float32).min
    log_start = start_logits.float().masked_fill(~normaliser, neg).log_softmax(-1)
    log_end = end_logits.float().masked_fill(~normaliser, neg).log_softmax(-1)
    return float((log_start[NO_ANSWER_POSITION] + log_end[NO_ANSWER_POSITION]).exp())


class QuestionAnsweringTask(Task):
    """Span extraction from a (question, context) pair with a start/end head.

    Label-free: ``label_names`` is ignored (a bundle stores an empty label list).
    Contexts beyond ``max_length`` tokens become overlapping windows; see the module docs.
    """

    task_type = "question-answering"
    trivial_predictor = "answering nothing"

    def __init__(
        self, tokenizer: Any, label_names: list[str] | None = None, max_length: int = 128
    ) -> None:
        # SQuAD setups usually use max_length=384; the shared default keeps make_task uniform.
        super().__init__(tokenizer, None, max_length)
        # Tokens two neighbouring windows share: a third of the window, as SQuAD setups
        # do (128 of 384), so an answer near one window's edge is whole in the next.
        self.stride = max_length // 3
        self.encoded = self.split = self.windows = self.answers_cut = 0
        self.no_answer_threshold: float | None = None
        """Answer nothing when the no-answer share exceeds this (None: always a span)."""

    def task_info(self) -> dict[str, Any]:
        info = super().task_info()
        if self.no_answer_threshold is not None:
            info["no_answer_threshold"] = self.no_answer_threshold
        return info

    def apply_info(self, info: dict[str, Any]) -> None:
        """Take a bundle's no-answer threshold (checked: a number from 0 to 1)."""
        if info.get("no_answer_threshold") is not None:
            self.no_answer_threshold = check_threshold(info["no_answer_threshold"])

    def trivial_score(self, references: list[Any]) -> float | None:
        """F1 of answering nothing: the share of unanswerable questions (0 without any)."""
        return exact_match_f1([""] * len(references), references)["f1"] if references else 0.0

    def calibrate(self, references: list[Any], predict: Callable[[], list[Any]]) -> dict[str, Any]:
        """On validation data with unanswerable questions, choose and keep the no-answer
        threshold that maximises F1 (on predictions made with none); else nothing."""
        if not has_unanswerable(references):
            return {}
        self.no_answer_threshold = None
        predictions = predict()
        shares = [no_answer_share(p.score, p.null) for p in predictions]
        self.no_answer_threshold = round(best_threshold(references, predictions, shares), 6)
        return {"no_answer_threshold": self.no_answer_threshold}

    def pop_notes(self) -> list[str]:
        """How many contexts encoding split into windows since the last call, then reset."""
        notes = []
        if self.split:
            notes.append(
                f"{self.split} of {self.encoded} contexts did not fit max_length "
                f"{self.max_length} with their question and were split into "
                f"{self.windows} overlapping windows"
            )
        if self.answers_cut:
            notes.append(
                f"{self.answers_cut} answers fit in no single window (longer than a window's "
                "overlap): trained as 'no answer' and out of reach; raise --max-length"
            )
        self.encoded = self.split = self.windows = self.answers_cut = 0
        return notes

    def build_head(self, hidden_size: int) -> Head:
        return SpanQAHead(hidden_size)

    def encode(self, example: dict[str, Any]) -> dict[str, Any]:
        """The first window of :meth:`encode_windows` (the whole example when it fits)."""
        first = self.encode_windows(example)[0]
        first.pop("window", None)
        return first

    def encode_windows(self, example: dict[str, Any]) -> list[dict[str, Any]]:
        """Tokenise question + context into one row, or overlapping windows of the context.

        Returns:
            One feature dict per window: model inputs plus ``offsets`` (character span in
            the context per token), ``context_mask`` (1 on context tokens), ``context``
            (the string), ``window`` ([i, n], when there are several), and with answers
            ``start_positions``/``end_positions`` of the first answer (0, the CLS token,
            in a window that does not hold all of it, or when there is none).
        """
        question, context = example.get("question"), example.get("context")
        if not isinstance(question, str) or not question.strip():
            raise DataError("an example has no question")
        if not isinstance(context, str) or not context.strip():
            raise DataError("an example has no context")
        question_tokens = len(self.tokenizer(question, add_special_tokens=False)["input_ids"])
        room = self.max_length - question_tokens - self.tokenizer.num_special_tokens_to_add(True)
        if room < 1:
            raise DataError(
                f"cannot fit question and context into {self.max_length} tokens: the "
                f"question alone takes {question_tokens}"
            )
        try:
            encoded = self.tokenizer(
                question,
                context,
                truncation="only_second",
                max_length=self.max_length,
                stride=min(self.stride, room // 2),  # the tokenizer needs stride < room
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
            )
        except Exception as exc:  # the tokenizers library raises its own exception types
            raise DataError(
                f"cannot fit question and context into {self.max_length} tokens: {exc}"
            ) from None
        count = len(encoded["input_ids"])
        answers = example.get("answers")
        windows = []
        for index in range(count):
            context_mask = [int(s == CONTEXT_SEQUENCE) for s in encoded.sequence_ids(index)]
            offsets = [
                list(span) if keep else [0, 0]
                for span, keep in zip(encoded["offset_mapping"][index], context_mask, strict=True)
            ]
            keep = ("input_ids", "attention_mask", "token_type_ids")
            features: dict[str, Any] = {k: list(encoded[k][index]) for k in keep if k in encoded}
            features.update(offsets=offsets, context_mask=context_mask, context=context)
            if count > 1:
                features["window"] = [index, count]
            if answers is not None:
                start, end = self._answer_positions(answers, offsets, context_mask)
                features.update(start_positions=start, end_positions=end)
            windows.append(features)
        self.encoded += 1
        self.split += count > 1
        self.windows += count if count > 1 else 0
        if answers is not None and answers.get("text"):
            self.answers_cut += all(w["start_positions"] == NO_ANSWER_POSITION for w in windows)
        return windows

    @staticmethod
    def _answer_positions(
        answers: dict[str, list], offsets: list[list[int]], context_mask: list[int]
    ) -> tuple[int, int]:
        """Token positions of the first answer's first and last character in this window."""
        if not answers.get("text"):
            return 0, 0  # no answer: point at CLS, as SQuAD 2.0 training does
        char_start = int(answers["answer_start"][0])
        char_end = char_start + len(answers["text"][0])
        tokens = [i for i, keep in enumerate(context_mask) if keep]
        if not tokens or offsets[tokens[0]][0] > char_start or offsets[tokens[-1]][1] < char_end:
            return 0, 0  # the answer (or part of it) lies outside this window
        start = next(i for i in tokens if offsets[i][1] > char_start)
        end = next(i for i in reversed(tokens) if offsets[i][0] < char_end)
        return start, end

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collate_inputs(features)
        batch["context_mask"] = pad_rows([f["context_mask"] for f in features], 0)
        width = batch["input_ids"].shape[1]
        batch["offsets"] = torch.tensor(
            [f["offsets"] + [[0, 0]] * (width - len(f["offsets"])) for f in features]
        )  # (B, T, 2)
        # decode() must return answer text, and batches hold only tensors (trainers
        # move them to a device wholesale), so the contexts travel as code points.
        batch["context_chars"] = pad_rows([[ord(c) for c in f["context"]] for f in features], -1)
        if "start_positions" in features[0]:
            batch["start_positions"] = torch.tensor([f["start_positions"] for f in features])
            batch["end_positions"] = torch.tensor([f["end_positions"] for f in features])
        return batch

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        start_logits, end_logits = logits.float().unbind(-1)  # (B, T) each
        # Padding must not take probability mass; CLS (0) stays, it is the no-answer target.
        pad = batch["attention_mask"] == 0
        start_logits = start_logits.masked_fill(pad, torch.finfo(torch.float32).min)
        end_logits = end_logits.masked_fill(pad, torch.finfo(torch.float32).min)
        start_loss = F.cross_entropy(start_logits, batch["start_positions"])
        end_loss = F.cross_entropy(end_logits, batch["end_positions"])
        return (start_loss + end_loss) / 2

    def decode(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        """The answer text of each row, carrying its probability (:class:`ScoredAnswer`)."""
        answers = []
        for i, row in enumerate(logits):
            mask = batch["context_mask"][i]
            start, end, score = best_span(row[:, 0], row[:, 1], mask)
            chars = batch["context_chars"][i]
            context = "".join(map(chr, chars[chars >= 0].tolist()))
            offsets = batch["offsets"][i]
            text = context[int(offsets[start, 0]) : int(offsets[end, 1])]
            answers.append(ScoredAnswer(text, score, null_probability(row[:, 0], row[:, 1], mask)))
        return answers

    def merge_window_predictions(self, predictions: list[Any]) -> Any:
        """One context's answer: the most probable of its windows' spans (decoded or
        formatted), or nothing when the threshold says the context holds no answer."""
        best = max(predictions, key=_score_of)
        null = min(_null_of(p) for p in predictions)  # one window holding it is enough
        if isinstance(best, dict):
            best = {**best, "no_answer_score": null}
        else:
            best = ScoredAnswer(best, best.score, null)
        share = no_answer_share(_score_of(best), null)
        if self.no_answer_threshold is None or share <= self.no_answer_threshold:
            return best
        if isinstance(best, dict):
            # The answer given is "none", and its score that of "none".
            return {"answer": "", "start": None, "end": None, "score": null, "no_answer": True}
        return ScoredAnswer("", best.score, null)

    def references(self, examples: list[dict[str, Any]]) -> list[Any]:
        # An unanswerable question's reference is the empty answer (SQuAD 2.0's rule).
        return [list(ex["answers"]["text"]) or [""] for ex in examples]

    def metrics(self, references: list[Any], predictions: list[Any]) -> dict[str, Any]:
        scores: dict[str, Any] = exact_match_f1(predictions, references)
        if has_unanswerable(references):
            scores.update(breakdown(references, predictions))
        return scores

    def parse_input(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, dict):
            question, context = raw.get("question"), raw.get("context")
            if (
                isinstance(question, str)
                and question.strip()
                and isinstance(context, str)
                and context.strip()
            ):
                return {"question": question, "context": context}
        raise DataError("each input must be an object with non-empty 'question' and 'context'")

    def format_prediction(
        self, example: dict[str, Any], logits: torch.Tensor, features: dict[str, Any]
    ) -> dict:
        """The answer with its character offsets into ``example["context"]`` and its probability."""
        length = len(features["input_ids"])
        logits = logits[:length]  # drop the batch's padding
        mask = torch.tensor(features["context_mask"], device=logits.device)
        start, end, score = best_span(logits[:, 0], logits[:, 1], mask)
        char_start, char_end = features["offsets"][start][0], features["offsets"][end][1]
        context = example["context"]
        return {
            "answer": context[char_start:char_end],
            "start": char_start,
            "end": char_end,
            "score": score,
            "no_answer_score": null_probability(logits[:, 0], logits[:, 1], mask),
        }


def _null_of(prediction: Any) -> float:
    """A window's probability of holding no answer (formatted dict or ScoredAnswer)."""
    if isinstance(prediction, dict):
        return float(prediction.get("no_answer_score", 0.0))
    return float(getattr(prediction, "null", 0.0))


def _score_of(prediction: Any) -> float:
    """A window answer's probability: ``score`` of a formatted dict or a ScoredAnswer."""
    if isinstance(prediction, dict):
        return float(prediction["score"])
    return float(getattr(prediction, "score", 0.0))
