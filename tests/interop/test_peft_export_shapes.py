"""The PEFT export on GPT-2 (Conv1D layers, PEFT's fan_in_fan_out), and its refusal of
tensors that do not fit the base's layers, checked against peft itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file
from tests.interop.helpers import TEXTS, base_logits, make_bundle, our_logits, peft_logits, run

from adapterkit.bundle import CONFIG_FILE, WEIGHTS_FILE
from adapterkit.files import sha256_file

peft = pytest.importorskip("peft")


@pytest.mark.parametrize("method", ["lora", "dora", "ia3", "adalora"])
def test_peft_loads_our_gpt2_export_with_our_logits(
    method: str, gpt2_dir: Path, tmp_path: Path
) -> None:
    """GPT-2's Conv1D layers hold (in, out) weights: the export tells PEFT (fan_in_fan_out)."""
    model = make_bundle(gpt2_dir, "causal-lm", method, tmp_path / "bundle")
    code, err = run("export", str(tmp_path / "bundle"), "--out", str(tmp_path / "peft"))
    assert code == 0, err
    assert json.loads((tmp_path / "peft" / "adapter_config.json").read_text())["fan_in_fan_out"]
    inputs = dict(
        transformers.AutoTokenizer.from_pretrained(gpt2_dir)(TEXTS[:1], return_tensors="pt")
    )
    ours = our_logits(model, "causal-lm", inputs)
    assert (ours - base_logits(model, "causal-lm", inputs)).abs().max() > 1e-3
    theirs = peft_logits(gpt2_dir, "causal-lm", tmp_path / "peft", inputs)
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("method", "param", "change", "says"),
    [
        ("lora", "lora_A.weight", lambda t: t[:, :-1], "maps 32 to 32 features"),
        ("lora", "lora_B.weight", lambda t: t[:-1], "maps 32 to"),
        ("lora", "lora_B.weight", None, "has no lora_B.weight tensor"),
        ("dora", "magnitude", lambda t: t[:-1], "wanted (32,)"),
        ("ia3", "scale", lambda t: t[:-1], "maps 32 to"),
        ("lora", "lora_A.weight", "elsewhere", "for a layer the bundle does not adapt"),
    ],
)
def test_export_refuses_tensors_that_do_not_fit_the_base(
    method: str, param: str, change, says: str, bert_dir: Path, tmp_path: Path
) -> None:
    """A bundle edited by hand (its checksums made to agree): PEFT would refuse the folder
    only when loading it, so the export refuses it now."""
    bundle = tmp_path / "bundle"
    make_bundle(bert_dir, "token-classification", method, bundle)
    tensors = load_file(bundle / WEIGHTS_FILE)
    key = next(k for k in tensors if k.endswith("." + param))
    if change is None:
        del tensors[key]
    elif change == "elsewhere":  # a copy for a layer the record does not list
        tensors[key.replace("layer.0.", "layer.9.")] = tensors[key].clone()
    else:
        tensors[key] = change(tensors[key]).contiguous()
    save_file(tensors, bundle / WEIGHTS_FILE)
    record = json.loads((bundle / CONFIG_FILE).read_text())
    entry = record["files"][WEIGHTS_FILE]
    entry["bytes"], entry["sha256"] = (
        (bundle / WEIGHTS_FILE).stat().st_size,
        sha256_file(bundle / WEIGHTS_FILE),
    )
    (bundle / CONFIG_FILE).write_text(json.dumps(record))
    code, err = run("export", str(bundle), "--out", str(tmp_path / "peft"))
    assert code == 2 and err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "peft").exists()
