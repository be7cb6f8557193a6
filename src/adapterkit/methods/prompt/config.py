"""Configuration of prompt tuning (Lester et al. 2021): soft tokens before the input."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from adapterkit.errors import AdapterkitError
from adapterkit.methods.base import AdapterConfig, AdapterModule, BaseWeights, LayerSpec

PROMPT_INITS = ("vocab", "text")


@dataclass
class PromptConfig(AdapterConfig):
    """``num_virtual_tokens`` learned input embeddings put in front of every input.

    The base stays whole and frozen; only the soft tokens train. They are held on the
    base's input embedding layer (the encoder's, for an encoder-decoder), and
    :mod:`adapterkit.prompting` puts them in front of each routed row. Unlike the other
    methods a fresh prompt is not the identity: it starts as real token embeddings.
    """

    num_virtual_tokens: int = field(default=20, metadata={"min": 1, "max": 10_000})
    """How many soft tokens go before the input (Lester et al. found 20 close to the best;
    they take positions, so ``max_length`` plus this must fit the model's context)."""

    prompt_init: str = field(default="vocab", metadata={"choices": PROMPT_INITS})
    """Start of the soft tokens: ``vocab``, the embeddings of random vocabulary entries
    (seeded by the run's seed); ``text``, the embeddings of ``prompt_init_text``'s tokens,
    repeated or cut to ``num_virtual_tokens``."""

    prompt_init_text: str | None = None
    """The text whose token embeddings start the soft tokens (with ``prompt_init`` text),
    e.g. a description of the task."""

    prompt_init_ids: list[int] | None = field(default=None, metadata={"flag": None, "min": 0})
    """``prompt_init_text`` as token ids; a run fills it in with its tokenizer (see
    :meth:`prepare`), the Python API may give ids directly."""

    method: ClassVar[str] = "prompt"

    def __post_init__(self) -> None:
        super().__post_init__()
        # The soft tokens sit at one place, the input embeddings: there is nothing to target.
        for name, flag in (("target_modules", "--target-modules"), ("layers", "--layers")):
            if getattr(self, name):
                raise AdapterkitError(
                    f"{flag} does not apply to method 'prompt' (its soft tokens go before the "
                    "input, not into layers)"
                )
        if self.prompt_init == "vocab" and (self.prompt_init_text or self.prompt_init_ids):
            raise AdapterkitError(
                "--prompt-init-text does not apply to method 'prompt' with --prompt-init vocab; "
                "add --prompt-init text"
            )
        if self.prompt_init == "text" and not (self.prompt_init_text or self.prompt_init_ids):
            raise AdapterkitError(
                "method 'prompt' with --prompt-init text needs --prompt-init-text"
            )

    def roles(self) -> list[str]:
        return []  # no per-architecture pattern: target_layers finds the one layer

    def target_layers(self, model: nn.Module) -> list[str]:
        """The input embedding layer the encoder reads (for T5 ``encoder.embed_tokens``,
        not the ``shared`` table the decoder reads too), by its dotted name."""
        encoder_decoder = getattr(getattr(model, "config", None), "is_encoder_decoder", False)
        reader = model.get_encoder() if encoder_decoder else model  # whose input the prompt leads
        get = getattr(reader, "get_input_embeddings", None)
        table = get() if get is not None else None
        if table is None:
            raise AdapterkitError("method 'prompt' needs a base with input embeddings")
        table = getattr(table, "base_layer", table)  # already hosting another prompt
        names = [
            name
            for name, module in model.named_modules(remove_duplicate=False)
            if (module is table or getattr(module, "base_layer", None) is table)
            and not name.endswith("base_layer")
        ]
        if encoder_decoder:
            # The decoder may read the same module (T5's shared table): host the encoder's path.
            names = [n for n in names if "encoder" in n and "decoder" not in n] or names
        if not names:
            raise AdapterkitError("method 'prompt' found no input embedding layer in the base")
        return [names[0]]

    def soft_tokens(self) -> int:
        return self.num_virtual_tokens

    def prepare(self, tokenizer: Any, max_length: int, context: int | None) -> PromptConfig:
        """Check that the soft tokens and ``max_length`` fit the base's ``context``
        positions, and tokenize ``prompt_init_text`` (a run calls this before building)."""
        if context is not None and self.num_virtual_tokens + max_length > context:
            room = context - self.num_virtual_tokens
            hint = f"lower --max-length to {room}" if room > 0 else "lower --num-virtual-tokens"
            raise AdapterkitError(
                f"method 'prompt': --num-virtual-tokens {self.num_virtual_tokens} + --max-length "
                f"{max_length} exceed the model's {context} positions; {hint}"
            )
        if self.prompt_init != "text" or self.prompt_init_ids:
            return self
        ids = list(tokenizer(self.prompt_init_text, add_special_tokens=False)["input_ids"])
        if not ids:
            raise AdapterkitError(
                "method 'prompt': --prompt-init-text has no tokens; give some words"
            )
        return replace(self, prompt_init_ids=ids)

    def build(self, in_features: int, out_features: int, tap_features: int | None) -> AdapterModule:
        raise AdapterkitError("method 'prompt' is built from the input embedding table")

    def build_layer(self, spec: LayerSpec, base: BaseWeights) -> AdapterModule:
        from adapterkit.methods.prompt.layer import PromptEmbedding

        table = base.weight  # (V, C): an embedding table
        return PromptEmbedding(self.initial_tokens(table))

    def initial_tokens(self, table: torch.Tensor) -> torch.Tensor:
        """(k, C) start of the soft tokens: rows of the frozen embedding ``table`` (V, C)."""
        vocab = table.shape[0]
        if self.prompt_init == "text":
            if not self.prompt_init_ids:  # the Python API, without a run to tokenize the text
                raise AdapterkitError(
                    "method 'prompt': --prompt-init text needs the text's token ids: call "
                    "config.prepare(tokenizer, max_length, context) or give prompt_init_ids"
                )
            ids = torch.tensor(self.prompt_init_ids, dtype=torch.long)
            if int(ids.max()) >= vocab:
                raise AdapterkitError(
                    f"method 'prompt': an init token id ({int(ids.max())}) is past the "
                    f"model's {vocab} embeddings"
                )
            # Repeated or cut to length, as PEFT's TEXT init does.
            ids = ids.repeat(-(-self.num_virtual_tokens // len(ids)))[: self.num_virtual_tokens]
        else:
            # The global generator, which a run seeds with its seed before building.
            ids = torch.randint(0, vocab, (self.num_virtual_tokens,))
        return table.detach()[ids.to(table.device)].float().clone()
