"""Find target layers by name and wrap them in :class:`~adapterkit.host.AdapterHost`.

Targets are leaf ``nn.Linear``/``Conv1D`` modules whose dotted name equals a
pattern, ends with ``"." + pattern``, or fully matches it as a regex. Each
method config names *roles* (``attn_out``, ``ffn_out``, ``lora``); this module
maps roles to per-architecture default patterns. Unknown architectures get an
error listing the candidate layer names so users can pass their own.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, fields

import regex
import torch
from torch import nn

from adapterkit.errors import AdapterkitError
from adapterkit.fingerprint import is_adapter_parameter
from adapterkit.host import LEAF_TYPES, AdapterHost, layer_features
from adapterkit.methods.base import AdapterConfig, LayerSpec
from adapterkit.methods.base_tuning import BaseTuning, is_norm_layer

log = logging.getLogger("adapterkit")
MAX_PATTERN_CHARS = 1000
MATCH_SECONDS = 0.1
"""Time bound of one pattern against one layer name (real ones take microseconds)."""


@dataclass(frozen=True)
class ArchDefaults:
    """Default target patterns (full-match regexes) for one architecture family."""

    attn_out: str
    """Attention output projection (Houlsby's first adapter sits on its output)."""
    ffn_out: str
    """FFN down-projection (Houlsby's second, Pfeiffer's only adapter)."""
    ffn_in: str
    """A layer whose input is the FFN block input (tapped for parallel adapters)."""
    attn_kv: str
    """Attention key and value projections (IA3 rescales their outputs; GPT-2's fused
    c_attn holds the query too)."""
    lora: str
    """LoRA targets: every linear layer inside the blocks but the key projection
    (attention query/value/output and the FFN). Adapting every layer, as QLoRA (Dettmers
    et al. 2023) found necessary to match full fine-tuning, beat query/value alone by 3 F1
    on CoNLL-2003 with MiniLM. The key is left out because it reaches the attention scores
    only through q·k, which a low-rank change of the query already moves: without it,
    MiniLM's validation scores stayed level (TREC-6 94.7 vs 94.7, CoNLL-2003 proxy 83.8 vs
    83.6; docs/defaults_study.md) with a ninth fewer LoRA weights. GPT-2's fused c_attn
    holds q, k and v in one layer, so there all three stay adapted."""


_BERT = ArchDefaults(
    attn_out=r"(.*\.)?attention\.output\.dense",
    ffn_out=r"(.*\.)?layer\.\d+\.output\.dense",
    ffn_in=r"(.*\.)?layer\.\d+\.intermediate\.dense",
    attn_kv=r"(.*\.)?attention\.self\.(key|value)",
    lora=r"(.*\.)?(attention\.self\.(query|value)|attention\.output\.dense|layer\.\d+\.(intermediate|output)\.dense)",
)
_LLAMA = ArchDefaults(
    attn_out=r"(.*\.)?self_attn\.o_proj",
    ffn_out=r"(.*\.)?mlp\.down_proj",
    ffn_in=r"(.*\.)?mlp\.up_proj",
    attn_kv=r"(.*\.)?self_attn\.(k_proj|v_proj)",
    lora=r"(.*\.)?(self_attn\.(q_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))",
)
_BART = ArchDefaults(
    attn_out=r"(.*\.)?self_attn\.out_proj",
    ffn_out=r"(.*\.)?layers\.\d+\.fc2",
    ffn_in=r"(.*\.)?layers\.\d+\.fc1",
    attn_kv=r"(.*\.)?(self_attn|encoder_attn)\.(k_proj|v_proj)",
    lora=r"(.*\.)?((self_attn|encoder_attn)\.(q_proj|v_proj|out_proj)|layers\.\d+\.(fc1|fc2))",
)

ARCH_DEFAULTS: dict[str, ArchDefaults] = {
    **dict.fromkeys(["bert", "roberta", "xlm-roberta", "camembert", "electra"], _BERT),
    "distilbert": ArchDefaults(
        attn_out=r"(.*\.)?attention\.out_lin",
        ffn_out=r"(.*\.)?ffn\.lin2",
        ffn_in=r"(.*\.)?ffn\.lin1",
        attn_kv=r"(.*\.)?attention\.(k_lin|v_lin)",
        lora=r"(.*\.)?(attention\.(q_lin|v_lin|out_lin)|ffn\.(lin1|lin2))",
    ),
    "gpt2": ArchDefaults(
        attn_out=r"(.*\.)?attn\.c_proj",
        ffn_out=r"(.*\.)?mlp\.c_proj",
        ffn_in=r"(.*\.)?mlp\.c_fc",
        attn_kv=r"(.*\.)?attn\.c_attn",
        lora=r"(.*\.)?(attn\.(c_attn|c_proj)|mlp\.(c_fc|c_proj))",
    ),
    **dict.fromkeys(["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "smollm3"], _LLAMA),
    **dict.fromkeys(
        ["t5", "mt5", "umt5"],
        ArchDefaults(
            attn_out=r"(.*\.)?SelfAttention\.o",
            ffn_out=r"(.*\.)?DenseReluDense\.wo",
            ffn_in=r"(.*\.)?DenseReluDense\.wi(_0)?",
            attn_kv=r"(.*\.)?(SelfAttention|EncDecAttention)\.(k|v)",
            lora=r"(.*\.)?((SelfAttention|EncDecAttention)\.(q|v|o)|DenseReluDense\.(wi|wi_0|wi_1|wo))",
        ),
    ),
    **dict.fromkeys(["bart", "mbart"], _BART),
}


def name_matches(name: str, pattern: str) -> bool:
    """Exact name, dotted suffix, or full-match regex.

    Patterns come from users and from bundles, so the regex runs with a time bound: a
    pattern that backtracks catastrophically (``(.*.*)*Z``) would otherwise hold the
    CLI, or the server's model thread, for minutes.

    Raises:
        AdapterkitError: The pattern is too long, or too slow to match one layer name.
    """
    if name == pattern or name.endswith("." + pattern):
        return True
    if len(pattern) > MAX_PATTERN_CHARS:
        raise AdapterkitError(
            f"target pattern of {len(pattern)} characters; the limit is {MAX_PATTERN_CHARS}"
        )
    try:
        return regex.fullmatch(pattern, name, timeout=MATCH_SECONDS) is not None
    except regex.error:
        return False  # not a regex: an exact name or suffix, which did not match
    except TimeoutError:
        raise AdapterkitError(
            f"target pattern {pattern!r} took over {MATCH_SECONDS} s to match one layer name "
            "(a regex that backtracks without end); give layer names, suffixes or a simpler regex"
        ) from None


def leaf_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Adaptable layers by dotted name: existing hosts, and Linear/Conv1D leaves not inside one."""
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if isinstance(module, AdapterHost):
            if isinstance(module.base_layer, LEAF_TYPES):  # not a norm hosted for norm tuning
                found[name] = module
        elif isinstance(module, LEAF_TYPES) and not name.endswith("base_layer"):
            found[name] = module
    return found


def layer_index(name: str) -> int | None:
    """The first integer path component (the layer/block index), if any."""
    for part in name.split("."):
        if part.isdigit():
            return int(part)
    return None


def block_key(name: str) -> str:
    """The name up to and including its last integer component: one transformer block's FFN."""
    parts = name.split(".")
    last = max((i for i, p in enumerate(parts) if p.isdigit()), default=-1)
    return ".".join(parts[: last + 1])


def candidate_names(model: nn.Module, limit: int = 30) -> list[str]:
    """Distinct adaptable layer names with layer indices replaced by ``*``."""
    generic = sorted({re.sub(r"\.\d+\.", ".*.", n) for n in leaf_layers(model)})
    return generic[:limit]


def model_type(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None)


def default_patterns(model: nn.Module, role: str) -> list[str]:
    """The built-in patterns for ``role`` on this model's architecture."""
    arch = model_type(model)
    if arch not in ARCH_DEFAULTS:
        raise AdapterkitError(
            f"no default targets for architecture '{arch}'; pass target_modules, e.g. from: "
            + ", ".join(candidate_names(model))
        )
    return [getattr(ARCH_DEFAULTS[arch], role)]


def layer_roles(arch: str | None, name: str) -> frozenset[str]:
    """The default roles whose built-in pattern matches layer ``name`` on architecture ``arch``
    (a ``model_type``); none on an architecture without defaults."""
    defaults = ARCH_DEFAULTS.get(arch)
    if defaults is None:
        return frozenset()
    return frozenset(
        role.name for role in fields(defaults) if name_matches(name, getattr(defaults, role.name))
    )


def resolve_targets(model: nn.Module, config: AdapterConfig) -> list[str]:
    """Dotted names of the layers ``config`` adapts on ``model``, in module order."""
    fixed = config.target_layers(model)
    if fixed is not None:  # a method that sits at one known place (prompt tuning)
        return fixed
    if config.target_modules:
        patterns = list(config.target_modules)
    elif not config.roles():
        return []  # a head-only slot (the head/full baselines)
    else:
        patterns = [p for role in config.roles() for p in default_patterns(model, role)]
    layers = [
        name
        for name in leaf_layers(model)
        if config.layers is None or layer_index(name) in config.layers
    ]
    matched = {p: [name for name in layers if name_matches(name, p)] for p in patterns}
    hit = {name for found in matched.values() for name in found}
    names = [name for name in layers if name in hit]  # module order
    idle = [p for p, found in matched.items() if not found]
    if names and idle:
        log.warning("target pattern(s) %s match no layer; the others adapt %d", idle, len(names))
    if not names:
        raise AdapterkitError(
            f"target patterns {patterns} match no Linear/Conv1D layer"
            + (f" in layers {config.layers}" if config.layers is not None else "")
            + "; candidates: "
            + ", ".join(candidate_names(model))
        )
    return names


def ensure_host(model: nn.Module, name: str) -> AdapterHost:
    """The host at ``name``, wrapping the leaf layer there on first use."""
    module = model.get_submodule(name)
    if isinstance(module, AdapterHost):
        return module
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    host = AdapterHost(module)
    host.train(module.training)  # a new module defaults to train mode; follow the model's
    setattr(parent, child, host)
    return host


def find_block_tap(model: nn.Module, target: str) -> str:
    """A layer in ``target``'s block whose input is the FFN block input (parallel adapters).

    Known architectures name it in :data:`ARCH_DEFAULTS` (``ffn_in``). On others the
    block's layers are matched by shape instead: the FFN's input layers (the up-projection,
    or a gate beside it, which reads the same input) map the width the target writes to
    the width the target reads.
    """
    key = block_key(target)
    layers = {name: layer for name, layer in leaf_layers(model).items() if block_key(name) == key}
    arch = model_type(model)
    if arch in ARCH_DEFAULTS:
        pattern = ARCH_DEFAULTS[arch].ffn_in
        found = [name for name in layers if name_matches(name, pattern)]
        wanted = f"matching {pattern}"
    else:
        reads, writes = layer_features(_unwrapped(layers[target]))
        found = [
            name
            for name, layer in layers.items()
            if name != target and layer_features(_unwrapped(layer)) == (writes, reads)
        ]
        wanted = f"mapping width {writes} to {reads} (the FFN's up-projection)"
    if not found:
        raise AdapterkitError(
            f"a parallel adapter on '{target}' reads its FFN block input, but block '{key}' has "
            f"no layer {wanted}; target the FFN's down-projection, e.g. from: "
            + ", ".join(candidate_names(model))
        )
    return found[0]


def _unwrapped(layer: nn.Module) -> nn.Module:
    return layer.base_layer if isinstance(layer, AdapterHost) else layer


def inject_adapter(model: nn.Module, adapter_name: str, config: AdapterConfig) -> list[str]:
    """Wrap the target layers of ``model`` and add one adapter module named ``adapter_name`` to each.

    Returns the dotted names of the adapted layers.
    """
    targets = resolve_targets(model, config)
    config.prepare_model(model, targets)
    for target in targets:
        host = ensure_host(model, target)
        tap_features = None
        if config.reads_block_input(target):
            tap_name = find_block_tap(model, target)
            tap = ensure_host(model, tap_name)
            tap.tap_key = block_key(tap_name)
            host.reads_block[adapter_name] = tap.tap_key
            tap_features = tap.features()[0]
        in_features, out_features = host.features()
        spec = LayerSpec(
            target, in_features, out_features, tap_features, layer_roles(model_type(model), target)
        )
        module = config.build_layer(spec, host.base_weights())
        weight = host.base_layer.weight
        # A quantized layer stores integers; its adapters train in full precision (QLoRA).
        dtype = weight.dtype if weight.is_floating_point() else torch.float32
        module.train(host.training)
        host.adapters[adapter_name] = module.to(device=weight.device, dtype=dtype)
    for name in tuned_layers(model, config):
        host = ensure_host(model, name)
        tuning = BaseTuning(host.base_layer)
        tuning.train(host.training)
        host.base_tuning[adapter_name] = tuning
    return targets


def tuned_layers(model: nn.Module, config: AdapterConfig) -> list[str]:
    """The layers whose bias (``train_bias``) or norm (``train_norms``) the adapter tunes.

    Biases: every Linear/Conv1D layer with a bias inside the transformer blocks (those with
    a layer index; a pooler or LM head is not part of what a head reads). Norms: every
    normalisation layer, the embedding and final norms included when ``layers`` is unset.

    Raises:
        AdapterkitError: The option is on but the base has no such layer (Llama's linear
            layers have no bias).
    """
    names: list[str] = []
    for option, wanted in (("train_bias", _has_bias), ("train_norms", _is_tunable_norm)):
        if not getattr(config, option):
            continue
        found = [
            name
            for name, module in model.named_modules()
            if wanted(name, module)
            and (config.layers is None or layer_index(name) in config.layers)
        ]
        if not found:
            flag = "--" + option.replace("_", "-")
            what = "bias in its blocks' linear layers" if option == "train_bias" else "norm layer"
            raise AdapterkitError(f"{config.method}: {flag}: this base has no {what} to tune")
        names.extend(n for n in found if n not in names)
    return names


def _unhosted(name: str, module: nn.Module) -> nn.Module | None:
    """The layer at ``name`` as the base built it: a host's own layer; None for the copy
    inside a host (reached again as ``<host>.base_layer``) and for adapters' own layers."""
    if name.endswith("base_layer") or is_adapter_parameter(name + "."):
        return None
    return module.base_layer if isinstance(module, AdapterHost) else module


def _has_bias(name: str, module: nn.Module) -> bool:
    layer = _unhosted(name, module)
    return (
        isinstance(layer, LEAF_TYPES)
        and getattr(layer, "bias", None) is not None
        and layer_index(name) is not None
    )


def _is_tunable_norm(name: str, module: nn.Module) -> bool:
    layer = _unhosted(name, module)
    return layer is not None and is_norm_layer(layer)


def remove_adapter(model: nn.Module, adapter_name: str) -> None:
    """Delete one adapter everywhere and unwrap hosts left with nothing to do."""
    hosts = {n: m for n, m in model.named_modules() if isinstance(m, AdapterHost)}
    for host in hosts.values():
        if adapter_name in host.adapters:
            if host.merged == adapter_name:
                host.unmerge()
            del host.adapters[adapter_name]
            host.reads_block.pop(adapter_name, None)
        if adapter_name in host.base_tuning:
            if host.merged == adapter_name:
                host.unmerge()
            del host.base_tuning[adapter_name]
    still_read = {key for host in hosts.values() for key in host.reads_block.values()}
    for name, host in hosts.items():
        if host.tap_key is not None and host.tap_key not in still_read:
            host.tap_key = None
        if host.is_empty():
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, host.base_layer)
