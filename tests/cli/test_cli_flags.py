"""The ``train``/``demo`` flags and YAML keys come from the option dataclasses' fields."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapterkit.cli import build_parser, main
from adapterkit.cli import flags as cli_flags
from adapterkit.cli.config_file import merged_values
from adapterkit.cli.fields import add_flags, dataclass_defaults, dataclass_flags, field_docs
from adapterkit.errors import AdapterkitError
from adapterkit.methods import make_config, registered_configs
from adapterkit.train.config import TrainConfig
from adapterkit.train.options import DEFAULT_METHOD, RunOptions

OPTION_CLASSES = [RunOptions, TrainConfig, *registered_configs()]
# (class, field) for every option field that is a flag, i.e. not marked metadata flag=None.
FLAG_FIELDS = [
    (cls, f)
    for cls in OPTION_CLASSES
    for f in dataclasses.fields(cls)
    if f.metadata.get("flag", "") is not None
]
CONTINUAL = ("init_from", "replay", "replay_ratio", "anchor_weight", "old_data")


def _tiny_bundle(path: Path) -> Path:
    """A bundle of the default method (what --init-from reads its method from)."""
    from tests.tiny import tiny_model

    from adapterkit.model import AdaptedModel

    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("parent", make_config(DEFAULT_METHOD))
    return model.save_adapter("parent", path)


# Spellings users and tests rely on: they must never change.
FIXED_FLAGS = {
    "--config": "config",
    "--train": "train_file",
    "--validation": "validation_file",
    "--test": "test_file",
    "--name": "adapter_name",
    "--rank": "rank",
    "--adapter-dropout": "adapter_dropout",
    "--adapter-scaling": "adapter_scaling",
    "--use-rslora": "use_rslora",
    "--target-modules": "target_modules",
    "--layers": "layers",
    "--reduction-factor": "reduction_factor",
    "--bottleneck-size": "bottleneck_size",
    "--non-linearity": "non_linearity",
    "--alpha": "alpha",
    "--activation-checkpointing": "activation_checkpointing",
    "--no-activation-checkpointing": "activation_checkpointing",
    "--group-by-length": "group_by_length",
    "--no-group-by-length": "group_by_length",
    "--resume": "resume",
    "--packing": "packing",
    "--method": "method",
    "--model": "model",
    "--data": "data",
    "--output": "output",
    "--lr": "lr",
}


def _actions(command: str) -> dict[str, argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {s: a for a in sub.choices[command]._actions for s in a.option_strings}


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def _sample(cls: type, f: dataclasses.Field) -> tuple[list[str], Any]:
    """Command-line words for a non-default value of the field, and that value."""
    hint = typing.get_type_hints(cls)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = args[0]
    if typing.get_origin(hint) is list:
        kind = typing.get_args(hint)[0]
        value = [1, 2] if kind is int else ["a", "b"]
        return [str(v) for v in value], value
    if hint is bool:
        return [], True
    if "choices" in f.metadata:
        value = f.metadata["choices"][-1]
    else:
        value = {int: 3, float: 0.5, str: "x"}[hint]
        if isinstance(value, int | float) and value < f.metadata.get("min", value):
            value = hint(f.metadata["min"] + 1)  # a number above the field's floor
    return [str(value)], value


def _built(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``cls`` as training would build them from the merged values."""
    if cls is TrainConfig:
        return dataclasses.asdict(cli_flags.train_config(values))
    if cls is RunOptions:
        return dataclasses.asdict(cli_flags.run_options(values))
    return cli_flags.method_options(values)


def _values(argv: list[str]) -> dict[str, Any]:
    parser = build_parser()
    return merged_values(parser.parse_args(argv), parser)


@pytest.mark.parametrize("command", ["train", "demo"])
def test_the_flags_of_today_keep_their_spelling_and_dest(command: str) -> None:
    actions = _actions(command)
    for flag, dest in FIXED_FLAGS.items():
        assert flag in actions and actions[flag].dest == dest, flag
    for cls, f in FLAG_FIELDS:
        assert _flag(f) in actions, f"{cls.__name__}.{f.name} has no flag"
    # Set by the bottleneck presets, so no flag; the run fills method_options itself.
    assert "--placement" not in actions and "--method-options" not in actions


