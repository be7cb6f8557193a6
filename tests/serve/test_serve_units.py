"""Pieces of the server without HTTP: the batcher's rules, names and paths, limits."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.serve.conftest import Served

from adapterkit.errors import AdapterkitError
from adapterkit.serve.app import char_count
from adapterkit.serve.batcher import Batcher
from adapterkit.serve.jobs import GenerateJob
from adapterkit.serve.registry import AdapterRegistry
from adapterkit.serve.server import torch_threads
from adapterkit.serve.settings import ServeError, ServeSettings


def _job(adapter: str | None) -> GenerateJob:
    return GenerateJob(adapter=adapter, prompt_ids=[1], max_new_tokens=1)


def test_batcher_fills_batches_caps_them_and_isolates_failures() -> None:
    seen: list[list[str | None]] = []

    def run(jobs: list) -> list:
        seen.append([job.adapter for job in jobs])
        return [ValueError("bad") if job.adapter == "bad" else job.adapter for job in jobs]

    async def main() -> list:
        with ThreadPoolExecutor(1) as worker:
            batcher = Batcher(run, worker, max_batch=4, max_wait_ms=50)
            await batcher.start()
            names = ["a", "b", "bad", "c", None, "d"]
            results = await asyncio.gather(
                *(batcher.submit(_job(n)) for n in names), return_exceptions=True
            )
            await batcher.stop()
            return [results, batcher.stats]

    results, stats = asyncio.run(main())
    assert seen == [["a", "b", "bad", "c"], [None, "d"]]  # in order, at most 4 rows
    assert results[:2] == ["a", "b"] and isinstance(results[2], ValueError)
    assert results[3:] == ["c", None, "d"]  # a failing job fails alone
    assert stats.batches == 2 and stats.largest_batch == 4 and stats.mixed_batches == 2


def test_batcher_does_not_wait_longer_than_max_wait() -> None:
    async def main() -> float:
        with ThreadPoolExecutor(1) as worker:
            batcher = Batcher(lambda jobs: [0] * len(jobs), worker, max_batch=32, max_wait_ms=30)
            await batcher.start()
            loop = asyncio.get_running_loop()
            start = loop.time()
            await batcher.submit(_job("a"))
            took = loop.time() - start
            await batcher.stop()
            return took

    assert 0.025 <= asyncio.run(main()) < 1.0


def test_names_cannot_leave_the_adapters_folder(encoder_bundles: Served, tmp_path: Path) -> None:
    adapters = tmp_path / "adapters"
    adapters.mkdir()
    # A symlink that passes the name check but points at a bundle outside the folder.
    os.symlink(encoder_bundles.adapters / "topic", adapters / "escape")
    settings = ServeSettings(model=str(encoder_bundles.model_dir), adapters=adapters)
    registry = AdapterRegistry.open(settings)
    assert registry.entries == {}  # skipped at start, not loaded
    for name in ("escape", "../adapters", "/etc", "a b", "", ".hidden", "x" * 65):
        with pytest.raises(ServeError) as caught:
            registry.load(name)
        assert caught.value.status == 400, name


def test_limits_and_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert char_count("abc") == 3
    assert char_count({"question": "ab", "context": "cde"}) == 5
    assert char_count(["ab", "c"]) == 3 and char_count(7) == 0
    settings = ServeSettings(model="m", adapters=tmp_path)
    monkeypatch.setenv("ADAPTERKIT_THREADS", "3")
    assert torch_threads(settings) == 3
    monkeypatch.setenv("ADAPTERKIT_THREADS", "many")
    with pytest.raises(AdapterkitError, match="ADAPTERKIT_THREADS"):
        torch_threads(settings)
    with pytest.raises(AdapterkitError, match="not found"):
        ServeSettings(model="m", adapters=tmp_path / "missing")
    with pytest.raises(AdapterkitError, match="max-batch"):
        ServeSettings(model="m", adapters=tmp_path, max_batch=0)


def test_cli_serve_bad_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from adapterkit.cli import main

    assert main(["serve", "--model", "m", "--adapters", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("adapterkit: error:") and "adapters folder not found" in err
    assert "\n" not in err
