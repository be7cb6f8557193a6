"""An AdaLoRA adapter trained by peft (its rank schedule run by peft's own
``update_and_allocate``) imports as our AdaLoRA at the ranks it kept, with peft's logits,
and routes per row beside our adapters; bad AdaLoRA folders are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from tests.interop.helpers import TEXTS, run

from adapterkit.interop.describe import describe_folder
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, resolve_model

peft = pytest.importorskip("peft")

INIT_R = 4


def _peft_adalora(bert_dir: Path, out: Path) -> tuple[torch.Tensor, dict]:
    """Train a peft AdaLoRA tagger a few steps through its whole schedule, save it to
    ``out``; its logits on TEXTS and the tokenized inputs."""
    torch.manual_seed(0)
    base = transformers.AutoModelForTokenClassification.from_pretrained(bert_dir, num_labels=3)
    config = peft.AdaLoraConfig(
        task_type="TOKEN_CLS",
        init_r=INIT_R,
        target_r=2,
        total_step=12,
        tinit=2,
        tfinal=2,
        deltaT=1,
        lora_alpha=16,
        target_modules=["query", "value", "dense"],
    )
    trained = peft.get_peft_model(base, config)
    tokenizer = transformers.AutoTokenizer.from_pretrained(bert_dir)
    inputs = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    inputs.pop("token_type_ids", None)
    labels = torch.randint(0, 3, inputs["input_ids"].shape)
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=5e-2)
    for step in range(12):
        trained(**inputs, labels=labels).loss.backward()
        optimizer.step()
        trained.base_model.update_and_allocate(step)  # peft's schedule, as its docs say
        optimizer.zero_grad()
    trained.eval().save_pretrained(out)
    with torch.no_grad():
        return trained(**inputs).logits, inputs


@pytest.mark.parametrize("real", [False, pytest.param(True, marks=pytest.mark.real)])
def test_a_peft_adalora_imports_at_its_kept_ranks_with_peft_logits(
    real: bool, bert_dir: Path, tmp_path: Path
) -> None:
    if real:  # the real MiniLM, as a peft user would have trained on it
        bert_dir = Path(resolve_model("minilm"))
    theirs, inputs = _peft_adalora(bert_dir, tmp_path / "from-peft")
    pattern = json.loads((tmp_path / "from-peft" / "adapter_config.json").read_text())
    kept = {key.removesuffix(".lora_E"): sum(mask) for key, mask in pattern["rank_pattern"].items()}
    assert len(set(kept.values())) > 1  # the schedule left layers at ranks of their own

    argv = ["--model", str(bert_dir), "--labels", "O", "B-PER", "B-LOC", "--name", "tagger"]
    code, err = run("import", str(tmp_path / "from-peft"), "--out", str(tmp_path / "b"), *argv)
    assert code == 0, err
    assert describe_folder(tmp_path / "from-peft")["rank"] == INIT_R  # what info shows
    model = AdaptedModel(load_base(str(bert_dir)), name_or_path=str(bert_dir))
    assert model.load_adapter(tmp_path / "b") == "tagger"
    config = model.configs["tagger"]
    assert config.method == "adalora" and config.r == INIT_R
    assert {f"bert.{layer}": rank for layer, rank in config.rank_pattern.items()} == kept
    torch.manual_seed(1)
    model.add_adapter("ours", make_config("lora", r=2))
    with torch.no_grad():
        for param in model.adapter_parameters("ours").values():
            param.add_(torch.randn(param.shape) * 0.3)
        hidden = model(**inputs, adapter="tagger").last_hidden_state
        mixed = model(**inputs, adapter=["tagger", "ours", "tagger"]).last_hidden_state
    torch.testing.assert_close(model.head_logits("tagger", hidden), theirs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mixed[[0, 2]], hidden[[0, 2]], rtol=1e-5, atol=1e-6)


def test_bad_peft_adalora_folders_are_refused_in_one_line(bert_dir: Path, tmp_path: Path) -> None:
    _peft_adalora(bert_dir, tmp_path / "peft")
    config_file = tmp_path / "peft" / "adapter_config.json"
    good = json.loads(config_file.read_text())
    some_key = next(iter(good["rank_pattern"]))
    for number, (changes, says) in enumerate(
        [
            ({"init_r": 0}, "init_r must be a positive integer"),
            ({"init_r": 1, "rank_pattern": None}, "at most init_r=1 ranks"),
            ({"lora_alpha": "x"}, "lora_alpha must be a number"),
            ({"rank_pattern": [1]}, "rank_pattern must be an object"),
            ({"rank_pattern": {**good["rank_pattern"], some_key: [True]}}, "true/false values"),
            ({"rank_pattern": {**good["rank_pattern"], "bert.x.lora_E": [True] * 4}}, "bert.x"),
            ({"rank_pattern": {"nowhere": [True] * 4}}, "names no layer's lora_E"),
            (
                {"rank_pattern": {**good["rank_pattern"], some_key: [False] * 4}},
                "but rank_pattern keeps 0",
            ),
        ]
    ):
        config_file.write_text(json.dumps({**good, **changes}))
        out = tmp_path / f"bad{number}"
        code, err = run(
            "import", str(tmp_path / "peft"), "--model", str(bert_dir), "--out", str(out)
        )
        assert code == 2 and err.count("\n") == 1 and says in err, err
        assert not out.exists()
