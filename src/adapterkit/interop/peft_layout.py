"""How an adapterkit bundle's names and shapes correspond to a PEFT adapter folder's.

A PEFT folder is ``adapter_config.json`` (with ``peft_type``) and
``adapter_model.safetensors`` whose keys are ``base_model.model.<module path>.<param>``,
the module path being that of the transformers model PEFT wrapped: ``BertFor...`` for a
head task, so the encoder's layers sit under its ``base_model_prefix`` (``bert.``), while
a causal LM's layers sit where ours do. The head travels as PEFT's ``modules_to_save``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import transformers
from transformers.pytorch_utils import Conv1D

from adapterkit.errors import AdapterkitError

KEY_PREFIX = "base_model.model."
PEFT_TYPES = {"lora": "LORA", "dora": "LORA", "adalora": "LORA", "ia3": "IA3"}
"""Our methods PEFT has a type for (DoRA is PEFT's LoRA with ``use_dora``; a trained AdaLoRA
is a LoRA with a rank per layer, see :mod:`adapterkit.interop.adalora_export`)."""

TASK_TYPES = {
    "sequence-classification": ("SEQ_CLS", "AutoModelForSequenceClassification"),
    "token-classification": ("TOKEN_CLS", "AutoModelForTokenClassification"),
    "question-answering": ("QUESTION_ANS", "AutoModelForQuestionAnswering"),
    "causal-lm": ("CAUSAL_LM", "AutoModelForCausalLM"),
    "seq2seq": ("SEQ_2_SEQ_LM", "AutoModelForSeq2SeqLM"),
}
"""Our task type -> (PEFT task_type, the transformers class PEFT wraps for it)."""

# Parameter names inside one adapted layer: ours -> PEFT's.
ADAPTER_PARAMS = {
    "lora_A.weight": "lora_A.weight",
    "lora_B.weight": "lora_B.weight",
    "magnitude": "lora_magnitude_vector",
    "scale": "ia3_l",
}

# Sequence classification: transformers' own classification heads that compute what our
# "classification" head with cls pooling does, dense -> tanh -> linear on the first token.
# BERT's sits in two places (the base's pooler, the model's classifier); RoBERTa's is
# one module. Other families use another activation or pooling, which no export could
# reproduce.
_ROBERTA_HEAD = {"dense": "classifier.dense", "out": "classifier.out_proj"}
CLS_HEADS: dict[str, dict[str, str]] = {
    "bert": {"dense": "{base}.pooler.dense", "out": "classifier"},
    "roberta": _ROBERTA_HEAD,
    "xlm-roberta": _ROBERTA_HEAD,
    "camembert": _ROBERTA_HEAD,
}


@dataclass(frozen=True)
class PeftTarget:
    """The transformers model PEFT wraps for one bundle: where our names land in it."""

    task_type: str
    """PEFT's task_type."""
    layer_prefix: str
    """What goes before one of our layer names (``bert.`` or empty)."""
    head_map: dict[str, str]
    """Our head's module names (``out``) -> the transformers model's (``classifier``)."""

    @property
    def modules_to_save(self) -> list[str]:
        """The head's module names for PEFT's ``modules_to_save``, which PEFT matches as name
        suffixes: ``pooler`` finds ``bert.pooler``."""
        names = set()
        for path in self.head_map.values():
            inside = path.removeprefix(self.layer_prefix) if self.layer_prefix else path
            names.add(inside.split(".")[0])
        return sorted(names)


def peft_target(task: str, head: dict[str, Any] | None, config: Any) -> PeftTarget:
    """Where a bundle of task ``task`` with ``head`` lands in PEFT's model for ``config``.

    Raises:
        AdapterkitError: No transformers class for this task and architecture, or a head
            that no transformers head computes (one line that says which).
    """
    if task not in TASK_TYPES:
        raise AdapterkitError(
            f"PEFT has no task type for '{task}' bundles; exportable: {', '.join(TASK_TYPES)}"
        )
    task_type, auto_name = TASK_TYPES[task]
    model_class = _model_class(auto_name, config)
    if head is None:  # generation: the base is the whole transformers model
        return PeftTarget(task_type, "", {})
    prefix = model_class.base_model_prefix
    if head["type"] == "classification":
        return PeftTarget(task_type, prefix + ".", _classification_head(head, config, prefix))
    return PeftTarget(task_type, prefix + ".", {"out": _single_linear(model_class, config, prefix)})


def layer_widths(task: str, config: Any, names: list[str]) -> dict[str, tuple[int, int]]:
    """(in, out) of each named layer (a module path in the transformers model PEFT wraps for
    ``task``), read from that model built from ``config`` on the meta device: no weights
    are loaded, so a large base costs nothing here.

    Raises:
        AdapterkitError: A name that is no linear layer of that model.
    """
    with torch.device("meta"):
        model = _model_class(TASK_TYPES[task][1], config)(config)
    widths: dict[str, tuple[int, int]] = {}
    for name in names:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise AdapterkitError(f"the base has no layer {name}") from None
        if isinstance(module, torch.nn.Linear):
            widths[name] = (module.in_features, module.out_features)
        elif isinstance(module, Conv1D):  # GPT-2's: weight (in, out)
            widths[name] = (module.weight.shape[0], module.weight.shape[1])
        else:
            raise AdapterkitError(f"layer {name} of the base is no linear layer")
    return widths


def _model_class(auto_name: str, config: Any) -> type:
    auto = getattr(transformers, auto_name)
    try:
        return auto._model_mapping[type(config)]
    except KeyError:
        raise AdapterkitError(
            f"transformers has no {auto_name.removeprefix('Auto')} class for model type "
            f"'{config.model_type}', so PEFT could not load this adapter on it"
        ) from None


def _classification_head(head: dict[str, Any], config: Any, prefix: str) -> dict[str, str]:
    pooling = head["config"].get("pooling", "mean")
    if pooling != "cls":
        raise AdapterkitError(
            f"the head pools the {pooling} of the tokens, which no transformers classification "
            "head does (they read the first token); train with --pooling cls to export it"
        )
    layout = CLS_HEADS.get(config.model_type)
    if layout is None:
        raise AdapterkitError(
            f"transformers' {config.model_type} classification head is not dense -> tanh -> "
            f"linear on the first token, as ours; exportable families: {', '.join(CLS_HEADS)}"
        )
    return {ours: theirs.format(base=prefix) for ours, theirs in layout.items()}


def _single_linear(model_class: type, config: Any, prefix: str) -> str:
    """The one Linear layer a token-classification or QA model adds over its base."""
    with torch.device("meta"):
        model = model_class(config)
    outside = {
        name.rpartition(".")[0]
        for name, _ in model.named_parameters()
        if not name.startswith(prefix + ".")
    }
    if len(outside) != 1:
        raise AdapterkitError(
            f"{model_class.__name__} puts {sorted(outside)} over its base, not one linear "
            "layer as our head; it cannot carry this head"
        )
    return outside.pop()
