"""Tiny randomly initialised models (2 layers, hidden 32) and inputs, built in-process."""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 97


def tiny_model(arch: str) -> torch.nn.Module:
    """A 2-layer, hidden-32 model of the named family, in eval mode, seeded."""
    from transformers import (
        BertConfig,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        T5Config,
        T5ForConditionalGeneration,
    )

    torch.manual_seed(0)
    if arch == "bert":
        config = BertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
        )
        model = BertModel(config)
    elif arch == "roberta":
        from transformers import RobertaConfig, RobertaModel

        config = RobertaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=72,
            pad_token_id=1,
        )
        model = RobertaModel(config)
    elif arch == "distilbert":
        from transformers import DistilBertConfig, DistilBertModel

        config = DistilBertConfig(
            vocab_size=VOCAB,
            dim=32,
            n_layers=2,
            n_heads=4,
            hidden_dim=64,
            max_position_embeddings=64,
        )
        model = DistilBertModel(config)
    elif arch == "gpt2":
        config = GPT2Config(
            vocab_size=VOCAB,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            bos_token_id=1,
            eos_token_id=2,
        )
        model = GPT2LMHeadModel(config)
    elif arch == "llama":
        config = LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
        model = LlamaForCausalLM(config)
    elif arch == "t5":
        config = T5Config(
            vocab_size=VOCAB,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            decoder_start_token_id=0,
            pad_token_id=0,
        )
        model = T5ForConditionalGeneration(config)
    else:
        raise ValueError(arch)
    return model.eval()


def tiny_inputs(
    arch: str, batch: int = 3, length: int = 7, seed: int = 1
) -> dict[str, torch.Tensor]:
    """Random token ids (with one padded row) suitable for ``arch``."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[-1, -2:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if arch == "t5":
        inputs["decoder_input_ids"] = torch.randint(1, VOCAB, (batch, 5), generator=generator)
    return inputs


def main_output(outputs) -> torch.Tensor:
    """The tensor to compare: logits when the model has an LM head, else last hidden states."""
    return (
        outputs.logits
        if getattr(outputs, "logits", None) is not None
        else outputs.last_hidden_state
    )


def assert_row_matches(mixed_row: torch.Tensor, alone: torch.Tensor) -> None:
    """A row of a mixed batch equals the same row run alone, to float32 noise.

    Batched and single-row matrix products sum in different orders, and how far apart they
    land depends on the CPU's kernels and on the weights: random adapters can make a layer
    ill-conditioned (one Llama row moved 2.7e-5 in float32 where float64 agreed to 1e-16, and
    T5's logits moved 1.7e-5 on the CI machine). A routing mistake moves outputs by the
    adapter's whole effect, orders of magnitude more, so the tolerance is 1e-4 of the
    output's scale.
    """
    scale = max(1.0, alone.abs().max().item())
    torch.testing.assert_close(mixed_row, alone, rtol=1e-4, atol=1e-4 * scale)


def assert_mixed_equals_rows_alone(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], routes: list[str | None]
) -> None:
    """One batch routed per row (``routes``: an adapter name, or None for the base) gives
    each row what that row gives run alone with its adapter (:func:`assert_row_matches`)."""
    with torch.no_grad():
        mixed = main_output(model(**inputs, adapter=routes))
        for row, name in enumerate(routes):
            alone = main_output(
                model(**{k: v[row : row + 1] for k, v in inputs.items()}, adapter=name)
            )
            assert_row_matches(mixed[row : row + 1], alone)


ARCHS = ["bert", "roberta", "distilbert", "gpt2", "llama", "t5"]
METHODS = [
    "houlsby",
    "pfeiffer",
    "parallel",
    "lora",
    "ia3",
    "dora",
    "adalora",
    "prompt",
    "prefix",
    "mam",
    "unipelt",
]
BOTTLENECKS = ["houlsby", "pfeiffer", "parallel"]


def tiny_tokenizer(words: list[str]):
    """A fast WordPiece tokenizer (BERT-style specials) over ``words`` plus letters, built offline."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789?!.,'-")
    vocab_list = (
        specials + sorted(set(w.lower() for w in words)) + letters + [f"##{c}" for c in letters]
    )
    vocab = {token: i for i, token in enumerate(dict.fromkeys(vocab_list))}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )


def save_tiny_bert(directory, words: list[str], seed: int = 0):
    """Write a tiny random BERT and its tokenizer with save_pretrained; returns the directory."""
    from transformers import BertConfig, BertModel

    tokenizer = tiny_tokenizer(words)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


SENTIMENT_WORDS = ["good", "bad", "movie", "plot", "fun", "dull", "great", "awful"]
"""The vocabulary of :func:`save_tiny_sentiment`'s reviews, for :func:`save_tiny_bert`."""


def save_tiny_sentiment(directory: Path, train: int = 6, held_out: int = 2) -> Path:
    """Write train, validation and test CSVs of four short reviews (text,label), repeated
    ``train`` times in train and ``held_out`` times in the others; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = "good fun movie,pos\nbad dull plot,neg\ngreat movie,pos\nawful plot,neg\n"
    for split, times in (("train", train), ("validation", held_out), ("test", held_out)):
        (directory / f"{split}.csv").write_text("text,label\n" + rows * times)
    return directory


FINISHED = (0, 3)
"""Exit codes of a ``train`` run that finished: 0, or 3 (``EXIT_LEARNED_NOTHING``) when its
model is no better than the trivial predictor, as a tiny model trained for a step or two
is. Tests of options, resume and tracking accept both: learning is not what they check
(tests/train/test_early_stopping.py checks when 3 is right)."""
