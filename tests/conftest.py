"""Test-wide settings: offline hub, quiet transformers, fp32 on every CPU, one torch thread
for tiny models."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# --precision auto means bf16 on CPUs with native bf16: the tests' numerics (equal outputs,
# exact resumes) must not depend on which CPU runs them, so they train in fp32 unless a
# test asks for bf16 (tests/train/test_precision.py checks what auto resolves to).
os.environ["ADAPTERKIT_CPU_BF16"] = "0"


@pytest.fixture(autouse=True)
def _one_thread_for_tiny_models(request: pytest.FixtureRequest):
    """Tiny models gain nothing from threads, and on a busy 2-core machine two threads per
    process oversubscribe the cores badly (80x slower steps were seen). Real-model tests keep
    torch's default."""
    if request.node.get_closest_marker("real"):
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
