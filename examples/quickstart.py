"""The README's Python API example on the real MiniLM (from its pinned wheel).

Wrap a model, add a Houlsby adapter and a LoRA, print the trainable-parameter
report, save, load into a fresh base, and compare outputs.

    .venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from adapterkit import AdaptedModel, ClassificationHead, load_base, load_tokenizer, make_config


def main(out_dir: Path) -> dict[str, float]:
    tokenizer = load_tokenizer("minilm")
    model = AdaptedModel(load_base("minilm"))  # base weights frozen

    model.add_adapter(
        "topic",
        make_config("houlsby", reduction_factor=16),
        head=ClassificationHead(hidden_size=384, num_labels=6),
    )
    model.add_adapter("style", make_config("lora", r=8, alpha=16))
    for name in model.adapter_names:
        print(f"{name}: {model.parameter_report(name)}")

    # Pretend-train: give the adapters non-zero weights so they change outputs.
    torch.manual_seed(0)
    with torch.no_grad():
        for name in model.adapter_names:
            for param in model.adapter_parameters(name).values():
                param.normal_(std=0.02)

    batch = tokenizer(
        ["Who wrote Hamlet?", "How far is the moon?"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**batch, adapter="topic").last_hidden_state  # (B, T, 384)
        logits = model.head_logits("topic", hidden, batch["attention_mask"])  # (B, 6)
        mixed = model(**batch, adapter=["topic", "style"]).last_hidden_state  # one adapter per row

    bundle = model.save_adapter("topic", out_dir / "topic")
    size = sum(f.stat().st_size for f in bundle.iterdir())
    print(f"bundle {bundle} holds {size / 1024:.0f} KiB")

    fresh = AdaptedModel(load_base("minilm"))
    fresh.load_adapter(bundle)
    with torch.no_grad():
        hidden2 = fresh(**batch, adapter="topic").last_hidden_state
        logits2 = fresh.head_logits("topic", hidden2, batch["attention_mask"])
    diff = (logits - logits2).abs().max().item()
    print(f"max |logits(original) - logits(reloaded)| = {diff:.2e}")
    return {
        "topic_percent": model.parameter_report("topic").percent,
        "style_percent": model.parameter_report("style").percent,
        "bundle_bytes": float(size),
        "max_diff": diff,
        "mixed_rows": float(mixed.shape[0]),
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
