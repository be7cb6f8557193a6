"""Prompt tuning (soft prompts); registers the ``prompt`` method."""

from adapterkit.methods import register_method
from adapterkit.methods.prompt.config import PromptConfig
from adapterkit.methods.prompt.layer import PromptEmbedding

register_method(PromptConfig)

__all__ = ["PromptConfig", "PromptEmbedding"]
