"""adapterkit: parameter-efficient fine-tuning with adapters, bundles with heads,
and one frozen base serving many adapters."""

from adapterkit.errors import AdapterkitError, BundleError, DataError
from adapterkit.heads import (
    ClassificationHead,
    SpanQAHead,
    TokenClassificationHead,
    build_head,
)
from adapterkit.methods import known_methods, make_config
from adapterkit.methods.bottleneck import BottleneckConfig
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
