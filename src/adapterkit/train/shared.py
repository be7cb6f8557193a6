"""Hard parameter sharing: the jobs of a run train one adapter, each with its own head.

``share_adapter: true`` in a multi-job run ties every job's adapter to the first job's
(the leader's): the same modules sit under every job's name, so the adapter's gradient
is the sum of every task's loss on its rows of each batch, while each head sees only its
own task. The leader's optimizer steps the adapter (and its head); the others step their
heads only. The group validates, keeps its best checkpoint and stops early together, on
the mean of the jobs' validation scores, whenever the leader's epoch ends; the others'
epochs only count. Each job's rows per batch follow the task sampling: a share of the
group's batch proportional to its training rows to the power ``1 / T``.
"""

from __future__ import annotations

import dataclasses
import math

from adapterkit.errors import AdapterkitError
from adapterkit.host import AdapterHost
from adapterkit.model import AdaptedModel
from adapterkit.tasks import GENERATION_TASKS
from adapterkit.train.options import JobSpec


def check_shared(specs: list[JobSpec], tasks: dict[str, str]) -> None:
    """Refuse, in one line, a job list that cannot share one adapter."""
    if len(specs) < 2:
        raise AdapterkitError("--share-adapter needs a run of several jobs (a jobs: list)")
    first = specs[0].options
    for spec in specs[1:]:
        options = spec.options
        if (options.method, options.method_options) != (first.method, first.method_options):
            raise AdapterkitError(
                f"--share-adapter: job {spec.name} trains {options.method} "
                f"{options.method_options or ''} and job {specs[0].name} {first.method} "
                f"{first.method_options or ''}; one shared adapter has one method and options"
            )
    for spec in specs:
        options = spec.options
        if options.method == "full" or options.init_from or options.fuse or options.stack_on:
            raise AdapterkitError(
                f"--share-adapter: job {spec.name} trains the base, continues a bundle or "
                "composes bundles; a shared adapter starts fresh over the frozen base"
            )
        if tasks[spec.name] in GENERATION_TASKS:
            raise AdapterkitError(
                f"--share-adapter: job {spec.name} generates text; sharing takes tasks "
                "with heads, whose validation scores average"
            )


def sampled_batch_sizes(specs: list[JobSpec], rows: dict[str, int]) -> list[JobSpec]:
    """The jobs with batch sizes that split the group's batch (the sum of theirs) in
    proportion to ``rows ** (1 / T)``; each gets at least one row."""
    temperature = specs[0].options.sampling_temperature
    total = sum(spec.config.batch_size for spec in specs)
    weights = [rows[spec.name] ** (1 / temperature) for spec in specs]
    sizes = [max(1, math.floor(total * w / sum(weights) + 0.5)) for w in weights]
    return [
        dataclasses.replace(spec, config=dataclasses.replace(spec.config, batch_size=size))
        for spec, size in zip(specs, sizes, strict=True)
    ]


def tie_adapters(model: AdaptedModel, leader: str, followers: list[str]) -> None:
    """Put the leader's adapter modules (and any base tuning) under each follower's name,
    in place of the follower's own, and the leader's config too: what training writes into
    it (AdaLoRA's final ranks) then holds for every bundle of the shared adapter."""
    for name in followers:
        model.configs[name] = model.configs[leader]
    for host in model.base.modules():
        if not isinstance(host, AdapterHost):
            continue
        for table in (host.adapters, host.base_tuning):
            if leader in table:
                for name in followers:
                    table[name] = table[leader]