@pytest.mark.parametrize(
    ("cls", "f"), FLAG_FIELDS, ids=[f"{c.__name__}.{f.name}" for c, f in FLAG_FIELDS]
)
def test_every_option_field_is_set_by_its_flag_and_by_its_yaml_key(
    cls: type, f: dataclasses.Field, tmp_path: Path
) -> None:
    words, value = _sample(cls, f)
    # A method's option is given with that method: another one refuses it.
    method = ["--method", cls.method] if cls not in (TrainConfig, RunOptions) else []
    if cls is RunOptions and f.name in CONTINUAL:  # options of a run that continues a bundle
        bundle = str(_tiny_bundle(tmp_path / "parent"))
        method = ["--init-from", bundle] if f.name != "init_from" else []
        method += ["--replay", "old.csv"] if f.name == "replay_ratio" else []
        words, value = ([bundle], bundle) if f.name == "init_from" else (words, value)
    if cls is RunOptions and f.name in ("fuse", "stack_on"):  # a composition's parts
        value = [str(_tiny_bundle(tmp_path / place)) for place in ("p1", "p2")]
        words = value
    from_flag = _built(cls, _values(["train", *method, _flag(f), *words]))
    assert from_flag[f.name] == value
    config = tmp_path / "c.yaml"
    config.write_text(f"{f.name}: {value!r}\n".replace("'", '"'))
    from_yaml = _built(cls, _values(["train", *method, "--config", str(config)]))
    assert from_yaml[f.name] == value
    # Not given at all: the dataclass default; a method option is left out of
    # method_options, so the method (or its preset) decides.
    unset = _built(cls, _values(["train", *method]))
    if cls is RunOptions and f.name == "method":
        assert unset[f.name] is None  # the task type picks it once the data is loaded
    elif cls is RunOptions and f.name == "replay_ratio":
        assert unset[f.name] == 0.2  # None only says "not given": 0.2 with --replay
    elif cls in (TrainConfig, RunOptions):
        assert unset[f.name] == dataclass_defaults(cls)[f.name]
    else:
        assert f.name not in unset


def test_every_flag_field_has_a_docstring_and_it_is_the_help() -> None:
    actions = _actions("train")
    for cls, f in FLAG_FIELDS:
        doc = field_docs(cls).get(f.name)
        assert doc, f"{cls.__name__}.{f.name} has no docstring"
        assert doc.replace("%", "%%") in actions[_flag(f)].help, f.name
    assert actions["--patience"].help.endswith(
        "(see adapterkit.train.early_stopping). (default: 2)"
    )
    assert actions["--rank"].help == (
        "lora, dora: Rank of the update. (default: 8); "
        "adalora: Initial rank of every adapted layer (AdaLoRA's init_r). (default: 12); "
        "unipelt: Rank of the gated LoRA updates. (default: 8)"
    )
    both = actions["--adapter-dropout"].help  # one flag for two methods' field
    # adalora registers after lora (it imports lora's config), so lora's text comes first
    assert "bottleneck: Dropout on the adapter's output" in both and "lora, adalora, dora: " in both


def test_yaml_aliases_sections_and_dashes(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "method: lora\nrank: 4\nadapter_dropout: 0.25\n"
        "train:\n  batch-size: 7\n  group_by_length: true\nrun:\n  method_options:\n    alpha: 3\n"
    )
    values = _values(["train", "--config", str(config)])
    assert cli_flags.method_options(values) == {"r": 4, "dropout": 0.25, "alpha": 3}
    assert cli_flags.train_config(values).batch_size == 7
    assert cli_flags.train_config(values).group_by_length is True
    config.write_text("adapter-scaling: 2\n")  # the default method, pfeiffer, has it
    assert cli_flags.method_options(_values(["train", "--config", str(config)])) == {"scaling": 2}
    config.write_text("method: lora\nr: 5\ndropout: 0.1\nadapter_name: y\ngroup_by_length: true\n")
    values = _values(["train", "--config", str(config), "--no-group-by-length"])
    assert cli_flags.method_options(values) == {"r": 5, "dropout": 0.1}
    assert cli_flags.run_options(values).adapter_name == "y"
    assert cli_flags.train_config(values).group_by_length is False  # the flag wins
    lora = make_config("lora", **cli_flags.method_options(values))
    assert (lora.r, lora.dropout) == (5, 0.1)


