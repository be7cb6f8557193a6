"""Fixtures for the task tests: a tiny fast WordPiece tokenizer and a tiny BERT, built here.

Nothing is downloaded: the vocabulary is written out below, so every sub-token split
the tests assert on is known in advance.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from adapterkit.model import AdaptedModel

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Whole words of the test sentences; "wash ##ing ##ton" makes "Washington" three sub-tokens.
WORD_LIST = (
    "john smith visited lives in new york paris the capital of france is who what where "
    "when did go to works at acme city mary was born london bob likes tea founded "
    "company by cats eat fish . , ? ' < > / wash ##ing ##ton"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A lowercasing BERT-style WordPiece tokenizer with a 124-entry vocabulary.

    Unknown words fall back to single letters (``a``, ``##b`` ...), so any word can be
    encoded; ``Washington`` splits into ``wash ##ing ##ton`` by construction.
    """
    letters = list(string.ascii_lowercase) + list(string.digits)
    vocab_list = SPECIALS + WORD_LIST.split() + letters + [f"##{c}" for c in letters]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """The tiny tokenizer (session-wide: tests only read it)."""
    return build_tokenizer()


@pytest.fixture
def tiny_bert(tokenizer: PreTrainedTokenizerFast) -> Callable[[], AdaptedModel]:
    """Factory of a seeded 2-layer, hidden-32 BERT wrapped in AdaptedModel (no adapters yet)."""

    def _make() -> AdaptedModel:
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=128,
        )
        return AdaptedModel(BertModel(config).eval())

    return _make


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run these tests on one intra-op thread, restored afterwards.

    Tiny models gain nothing from threads, and on a loaded 2-core machine two threads
    contending made the training tests ~80x slower (12 s instead of 0.15 s).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
