"""Tasks by name. Each module under tasks/ implements :class:`~adapterkit.tasks.base.Task`."""

from __future__ import annotations

from typing import Any

from adapterkit.errors import AdapterkitError
from adapterkit.tasks.base import Task, head_forward, model_inputs
from adapterkit.tasks.causal_lm import CausalLMTask
from adapterkit.tasks.classification import MultiLabelClassificationTask, SequenceClassificationTask
from adapterkit.tasks.question_answering import QuestionAnsweringTask
from adapterkit.tasks.relation_extraction import RelationExtractionTask
from adapterkit.tasks.seq2seq import Seq2SeqTask
from adapterkit.tasks.token_classification import TokenClassificationTask

TASK_CLASSES: dict[str, type[Task]] = {
    cls.task_type: cls
    for cls in (
        SequenceClassificationTask,
        MultiLabelClassificationTask,
        TokenClassificationTask,
        QuestionAnsweringTask,
        RelationExtractionTask,
        CausalLMTask,
        Seq2SeqTask,
    )
}
GENERATION_TASKS = ("causal-lm", "seq2seq")
"""Tasks that generate text with the base's own LM head (no task head)."""


def register_task(cls: type[Task]) -> type[Task]:
    """Add a task class to :data:`TASK_CLASSES` (usable as a decorator)."""
    TASK_CLASSES[cls.task_type] = cls
    return cls


def make_task(
    task_type: str, tokenizer: Any, label_names: list[str] | None, max_length: int = 128
) -> Task:
    """Build the task object for ``task_type``."""
    check_task_type(task_type)
    return TASK_CLASSES[task_type](tokenizer, label_names, max_length)


def check_task_type(task_type: str) -> None:
    """Refuse a task name no registered task has, listing the known ones."""
    if task_type not in TASK_CLASSES:
        raise AdapterkitError(
            f"unknown task '{task_type}'; known: {', '.join(sorted(TASK_CLASSES))}"
        )


def task_from_info(info: dict[str, Any], tokenizer: Any) -> Task:
    """Rebuild the task a bundle was trained for from its stored ``task`` record."""
    if not info or "type" not in info:
        raise AdapterkitError("this bundle records no task, so it cannot predict")
    task = make_task(info["type"], tokenizer, info.get("labels"), int(info.get("max_length", 128)))
    task.apply_info(info)
    return task


__all__ = [
    "GENERATION_TASKS",
    "TASK_CLASSES",
    "Task",
    "check_task_type",
    "head_forward",
    "make_task",
    "model_inputs",
    "register_task",
    "task_from_info",
]
