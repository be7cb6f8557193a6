"""Tiny causal-LM / seq2seq models with a matching word-level tokenizer, built offline."""

from __future__ import annotations

import pytest
from tests.tiny import tiny_model

WORDS = [
    "translate",
    "to",
    "spanish",
    ":",
    "the",
    "a",
    "cat",
    "dog",
    "house",
    "red",
    "big",
    "small",
    "is",
    "el",
    "un",
    "gato",
    "perro",
    "casa",
    "rojo",
    "grande",
    "pequeño",
    "es",
    "summarize",
    "this",
    "paper",
    "we",
    "propose",
    "method",
    "results",
    "show",
    "good",
    "bad",
    ".",
    ",",
    "?",
    "!",
    "user",
    "assistant",
    "system",
    "hello",
    "hi",
    "how",
    "are",
    "you",
    "yes",
    "no",
    "one",
    "two",
    "three",
    "four",
    "five",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }} : {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant :{% endif %}"
)


def word_tokenizer(chat: bool = False, eos_suffix: bool = False):
    """A fast word-level tokenizer: <pad>=0, </s>=1, <unk>=2, <s>=3, then the words (< 97 ids).

    ``chat`` sets a ChatML-like template; ``eos_suffix`` appends </s> to every encoding
    (as T5's tokenizer does).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(dict.fromkeys(["<pad>", "</s>", "<unk>", "<s>", *WORDS]))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    if eos_suffix:
        backend.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", vocab["</s>"])]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=64,
    )
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def lm_model(arch: str, tokenizer):
    """``tests.tiny.tiny_model(arch)`` with special-token ids that match ``tokenizer``."""
    model = tiny_model(arch)
    for config in (model.config, model.generation_config):
        config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.bos_token_id = tokenizer.bos_token_id
    if arch == "t5":
        model.config.decoder_start_token_id = tokenizer.pad_token_id
        model.generation_config.decoder_start_token_id = tokenizer.pad_token_id
    return model


@pytest.fixture
def tokenizer():
    return word_tokenizer()


@pytest.fixture
def chat_tokenizer():
    return word_tokenizer(chat=True)
