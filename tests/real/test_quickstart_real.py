"""The README example on the real MiniLM from its pinned wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.real
ROOT = Path(__file__).resolve().parents[2]


def test_readme_example_runs_on_real_minilm(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "examples" / "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(tmp_path)
    assert result["max_diff"] == 0.0  # reloaded bundle gives bit-identical logits
    assert 1.0 < result["topic_percent"] < 2.0  # Houlsby rf 16 + head on MiniLM
    assert 1.0 < result["style_percent"] < 2.0  # LoRA r=8 on every linear layer of the blocks
    assert result["bundle_bytes"] < 0.03 * 90_868_376  # under 3% of the full model file


def test_unknown_model_offline_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapterkit import AdapterkitError, load_base

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AdapterkitError, match="cannot load model 'no-such-org/no-such-model'"):
        load_base("no-such-org/no-such-model")
