"""The real MiniLM compiled by inductor: one graph, and the outputs of a mixed batch equal
the eager model's."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo as dynamo
from torch._dynamo.utils import counters

from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer

pytestmark = pytest.mark.real

QUESTIONS = ["Who wrote Hamlet?", "How far is the Moon from the Earth?", "Why is the sky blue?"]


def test_compiled_minilm_equals_eager_on_a_mixed_batch() -> None:
    dynamo.reset()
    counters.clear()
    model = AdaptedModel(load_base("minilm"), name_or_path="minilm").eval()
    for method in ("pfeiffer", "lora"):
        model.add_adapter(method, make_config(method))
        with torch.no_grad():  # off the identity, so that each adapter changes its rows
            for param in model.adapter_parameters(method).values():
                param.add_(0.02 * torch.randn_like(param))
    batch = load_tokenizer("minilm")(QUESTIONS, padding=True, return_tensors="pt")
    routes = ["pfeiffer", "lora", None]
    with torch.inference_mode():
        eager = model(**batch, adapter=routes).last_hidden_state
        model.compile()
        compiled = model(**batch, adapter=routes).last_hidden_state
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
    assert counters["stats"]["unique_graphs"] == 1  # no graph break at any wrapped layer
    dynamo.reset()
