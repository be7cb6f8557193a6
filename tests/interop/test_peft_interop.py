"""PEFT folders out and in, checked against peft itself (a test-only dependency).

Export: peft loads our export onto the transformers model it expects for the task and gives
our logits. Import: an adapter trained by peft becomes a bundle that gives peft's logits and
routes per row beside our own adapters.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from tests.interop.helpers import (
    LABELS,
    TEXTS,
    WORDS,
    base_logits,
    make_bundle,
    our_logits,
    peft_logits,
    run,
)
from tests.tiny import save_tiny_bert

from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer, resolve_model
from adapterkit.tasks import make_task

peft = pytest.importorskip("peft")


@pytest.mark.parametrize("method", ["lora", "dora", "ia3", "adalora"])
@pytest.mark.parametrize(
    "task", ["token-classification", "sequence-classification", "question-answering", "causal-lm"]
)
def test_peft_loads_our_export_with_our_logits(
    task: str, method: str, bert_dir: Path, llama_dir: Path, tmp_path: Path
) -> None:
    model_dir = llama_dir if task == "causal-lm" else bert_dir
    model = make_bundle(model_dir, task, method, tmp_path / "bundle")
    code, err = run(
        "export", str(tmp_path / "bundle"), "--format", "peft", "--out", str(tmp_path / "peft")
    )
    assert code == 0, err
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["peft_type"] == ("IA3" if method == "ia3" else "LORA")
    assert config.get("use_dora", False) == (method == "dora")
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    inputs = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    inputs.pop("token_type_ids", None)
    ours = our_logits(model, task, inputs)
    theirs = peft_logits(model_dir, task, tmp_path / "peft", inputs)
    assert (ours - base_logits(model, task, inputs)).abs().max() > 1e-3  # the adapter acts
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)


PEFT_CONFIGS = {
    "lora": lambda: peft.LoraConfig(
        task_type="TOKEN_CLS", r=4, lora_alpha=8, target_modules=["query", "value"]
    ),
    "dora": lambda: peft.LoraConfig(
        task_type="TOKEN_CLS", r=4, lora_alpha=8, target_modules=["query", "value"], use_dora=True
    ),
    # A LoRA whose layers have ranks and alphas of their own (rsLoRA's scaling too) comes
    # in as AdaLoRA at those ranks: one LoRA config holds one rank and one scaling.
    "adalora": lambda: peft.LoraConfig(
        task_type="TOKEN_CLS",
        r=4,
        lora_alpha=8,
        target_modules=["query", "value"],
        rank_pattern={"layer.1.attention.self.value": 2, "query": 3},
        alpha_pattern={"layer.0.attention.self.value": 16},
        use_rslora=True,
    ),
    # "output.dense" also matches attention.output.dense as a suffix: PEFT then scales the
    # input of both, which the import must keep (it reads it from the vectors' shapes).
    "ia3": lambda: peft.IA3Config(
        task_type="TOKEN_CLS",
        target_modules=["key", "value", "output.dense"],
        feedforward_modules=["output.dense"],
    ),
}


@pytest.mark.parametrize("method", list(PEFT_CONFIGS))
def test_an_adapter_trained_by_peft_imports_with_peft_logits_and_routes_per_row(
    method: str, bert_dir: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    base = transformers.AutoModelForTokenClassification.from_pretrained(bert_dir, num_labels=3)
    trained = peft.get_peft_model(base, PEFT_CONFIGS[method]())
    tokenizer = transformers.AutoTokenizer.from_pretrained(bert_dir)
    inputs = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    labels = torch.randint(0, 3, inputs["input_ids"].shape)
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=5e-2)
    for _ in range(5):  # peft trains it: lora_B leaves zero, the classifier moves
        loss = trained(**inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained.eval().save_pretrained(tmp_path / "from-peft")
    with torch.no_grad():
        theirs = trained(**inputs).logits

    code, err = run(
        "import",
        str(tmp_path / "from-peft"),
        "--model",
        str(bert_dir),
        "--out",
        str(tmp_path / "bundle"),
        "--labels",
        "O",
        "B-PER",
        "B-LOC",
        "--name",
        "tagger",
    )
    assert code == 0, err
    model = AdaptedModel(load_base(str(bert_dir)), name_or_path=str(bert_dir))
    assert model.load_adapter(tmp_path / "bundle") == "tagger"
    assert model.configs["tagger"].method == method
    assert model.task_info["tagger"]["labels"] == ["O", "B-PER", "B-LOC"]
    torch.manual_seed(2)
    model.add_adapter("ours", make_config("pfeiffer", reduction_factor=4))
    with torch.no_grad():
        for param in model.adapter_parameters("ours").values():
            param.add_(torch.randn(param.shape) * 0.3)
        hidden = model(**inputs, adapter="tagger").last_hidden_state
        ours = model.head_logits("tagger", hidden)
        mixed = model(**inputs, adapter=["tagger", "ours", "tagger"]).last_hidden_state
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mixed[[0, 2]], hidden[[0, 2]], rtol=1e-5, atol=1e-5)
    # load_adapter takes the PEFT folder itself too (its outputs then named LABEL_i)
    assert model.load_adapter(tmp_path / "from-peft", name="direct") == "direct"
    assert model.task_info["direct"]["labels"] == ["LABEL_0", "LABEL_1", "LABEL_2"]
    with torch.no_grad():
        direct = model.head_logits("direct", model(**inputs, adapter="direct").last_hidden_state)
    torch.testing.assert_close(direct, theirs, rtol=1e-4, atol=1e-4)


def test_label_names_travel_in_labels_json_beside_the_peft_folder(
    bert_dir: Path, tmp_path: Path
) -> None:
    names = LABELS["token-classification"]
    make_bundle(bert_dir, "token-classification", "lora", tmp_path / "bundle")
    assert run("export", str(tmp_path / "bundle"), "--out", str(tmp_path / "peft"))[0] == 0
    document = json.loads((tmp_path / "peft" / "labels.json").read_text())
    # as peft_labels' docstring tells a PEFT user to build the base
    id2label = {int(i): name for i, name in document["id2label"].items()}
    label2id = {name: i for i, name in id2label.items()}
    assert document["label2id"] == label2id
    base = transformers.AutoModelForTokenClassification.from_pretrained(
        bert_dir, id2label=id2label, label2id=label2id
    )
    loaded = peft.PeftModel.from_pretrained(base, tmp_path / "peft")
    assert [loaded.config.id2label[i] for i in range(len(names))] == names
    assert loaded.config.label2id == {name: i for i, name in enumerate(names)}
    out = tmp_path / "back"
    assert (
        run("import", str(tmp_path / "peft"), "--model", str(bert_dir), "--out", str(out))[0] == 0
    )
    model = AdaptedModel(load_base(str(bert_dir)), name_or_path=str(bert_dir))
    assert model.task_info[model.load_adapter(out)]["labels"] == names
    given = ["x", "y", "z"][: len(names)]
    argv = ["--model", str(bert_dir), "--out", str(tmp_path / "given"), "--labels", *given]
    assert run("import", str(tmp_path / "peft"), *argv)[0] == 0  # --labels wins over the file
    assert model.task_info[model.load_adapter(tmp_path / "given", name="g")]["labels"] == given
    labels_file = tmp_path / "peft" / "labels.json"
    for number, (text, says) in enumerate(
        [
            ("{", "labels.json: not JSON"),
            ("[]", "no id2label object"),
            ('{"id2label": {}}', "no id2label object"),
            ('{"id2label": {"0": "a", "2": "b"}}', "keys must be the ids 0..1, got 0, 2"),
            ('{"id2label": {"0": "a", "1": "a"}}', "names a more than once"),
            ('{"id2label": {"0": "a", "1": 7}}', "must be a non-empty string"),
            ('{"id2label": {"0": "a", "1": "b"}}', f"{len(names)} outputs but labels.json names 2"),
        ]
    ):
        labels_file.write_text(text)
        out = tmp_path / f"bad{number}"
        code, err = run(
            "import", str(tmp_path / "peft"), "--model", str(bert_dir), "--out", str(out)
        )
        assert code == 2 and err.count("\n") == 1 and says in err, err
        assert not out.exists()


def test_export_refuses_what_peft_cannot_hold(bert_dir: Path, tmp_path: Path) -> None:
    make_bundle(bert_dir, "token-classification", "pfeiffer", tmp_path / "bottleneck")
    code, err = run("export", str(tmp_path / "bottleneck"), "--out", str(tmp_path / "x"))
    assert code == 2 and err.count("\n") == 1 and "no adapter type for method 'bottleneck'" in err
    model = AdaptedModel(load_base(str(bert_dir)), name_or_path=str(bert_dir))
    task = make_task("sequence-classification", load_tokenizer(str(bert_dir)), ["a", "b"], 64)
    model.add_adapter("mean", make_config("lora"), head=task.build_head(32), task=task.task_info())
    model.save_adapter("mean", tmp_path / "mean")
    code, err = run("export", str(tmp_path / "mean"), "--out", str(tmp_path / "y"))
    assert code == 2 and err.count("\n") == 1 and "pools the mean" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_export_and_import_never_write_over_their_input(bert_dir: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "runs" / "ner" / "adapter"
    make_bundle(bert_dir, "token-classification", "lora", bundle)
    before = sorted(p.name for p in bundle.iterdir())
    for out in (bundle, bundle.parent):  # the bundle itself, or a folder holding it
        code, err = run("export", str(bundle), "--out", str(out))
        assert code == 2 and err.count("\n") == 1 and "would replace it" in err, err
        code, err = run("import", str(bundle), "--out", str(out))
        assert code == 2 and err.count("\n") == 1 and "would replace it" in err, err
    assert sorted(p.name for p in bundle.iterdir()) == before


def test_import_refuses_foreign_types_truncated_folders_and_other_bases(
    bert_dir: Path, tmp_path: Path
) -> None:
    make_bundle(bert_dir, "token-classification", "lora", tmp_path / "bundle")
    assert run("export", str(tmp_path / "bundle"), "--out", str(tmp_path / "peft"))[0] == 0
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    (prefix / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    code, err = run("import", str(prefix), "--out", str(tmp_path / "o1"))
    assert code == 2 and "'PREFIX_TUNING' is not imported" in err
    (tmp_path / "peft" / "adapter_model.safetensors").write_bytes(b"\x00" * 10)
    code, err = run("import", str(tmp_path / "peft"), "--out", str(tmp_path / "o2"))
    assert code == 2 and "unreadable safetensors" in err and err.count("\n") == 1
    (tmp_path / "peft" / "adapter_model.safetensors").unlink()
    code, err = run("import", str(tmp_path / "peft"), "--out", str(tmp_path / "o3"))
    assert code == 2 and "no adapter_model.safetensors" in err
    assert run("export", str(tmp_path / "bundle"), "--out", str(tmp_path / "peft"))[0] == 0
    good = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    alpha = {"alpha_pattern": {"query": 4}}  # a pattern: the import goes AdaLoRA's way
    for number, (changes, says) in enumerate(
        [
            ({"lora_alpha": "x"}, "alpha must be a number"),
            ({"use_rslora": "false"}, "use_rslora must be true or false"),
            ({"peft_type": "IA3"}, "has no scale weights"),
            ({"rank_pattern": {"query": 2}}, "has rank 8 in its weights but 2 in the config"),
            ({"alpha_pattern": {".*query": 4}}, "'.*query' names no adapted layer word for word"),
            ({"alpha_pattern": {"query": -1}}, "values must be positive numbers, got -1"),
            ({**alpha, "use_dora": True}, "DoRA with a rank or alpha per layer is not imported"),
            ({**alpha, "use_rslora": "yes"}, "use_rslora must be true or false"),
        ]
    ):
        config_file = tmp_path / "peft" / "adapter_config.json"
        config_file.write_text(json.dumps({**good, **changes}))
        code, err = run(
            "import",
            str(tmp_path / "peft"),
            "--model",
            str(bert_dir),
            "--out",
            str(tmp_path / f"h{number}"),
        )
        assert code == 2 and err.count("\n") == 1 and says in err, err
    (tmp_path / "peft" / "adapter_config.json").write_text(json.dumps(good))
    other = save_tiny_bert(tmp_path / "wide", WORDS)
    config = json.loads((other / "config.json").read_text())
    config.update(hidden_size=48, intermediate_size=96)
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(**{k: v for k, v in config.items() if k != "architectures"})
    ).save_pretrained(other)
    code, err = run(
        "import", str(tmp_path / "peft"), "--model", str(other), "--out", str(tmp_path / "o4")
    )
    assert code == 2 and err.count("\n") == 1 and "this base" in err, err
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 5))
    assert not any((tmp_path / f"h{i}").exists() for i in range(8))


def test_info_says_what_a_peft_folder_and_a_merged_folder_are(
    bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from adapterkit.cli import main

    make_bundle(bert_dir, "token-classification", "dora", tmp_path / "bundle")
    assert run("export", str(tmp_path / "bundle"), "--out", str(tmp_path / "peft"))[0] == 0
    assert (
        run("export", str(tmp_path / "bundle"), "--format", "merged", "--out", str(tmp_path / "m"))[
            0
        ]
        == 0
    )
    capsys.readouterr()
    assert main(["info", str(tmp_path / "peft")]) == 0
    peft_info = json.loads(capsys.readouterr().out)
    assert peft_info["format"] == "peft adapter" and peft_info["peft_type"] == "LORA"
    assert peft_info["use_dora"] is True and peft_info["task_type"] == "TOKEN_CLS"
    assert peft_info["labels"] == LABELS["token-classification"]
    assert main(["info", str(tmp_path / "m")]) == 0
    model_info = json.loads(capsys.readouterr().out)
    assert model_info["format"] == "transformers model"
    assert model_info["labels"] == LABELS["token-classification"]


def test_the_server_serves_a_peft_folder_beside_our_bundles(bert_dir: Path, tmp_path: Path) -> None:
    import httpx

    from adapterkit.serve.launch import running_server

    adapters = tmp_path / "adapters"
    make_bundle(bert_dir, "sequence-classification", "dora", adapters / "ours")
    code, err = run("export", str(adapters / "ours"), "--out", str(adapters / "as-peft"))
    assert code == 0, err
    args = ["--model", str(bert_dir), "--adapters", str(adapters)]
    texts = ["good movie", "the cat lives in paris"]
    with (
        running_server(args, tmp_path / "server.log") as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        listed = {a["name"]: a for a in client.get("/v1/adapters").json()["adapters"]}
        assert set(listed) == {"ours", "as-peft"} and listed["as-peft"]["method"] == "dora"
        ours = client.post("/v1/predict", json={"adapter": "ours", "inputs": texts}).json()
        theirs = client.post("/v1/predict", json={"adapter": "as-peft", "inputs": texts}).json()
    for mine, peft_row in zip(ours["predictions"], theirs["predictions"], strict=True):
        # the same scores under the same names (the export's labels.json)
        assert list(peft_row["scores"]) == list(mine["scores"]) == LABELS["sequence-classification"]
        assert list(mine["scores"].values()) == pytest.approx(
            list(peft_row["scores"].values()), abs=1e-4
        )


def test_a_cli_trained_classifier_with_cls_pooling_exports_with_its_logits(
    bert_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "train.csv"
    rows = ["good movie,pos", "bad plot,neg", "the cat,pos", "john lives in paris,neg"]
    data.write_text("text,label\n" + "\n".join(rows * 4) + "\n")
    argv = ["train", "--model", str(bert_dir), "--train", str(data), "--epochs", "1"]
    argv += ["--report-to", "none", "--method", "lora", "--output", str(tmp_path / "run")]
    assert run(*argv, "--pooling", "cls")[0] in (0, 3)
    code, err = run("export", str(tmp_path / "run" / "adapter"), "--out", str(tmp_path / "peft"))
    assert code == 0, err
    model = AdaptedModel(load_base(str(bert_dir)), name_or_path=str(bert_dir))
    name = model.load_adapter(tmp_path / "run" / "adapter")
    tokenizer = transformers.AutoTokenizer.from_pretrained(bert_dir)
    inputs = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    inputs.pop("token_type_ids", None)
    with torch.no_grad():
        ours = model.head_logits(name, model(**inputs, adapter=name).last_hidden_state)
    base = transformers.AutoModelForSequenceClassification.from_pretrained(bert_dir, num_labels=2)
    loaded = peft.PeftModel.from_pretrained(base, tmp_path / "peft").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, ours, rtol=1e-4, atol=1e-4)
    tags = tmp_path / "tags.jsonl"
    row = '{"tokens": ["john", "lives", "in", "paris"], "tags": ["B-PER", "O", "O", "B-LOC"]}'
    tags.write_text("\n".join([row] * 8) + "\n")
    argv = ["train", "--model", str(bert_dir), "--train", str(tags), "--epochs", "1"]
    argv += ["--report-to", "none", "--output", str(tmp_path / "tagger"), "--pooling", "cls"]
    code, err = run(*argv)
    assert code == 2 and "--pooling applies to classification heads" in err, err


@pytest.mark.parametrize("real", [False, pytest.param(True, marks=pytest.mark.real)])
def test_an_adalora_with_a_rank_per_layer_exports_as_a_peft_lora(
    real: bool, bert_dir: Path, tmp_path: Path
) -> None:
    """After training, AdaLoRA layers hold different ranks (some none): PEFT's LoRA with
    rank_pattern/alpha_pattern gives our logits, and the rank-0 layer is left out; the
    folder imports back as that AdaLoRA. On the tiny BERT and the real MiniLM."""
    task = "token-classification"
    if real:
        bert_dir = Path(resolve_model("minilm"))
    model = AdaptedModel(load_base(str(bert_dir)), name_or_path=str(bert_dir))
    spec = make_task(task, load_tokenizer(str(bert_dir)), LABELS[task], 64)
    targets = AdaptedModel(load_base(str(bert_dir))).add_adapter("probe", make_config("lora"))
    pattern = {layer: (3, 0, 1, 5)[i % 4] for i, layer in enumerate(targets)}
    config = make_config("adalora", r=6, target_r=2, rank_pattern=pattern)
    torch.manual_seed(2)
    width = model.base.config.hidden_size
    model.add_adapter("a", config, head=spec.build_head(width), task=spec.task_info())
    with torch.no_grad():
        for param in [
            *model.adapter_parameters("a").values(),
            *model.head_parameters("a").values(),
        ]:
            param.add_(torch.randn(param.shape) * 0.3)
    model.save_adapter("a", tmp_path / "bundle")
    code, err = run("export", str(tmp_path / "bundle"), "--out", str(tmp_path / "peft"))
    assert code == 0, err
    peft_config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    kept = peft_config["rank_pattern"]
    assert sorted(set(kept.values())) == [1, 3, 5]
    assert len(kept) == sum(1 for r in pattern.values() if r)  # rank-0 layers left out
    tokenizer = transformers.AutoTokenizer.from_pretrained(bert_dir)
    inputs = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    inputs.pop("token_type_ids", None)
    ours = our_logits(model, task, inputs)
    torch.testing.assert_close(
        peft_logits(bert_dir, task, tmp_path / "peft", inputs), ours, rtol=1e-4, atol=1e-4
    )
    # And back: the PEFT folder imports as an AdaLoRA at those ranks with the same logits.
    code, err = run("import", str(tmp_path / "peft"), "--out", str(tmp_path / "back"))
    assert code == 0, err
    back = AdaptedModel(load_base(str(bert_dir)), name_or_path=str(bert_dir))
    name = back.load_adapter(tmp_path / "back")
    assert back.configs[name].method == "adalora"
    assert back.configs[name].rank_pattern == {k: r for k, r in pattern.items() if r}
    torch.testing.assert_close(our_logits(back, task, inputs, name), ours, rtol=1e-4, atol=1e-4)
