"""One peer contender trained with transformers' ``Trainer``, its validation and test
predictions recorded after every epoch with the training seconds so far.

Runs in a peer's venv (``.venv-peft``: peft's methods and full fine-tuning;
``.venv-adapters``: AdapterHub), so it imports nothing of adapterkit or the main venv:

    .venv-peft/bin/python -m benchmarks.time_to_quality.trainer_runner --spec spec.json

The spec (written by ``benchmarks.time_to_quality``) names the contender, the model folder,
the data file (splits with label ids), the budget and where the result goes. The clock
starts when training starts (the model loaded, the data tokenized) and runs through every
epoch's validation, as the user pays for it; the test predictions that only this benchmark
takes after each epoch are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

SEQUENCE = "sequence-classification"
TOKENS = "token-classification"
IGNORE = -100


def encode(rows: list[dict[str, Any]], tokenizer: Any, kind: str, max_length: int) -> list[dict]:
    """Tokenized rows with labels: the row's label, or each word's tag on its first subword
    (the other subwords ignored), as transformers' token classification guide does."""
    if kind == SEQUENCE:
        pairs = [r.get("text_pair") for r in rows]
        texts = [r["text"] for r in rows]
        enc = tokenizer(
            texts, *([pairs] if any(pairs) else []), truncation=True, max_length=max_length
        )
        return [
            {"input_ids": ids, "attention_mask": mask, "labels": row["label"]}
            for ids, mask, row in zip(enc["input_ids"], enc["attention_mask"], rows, strict=True)
        ]
    enc = tokenizer(
        [r["tokens"] for r in rows],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
    )
    out = []
    for i, row in enumerate(rows):
        labels, previous = [], None
        for word in enc.word_ids(i):
            first = word is not None and word != previous
            labels.append(row["tags"][word] if first else IGNORE)
            previous = word
        out.append(
            {
                "input_ids": enc["input_ids"][i],
                "attention_mask": enc["attention_mask"][i],
                "labels": labels,
            }
        )
    return out


def predictions(output: Any, encoded: list[dict], kind: str) -> list[Any]:
    """Label ids per row, or per word kept by truncation (benchmarks.time_to_quality fills
    in the rest)."""
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    best = np.asarray(logits).argmax(-1)
    if kind == SEQUENCE:
        return best.tolist()
    rows = []
    for i, row in enumerate(encoded):
        words = [int(best[i, t]) for t, label in enumerate(row["labels"]) if label != IGNORE]
        rows.append(words)
    return rows


def build(spec: dict[str, Any], num_labels: int) -> tuple[torch.nn.Module, type[Trainer], str]:
    """The contender's model, its Trainer class and the library version it runs."""
    kind, path = spec["kind"], spec["model"]
    auto = (
        AutoModelForSequenceClassification if kind == SEQUENCE else AutoModelForTokenClassification
    )
    if spec["contender"] == "full":
        return auto.from_pretrained(path, num_labels=num_labels), Trainer, "Trainer"
    if spec["contender"].startswith("peft-"):
        import peft

        config = peft_config(spec, kind)
        model = peft.get_peft_model(auto.from_pretrained(path, num_labels=num_labels), config)
        return model, Trainer, f"peft {peft.__version__}"
    if spec["contender"] == "adapterhub-pfeiffer":
        import adapters
        from adapters import AdapterTrainer, AutoAdapterModel, SeqBnConfig

        model = AutoAdapterModel.from_pretrained(path)
        model.add_adapter("task", config=SeqBnConfig())  # Pfeiffer, reduction factor 16
        if kind == SEQUENCE:
            model.add_classification_head("task", num_labels=num_labels)
        else:
            model.add_tagging_head("task", num_labels=num_labels)
        model.train_adapter("task")  # freezes the base; the adapter and its head train
        return model, AdapterTrainer, f"adapters {adapters.__version__}"
    raise SystemExit(f"trainer_runner: unknown contender {spec['contender']}")


