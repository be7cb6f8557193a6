"""What the composition tests share: part bundles on the tiny BERT, a model holding a
composition beside its parts, and per-layer inputs."""

from __future__ import annotations

from pathlib import Path

import torch
from tests.lifecycle.helpers import LABELS, make_bundle
from tests.tiny import tiny_model

from adapterkit.host import AdapterHost
from adapterkit.lifecycle.compose_bundles import compose_bundles
from adapterkit.model import AdaptedModel

FFN_OUT = r"(.*\.)?layer\.\d+\.output\.dense"
"""The layers a Pfeiffer adapter adapts on BERT: a LoRA given this pattern matches them."""


def parts(folder: Path) -> dict[str, Path]:
    """Three part bundles with moved weights, all on the FFN output of the tiny BERT: two
    Pfeiffer adapters (2 and 3 labels) and a LoRA (no head)."""
    found = {
        "a": folder / "a",
        "b": folder / "b",
        "lora": folder / "lora",
    }
    make_bundle(found["a"], "pfeiffer", seed=1, labels=LABELS)
    make_bundle(found["b"], "pfeiffer", seed=2, labels=["x", "y", "z"])
    make_bundle(found["lora"], "lora", seed=3, target_modules=[FFN_OUT])
    return found


def composed(folder: Path, mode: str, names: list[str], bundles: dict[str, Path]) -> Path:
    """A composition bundle of ``names`` (``mode``), keeping the first part's head."""
    out = folder / f"{mode}-{'-'.join(names)}"
    compose_bundles([bundles[n] for n in names], out, mode, head_from="1")
    return out


def model_with(bundles: dict[str, Path]) -> AdaptedModel:
    """The tiny BERT with every bundle loaded under its key, in eval mode."""
    model = AdaptedModel(tiny_model("bert"))
    for name, path in bundles.items():
        model.load_adapter(path, name)
    return model.eval()


def hosts_of(model: AdaptedModel, name: str) -> dict[str, AdapterHost]:
    """The layers adapter ``name`` adapts, by name."""
    return {
        host_name: host
        for host_name, host in model.base.named_modules()
        if isinstance(host, AdapterHost) and name in host.adapters
    }


def layer_input(host: AdapterHost, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random layer input (2, 5, in) and the frozen layer's output for it."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, host.features()[0], generator=generator)
    return x, host.base_layer(x)


def composed_key(key: str, targets: list[str], place: int) -> str:
    """Where a part's tensor ``adapter.<layer>.<param>`` sits in a composition bundle:
    ``adapter.<layer>.parts.<place>.<param>`` (the layer found among the part's targets)."""
    layer = max((t for t in targets if key.startswith(f"adapter.{t}.")), key=len)
    return f"adapter.{layer}.parts.{place}.{key[len(f'adapter.{layer}.') :]}"