def test_dataloader_workers_is_gone(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "dataloader_workers" not in {f.name for f in dataclasses.fields(TrainConfig)}
    assert "--dataloader-workers" not in _actions("train")
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 1\ndataloader_workers: 2\n")
    assert main(["train", "--config", str(config), "--train", "x.csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"adapterkit: error: {config}: unknown option(s) dataloader_workers"


@dataclass
class Toy:
    """A dataclass the CLI has never heard of."""

    widgets: int = 7
    """How many widgets to frobnicate (100% of them)."""
    names: list[str] | None = None
    """Who to greet."""
    fast: bool = False
    """Go fast."""
    level: str = field(default="low", metadata={"choices": ("low", "high")})
    """How loud."""
    notes: dict[str, int] = field(default_factory=dict, metadata={"flag": None})
    """Set in YAML only."""


def test_a_new_dataclass_field_gets_a_flag_with_its_docstring_as_help() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, dataclass_flags(Toy), defaults=dataclass_defaults(Toy))
    args = parser.parse_args(["--widgets", "3", "--names", "a", "b", "--fast", "--level", "high"])
    assert vars(args) == {"widgets": 3, "names": ["a", "b"], "fast": True, "level": "high"}
    assert vars(parser.parse_args([])) == {
        "widgets": 7,
        "names": None,
        "fast": False,
        "level": "low",
    }
    help_of = {a.dest: a.help for a in parser._actions}
    assert help_of["widgets"] % {} == "How many widgets to frobnicate (100% of them). (default: 7)"
    assert help_of["names"] == "Who to greet."
    assert "--notes" not in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--level", "medium"])


def test_fields_a_flag_cannot_take_are_refused_when_the_flags_are_built() -> None:
    @dataclass
    class Odd:
        table: dict[str, int] = field(default_factory=dict)

    @dataclass
    class Misspelt:
        size: int = field(default=1, metadata={"flags": "--sz"})

    with pytest.raises(TypeError, match=r"Odd\.table"):
        dataclass_flags(Odd)
    with pytest.raises(TypeError, match=r"Misspelt\.size"):
        dataclass_flags(Misspelt)


@dataclass
class TrainConfigWithANewOption(TrainConfig):
    warmup_steps: int | None = None
    """Warm up for this many steps instead of a share of them."""


@pytest.fixture
def new_training_option(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(cli_flags, "TrainConfig", TrainConfigWithANewOption)
    cli_flags.train_flags.cache_clear()
    yield
    monkeypatch.undo()
    cli_flags.train_flags.cache_clear()


def test_a_new_training_field_is_a_flag_and_a_yaml_key_with_no_other_edit(
    new_training_option: None, tmp_path: Path
) -> None:
    help_text = _actions("train")["--warmup-steps"].help
    assert help_text == "Warm up for this many steps instead of a share of them."
    config = cli_flags.train_config(_values(["train", "--warmup-steps", "5", "--epochs", "2"]))
    assert (config.warmup_steps, config.epochs) == (5, 2)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("train:\n  warmup-steps: 9\n")
    config = cli_flags.train_config(_values(["train", "--config", str(yaml_file)]))
    assert config.warmup_steps == 9


def test_a_refused_method_option_lists_the_flags_and_the_config_file_keys_apart() -> None:
    values = _values(["train", "--method", "ia3", "--reduction-factor", "4"])
    with pytest.raises(AdapterkitError) as refused:
        cli_flags.method_options(values)
    message = str(refused.value)
    # input_scaled has no flag (PEFT's import sets it): it is named as a config-file key
    assert message.startswith("--reduction-factor does not apply to method 'ia3' (its options: ")
    assert message.endswith("--train-norms; in a --config file also input_scaled)"), message