def peft_config(spec: dict[str, Any], kind: str) -> Any:
    """peft's config for a ``peft-<method>`` contender: the config class's defaults, with
    what peft's own examples set beside them (the learning rates are in the spec). The task
    type keeps the new head trainable."""
    from peft import (
        AdaLoraConfig,
        IA3Config,
        LoraConfig,
        PrefixTuningConfig,
        PromptTuningConfig,
        TaskType,
    )

    task_type = TaskType.SEQ_CLS if kind == SEQUENCE else TaskType.TOKEN_CLS
    method = spec["contender"].removeprefix("peft-")
    if method == "lora":  # r 8, alpha 8, no dropout, query/value on BERT
        return LoraConfig(task_type=task_type)
    if method == "dora":  # LoRA's defaults with the magnitude vector
        return LoraConfig(task_type=task_type, use_dora=True)
    if method == "ia3":  # keys, values and the FFN's output on BERT
        return IA3Config(task_type=task_type)
    if method == "adalora":  # ranks 12 -> 8; the schedule needs the run's length
        steps = spec["epochs"] * -(-spec["train_rows"] // spec["batch_size"])
        return AdaLoraConfig(task_type=task_type, total_step=steps)
    if method == "prompt":  # random init; 10 virtual tokens, as peft's classification example
        return PromptTuningConfig(task_type=task_type, num_virtual_tokens=10)
    if method == "prefix":  # 20 virtual tokens, as peft's classification example
        return PrefixTuningConfig(task_type=task_type, num_virtual_tokens=20)
    raise SystemExit(f"trainer_runner: unknown contender {spec['contender']}")


class AllocateRanks(TrainerCallback):
    """AdaLoRA's rank allocation after every optimizer step, as peft's AdaLoRA documentation
    has users add it to their loop (the gradients are still there: ``zero_grad`` comes after)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.model.base_model.update_and_allocate(state.global_step)


class EpochRecorder(TrainerCallback):
    """After each epoch: validation predictions and the clock (counted), then test
    predictions (not counted)."""

    def __init__(self, validation: list[dict], test: list[dict], kind: str) -> None:
        self.validation, self.test, self.kind = validation, test, kind
        self.trainer: Trainer | None = None
        self.started = 0.0
        self.not_counted = 0.0
        self.epochs: list[dict[str, Any]] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        assert self.trainer is not None
        validation = self.trainer.predict(self.validation)
        seconds = time.perf_counter() - self.started - self.not_counted
        began = time.perf_counter()
        test = self.trainer.predict(self.test) if self.test else None
        self.not_counted += time.perf_counter() - began
        self.epochs.append(
            {
                "epoch": len(self.epochs) + 1,
                "seconds": round(seconds, 2),
                "validation": predictions(validation, self.validation, self.kind),
                "test": None if test is None else predictions(test, self.test, self.kind),
            }
        )


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Train the contender; its per-epoch record."""
    transformers.set_seed(spec["seed"])
    data = json.loads(Path(spec["data"]).read_text())
    kind, labels = spec["kind"], data["label_names"]
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    split = {
        name: encode(data[name], tokenizer, kind, spec["max_length"])
        for name in ("train", "validation")
    }
    split["test"] = (
        encode(data["test"], tokenizer, kind, spec["max_length"]) if data.get("test") else []
    )
    spec["train_rows"] = len(split["train"])
    model, trainer_class, version = build(spec, len(labels))
    collator = (
        DataCollatorWithPadding if kind == SEQUENCE else DataCollatorForTokenClassification
    )(tokenizer)
    args = TrainingArguments(
        output_dir=str(Path(spec["out"]).with_suffix(".trainer")),
        learning_rate=spec["lr"],
        num_train_epochs=spec["epochs"],
        per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=64,
        seed=spec["seed"],
        save_strategy="no",  # Trainer's default saves every 500 steps: spared, in the peers' favour
        report_to="none",
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    recorder = EpochRecorder(split["validation"], split["test"], kind)
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=split["train"],
        data_collator=collator,
        callbacks=[recorder]
        + ([AllocateRanks(model)] if spec["contender"] == "peft-adalora" else []),
    )
    recorder.trainer = trainer
    began = time.perf_counter()
    trainer.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {
        "contender": spec["contender"],
        "version": f"{version}, transformers {transformers.__version__}, torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "trainable_percent": round(100 * trainable / total, 3),
        "run_seconds": round(time.perf_counter() - began - recorder.not_counted, 2),
        "epochs": recorder.epochs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--spec", required=True, help="JSON file written by benchmarks.time_to_quality"
    )
    spec = json.loads(Path(parser.parse_args().spec).read_text())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = run(spec)
    out = Path(spec["out"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(out)  # a result file is always a finished run


if __name__ == "__main__":
    main()
