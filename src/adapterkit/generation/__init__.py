"""Text generation with adapters: decoding, streaming, evaluation and prompt baselines."""

from adapterkit.generation.decode import DecodeOptions, StopStreamer, generate_texts
from adapterkit.generation.evaluate import (
    add_shots,
    evaluate_generation,
    generation_metrics,
    pick_shots,
)

__all__ = [
    "DecodeOptions",
    "StopStreamer",
    "add_shots",
    "evaluate_generation",
    "generate_texts",
    "generation_metrics",
    "pick_shots",
]
