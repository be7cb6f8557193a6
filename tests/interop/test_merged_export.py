"""``export --format merged``: plain transformers loads the folder and gives our logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from tests.interop.helpers import AUTO, LABELS, TEXTS, make_bundle, our_logits, run


@pytest.mark.parametrize(
    ("task", "method"),
    [
        ("token-classification", "lora"),
        ("token-classification", "dora"),
        ("token-classification", "ia3"),
        ("token-classification", "adalora"),
        ("sequence-classification", "lora"),
        ("question-answering", "ia3"),
        ("causal-lm", "dora"),
    ],
)
def test_merged_folder_loads_in_plain_transformers_with_our_logits(
    task: str, method: str, bert_dir: Path, llama_dir: Path, tmp_path: Path, caplog
) -> None:
    model_dir = llama_dir if task == "causal-lm" else bert_dir
    model = make_bundle(model_dir, task, method, tmp_path / "bundle")
    out = tmp_path / "merged"
    caplog.clear()
    code, err = run("export", str(tmp_path / "bundle"), "--format", "merged", "--out", str(out))
    assert code == 0, err
    # The task head the base lacks is ours to fill: transformers' report of it missing
    # ("newly initialized ... Consider training") would only alarm.
    assert "LOAD REPORT" not in caplog.text
    loaded = AUTO[task].from_pretrained(out).eval()  # transformers alone, no adapterkit code
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    inputs = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    inputs.pop("token_type_ids", None)
    with torch.no_grad():
        out_put = loaded(**inputs)
    theirs = (
        torch.stack([out_put.start_logits, out_put.end_logits], dim=-1)
        if task == "question-answering"
        else out_put.logits
    )
    torch.testing.assert_close(theirs, our_logits(model, task, inputs), rtol=1e-4, atol=1e-4)
    if task in LABELS:
        assert list(loaded.config.id2label.values()) == LABELS[task]
    names = json.dumps(sorted(p.name for p in out.iterdir()))
    assert "adapter" not in names and "model.safetensors" in names


def test_merged_export_refuses_bottleneck_adapters(bert_dir: Path, tmp_path: Path) -> None:
    make_bundle(bert_dir, "token-classification", "houlsby", tmp_path / "bundle")
    code, err = run(
        "export", str(tmp_path / "bundle"), "--format", "merged", "--out", str(tmp_path / "m")
    )
    assert code == 2 and err.count("\n") == 1 and "cannot be merged" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("fmt", ["peft", "merged"])
def test_export_of_a_bundle_whose_base_cannot_be_found_is_one_line(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bundle = tmp_path / "bundle"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "bundle_v1", bundle)
    config = json.loads((bundle / "adapter_config.json").read_text())
    config["base_model"]["name_or_path"] = str(tmp_path / "no-such-model")
    (bundle / "adapter_config.json").write_text(json.dumps(config))
    code, err = run("export", str(bundle), "--format", fmt, "--out", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1 and "cannot load model" in err, err
    assert not (tmp_path / "out").exists()


def test_a_full_fine_tuning_bundle_exports_its_own_weights_and_head(
    bert_dir: Path, tmp_path: Path
) -> None:
    """``--method full`` bundles carry the base's weights: the merged folder holds them (not
    the base's originals) and the head, and gives our logits in plain transformers."""
    from adapterkit.methods import make_config
    from adapterkit.model import AdaptedModel
    from adapterkit.models import load_base, load_tokenizer
    from adapterkit.tasks import make_task

    task = "token-classification"
    model = AdaptedModel(load_base(str(bert_dir)), name_or_path=str(bert_dir), freeze_base=False)
    spec = make_task(task, load_tokenizer(str(bert_dir)), LABELS[task], 64)
    model.add_adapter("a", make_config("full"), head=spec.build_head(32), task=spec.task_info())
    torch.manual_seed(3)
    with torch.no_grad():  # "trained": every base weight moved, and the head
        for param in [*model.base.parameters(), *model.head_parameters("a").values()]:
            param.add_(torch.randn(param.shape) * 0.05)
    model.save_adapter("a", tmp_path / "bundle", include_base=True)
    out = tmp_path / "merged"
    code, err = run("export", str(tmp_path / "bundle"), "--format", "merged", "--out", str(out))
    assert code == 0, err
    loaded = AUTO[task].from_pretrained(out).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    inputs = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    inputs.pop("token_type_ids", None)
    with torch.no_grad():
        theirs = loaded(**inputs).logits
    torch.testing.assert_close(theirs, our_logits(model, task, inputs), rtol=1e-4, atol=1e-4)
