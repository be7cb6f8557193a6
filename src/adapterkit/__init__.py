"""adapterkit: parameter-efficient fine-tuning with adapters, bundles with heads,
and one frozen base serving many adapters."""

# ruff: noqa: E402 (the logger below must be set before the imports that follow it)

import logging

# bitsandbytes (imported by transformers whenever peft is installed, and by --quantize)
# tries on import to fetch an optional CPU kernel from the model hub through `kernels`,
# and both warn when it cannot: on every command, offline (kernels that it skips its
# publisher check, bitsandbytes that the fetch failed). The path that kernel serves is
# turned off (models.prepare_4bit), so the warnings tell a user nothing. Set before any
# import below can bring bitsandbytes in.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
logging.getLogger("kernels._internals.hf_hub").setLevel(logging.ERROR)

from adapterkit.errors import AdapterkitError, BundleError, DataError
from adapterkit.heads import (
    ClassificationHead,
    SpanQAHead,
    TokenClassificationHead,
    build_head,
)
from adapterkit.methods import known_methods, make_config
from adapterkit.methods.bottleneck import BottleneckConfig
from adapterkit.methods.dora import DoraConfig
from adapterkit.methods.ia3 import Ia3Config
from adapterkit.methods.lora import LoraConfig
from adapterkit.model import AdaptedModel, ParameterReport
from adapterkit.models import load_base, load_tokenizer
from adapterkit.version import __version__

__all__ = [
    "AdaptedModel",
    "AdapterkitError",
    "BottleneckConfig",
    "BundleError",
    "ClassificationHead",
    "DataError",
    "DoraConfig",
    "Ia3Config",
    "LoraConfig",
    "ParameterReport",
    "SpanQAHead",
    "TokenClassificationHead",
    "__version__",
    "build_head",
    "known_methods",
    "load_base",
    "load_tokenizer",
    "make_config",
]
