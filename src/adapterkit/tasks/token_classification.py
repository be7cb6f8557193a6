"""Token classification (NER, chunking, POS): one IOB2 tag per word.

Words are tokenised with ``is_split_into_words=True``; only the FIRST sub-token of
each word carries its label (the others and the special tokens get -100, which the
loss ignores), and the prediction of a word is read from that same sub-token. This
is the BERT paper's recipe and the one seqeval-reported CoNLL numbers assume.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import torch
import torch.nn.functional as F

from adapterkit.data.conll import is_plain_tag_set
from adapterkit.errors import DataError
from adapterkit.heads import Head, TokenClassificationHead
from adapterkit.metrics import classification_metrics, ner_metrics
from adapterkit.padding import pad_rows
from adapterkit.tasks.base import Task, check_input_fields

IGNORE_INDEX = -100
NO_WORD = -1  # word id of special and padding positions
OUTSIDE = "O"
_WORD = re.compile(r"\S+")


def first_subtoken_positions(word_ids: list[int]) -> dict[int, int]:
    """Map each word index to the position of its first sub-token.

    Args:
        word_ids: Word index per token position (:data:`NO_WORD` for specials/padding).

    Returns:
        ``{word_index: position}`` for every word that kept at least one sub-token.
    """
    first: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word != NO_WORD and word not in first:
            first[word] = position
    return first


def group_entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """Entities of an IOB2 tag sequence as ``(type, first_word, last_word)``.

    Grouping follows seqeval's strict IOB2 mode, as :func:`ner_metrics` does, so the
    entities shown to users are exactly the ones that are scored: an entity starts at
    ``B-X`` and continues over ``I-X``; an ``I-X`` that continues nothing starts none.
    """
    entities: list[tuple[str, int, int]] = []
    current: list[Any] | None = None  # [type, first, last] of the open entity
    for i, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-")
        if prefix == "I" and current is not None and current[0] == kind:
            current[2] = i
            continue
        if current is not None:
            entities.append((current[0], current[1], current[2]))
            current = None
        if prefix == "B" and kind:
            current = [kind, i, i]
    if current is not None:
        entities.append((current[0], current[1], current[2]))
    return entities


class TokenClassificationTask(Task):
    """One tag per word from a per-token linear head and cross-entropy.

    Inputs longer than ``max_length`` sub-tokens are truncated; the words cut off
    (and any word the tokenizer turns into no sub-token at all) get no logits and
    are predicted ``"O"``, so a prediction always has exactly one tag per input word
    and lines up with the gold tags for :func:`ner_metrics`.
    """

    task_type = "token-classification"

    def __init__(
        self, tokenizer: Any, label_names: list[str] | None, max_length: int = 128
    ) -> None:
        super().__init__(tokenizer, label_names, max_length)
        self.encoded = self.truncated = self.words_cut = 0

    def build_head(self, hidden_size: int) -> Head:
        return TokenClassificationHead(hidden_size, len(self.label_names))

    def pop_notes(self) -> list[str]:
        """How many examples encoding truncated since the last call (the trainer logs it)."""
        notes = []
        if self.truncated:
            notes.append(
                f"{self.truncated} of {self.encoded} examples were longer than max_length "
                f"{self.max_length} sub-tokens: their last {self.words_cut} words in all "
                "were cut off (no loss, predicted 'O'); raise --max-length to keep them"
            )
        self.encoded = self.truncated = self.words_cut = 0
        return notes

    def encode(self, example: dict[str, Any]) -> dict[str, Any]:
        """Tokenise the words and align tags to first sub-tokens.

        Returns:
            ``input_ids``, ``attention_mask`` (and ``token_type_ids``), ``word_ids``
            (word index per position, -1 for specials), ``num_words``, and with tags
            ``labels`` (tag id on first sub-tokens, -100 elsewhere).
        """
        words = example.get("tokens")
        if not isinstance(words, list) or not words:
            raise DataError("an example has no tokens")
        encoded = self.tokenizer(
            words, is_split_into_words=True, truncation=True, max_length=self.max_length
        )
        word_ids = [NO_WORD if w is None else w for w in encoded.word_ids()]
        kept_words = max(word_ids, default=NO_WORD) + 1
        self.encoded += 1
        if kept_words < len(words) and len(encoded["input_ids"]) >= self.max_length:
            self.truncated += 1
            self.words_cut += len(words) - kept_words
        keep = ("input_ids", "attention_mask", "token_type_ids")
        features: dict[str, Any] = {k: list(v) for k, v in encoded.items() if k in keep}
        features["word_ids"] = word_ids
        features["num_words"] = len(words)
        if "tags" in example:
            features["labels"] = self._align_labels(example["tags"], words, word_ids)
        return features

    def _align_labels(self, tags: list[str], words: list[str], word_ids: list[int]) -> list[int]:
        if len(tags) != len(words):
            raise DataError(f"an example has {len(words)} tokens but {len(tags)} tags")
        unknown = [t for t in tags if t not in self.label_to_id]
        if unknown:
            raise DataError(
                f"tag '{unknown[0]}' is not one of the trained labels {self.label_names}"
            )
        first = set(first_subtoken_positions(word_ids).values())
        return [
            self.label_to_id[tags[w]] if pos in first else IGNORE_INDEX
            for pos, w in enumerate(word_ids)
        ]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collate_inputs(features)
        # Decoding needs the word alignment; it travels as tensors like everything else.
        batch["word_ids"] = pad_rows([f["word_ids"] for f in features], NO_WORD)
        batch["num_words"] = torch.tensor([f["num_words"] for f in features], dtype=torch.long)
        if "labels" in features[0]:
            batch["labels"] = pad_rows([f["labels"] for f in features], IGNORE_INDEX)
        return batch

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["labels"]  # (B, T)
        if not (labels != IGNORE_INDEX).any():
            # Cross-entropy over zero targets is NaN; a zero that keeps the graph is safer.
            return logits.sum() * 0.0
        flat = logits.float().reshape(-1, logits.shape[-1])  # (B*T, L)
        return F.cross_entropy(flat, labels.reshape(-1), ignore_index=IGNORE_INDEX)

    def loss_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"] != IGNORE_INDEX).sum())

    def _word_tags(
        self, logits: torch.Tensor, word_ids: list[int], num_words: int
    ) -> tuple[list[str], list[float]]:
        """Tags and their probabilities per word, from one example's logits (T, L)."""
        probs = logits.float().softmax(-1)  # (T, L)
        best_prob, best = probs.max(-1)  # (T,), (T,)
        tags, scores = [OUTSIDE] * num_words, [0.0] * num_words
        for word, pos in first_subtoken_positions(word_ids).items():
            if word < num_words:
                tags[word] = self.label_names[int(best[pos])]
                scores[word] = float(best_prob[pos])
        return tags, scores

    def decode(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        """One tag list per example, one tag per word (``"O"`` for truncated words)."""
        return [
            self._word_tags(row, word_ids, num)[0]
            for row, word_ids, num in zip(
                logits, batch["word_ids"].tolist(), batch["num_words"].tolist(), strict=True
            )
        ]

    def references(self, examples: list[dict[str, Any]]) -> list[Any]:
        return [list(ex["tags"]) for ex in examples]

    @property
    def plain_tags(self) -> bool:
        """Whether the tag set has no ``B-``/``I-`` prefixes (POS tags, IO tags, tag ids):
        such tags mark no entity spans, so they are scored word by word."""
        return is_plain_tag_set(self.label_names or ())

    @property
    def trivial_predictor(self) -> str:  # type: ignore[override]
        if self.plain_tags:
            return "tagging every word with the most frequent tag"
        return "tagging every word 'O'"

    def trivial_score(self, references: list[Any]) -> float | None:
        """0 for entity tags (tagging every word ``O`` finds no entity); for a plain tag set,
        the F1 of tagging every word with the most frequent tag (None when that is perfect)."""
        if not self.plain_tags:
            return 0.0
        words = Counter(tag for tags in references for tag in tags)
        if not words:
            return None
        majority = words.most_common(1)[0][0]
        guess = [[majority] * len(tags) for tags in references]
        score = self.metrics(references, guess)[self.primary_metric]
        return None if score >= 1.0 else float(score)

    def metrics(self, references: list[Any], predictions: list[Any]) -> dict[str, Any]:
        """Entity-level scores by the conlleval rules (the standard CoNLL-2003 measure, and
        seqeval's default), plus ``strict_f1``/``strict_precision``/``strict_recall`` by strict
        IOB2, where an ``I-X`` after ``O`` starts no entity (what :meth:`format_prediction` shows).

        A plain tag set (:attr:`plain_tags`) is scored as classification of every word:
        accuracy, macro F1 (``f1``) and per-tag scores; entity scores would need spans."""
        if self.plain_tags:
            gold = [tag for tags in references for tag in tags]
            guessed = [tag for tags in predictions for tag in tags]
            return classification_metrics(gold, guessed, self.label_names or [])
        result = ner_metrics(references, predictions, mode="lenient")
        strict = ner_metrics(references, predictions, mode="strict")
        result.update({f"strict_{k}": strict[k] for k in ("f1", "precision", "recall")})
        return result

    def parse_input(self, raw: Any) -> dict[str, Any]:
        """A string (split on whitespace) or a list of tokens → words with character offsets.

        Offsets point into ``text``: the string itself, or for a token list the tokens
        joined by single spaces.
        """
        if isinstance(raw, dict):
            check_input_fields(raw, ("text", "tokens"))
            raw = raw.get("text", raw.get("tokens"))
        if isinstance(raw, str):
            matches = list(_WORD.finditer(raw))
            words = [m.group() for m in matches]
            offsets = [(m.start(), m.end()) for m in matches]
            text = raw
        elif isinstance(raw, list) and all(isinstance(t, str) and t for t in raw):
            words, offsets, cursor = list(raw), [], 0
            for word in words:
                offsets.append((cursor, cursor + len(word)))
                cursor += len(word) + 1
            text = " ".join(words)
        else:
            raise DataError("each input must be a string or a list of non-empty token strings")
        if not words:
            raise DataError("an input has no words to tag")
        return {"tokens": words, "offsets": offsets, "text": text}

    def format_prediction(
        self, example: dict[str, Any], logits: torch.Tensor, features: dict[str, Any]
    ) -> dict:
        """Word tags and the entities they form, with character offsets into ``example["text"]``.

        An entity's score is the mean probability of its words' tags (each read at
        the word's first sub-token).
        """
        word_ids = features["word_ids"]
        tags, scores = self._word_tags(logits[: len(word_ids)], word_ids, features["num_words"])
        offsets, text = example["offsets"], example["text"]
        entities = []
        for kind, first, last in group_entities(tags):
            start, end = offsets[first][0], offsets[last][1]
            score = sum(scores[first : last + 1]) / (last - first + 1)
            entities.append(
                {"type": kind, "text": text[start:end], "start": start, "end": end, "score": score}
            )
        return {"entities": entities, "tags": tags}
