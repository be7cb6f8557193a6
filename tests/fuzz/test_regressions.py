"""Named regression tests for the defects a hostile user found (the fuzz corpora cover
the classes; these pin each reported case down by name)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.fuzz.bundle_mutations import BACKTRACKING, BUNDLE_MUTATIONS
from tests.serve.conftest import Served, encoder_bundles  # noqa: F401
from tests.tiny import tiny_model

from adapterkit.bundle import CONFIG_FILE
from adapterkit.errors import AdapterkitError
from adapterkit.files import atomic_write_bytes, staged_dir
from adapterkit.host import AdapterHost
from adapterkit.inject import name_matches
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.serve import ServeSettings, create_app
from adapterkit.serve.launch import LOOPBACK, running_server


def test_backtracking_target_pattern_is_cut_off() -> None:
    """`(.*.*)*Z`-style patterns froze the CLI and the server's model thread for minutes."""
    started = time.monotonic()
    with pytest.raises(AdapterkitError, match="took over"):
        name_matches("encoder.layer.0.attention.output.dense", BACKTRACKING)
    assert time.monotonic() - started < 5


def test_failed_load_leaves_no_trace(tmp_path: Path) -> None:
    """A load failing half-way used to leave the adapter wrapped into the model."""
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("good", make_config("lora", r=4))
    model.save_adapter("good", tmp_path / "good")
    config = json.loads((tmp_path / "good" / CONFIG_FILE).read_text())
    config["config"]["r"] = 2  # the weights on disk are rank 4: the copy fails
    (tmp_path / "good" / CONFIG_FILE).write_text(json.dumps(config))
    model.delete_adapter("good")
    with pytest.raises(AdapterkitError, match="shape"):
        model.load_adapter(tmp_path / "good")
    assert model.adapter_names == []
    assert not any(isinstance(m, AdapterHost) for m in model.modules())


def test_server_starts_past_every_bad_bundle(encoder_bundles: Served, tmp_path: Path) -> None:  # noqa: F811
    """One malformed bundle in --adapters kept `serve` from starting."""
    adapters = shutil.copytree(encoder_bundles.adapters, tmp_path / "adapters")
    for number, mutate in enumerate(BUNDLE_MUTATIONS.values()):
        folder = shutil.copytree(adapters / "topic", adapters / f"bad{number}")
        config = json.loads((folder / CONFIG_FILE).read_text())
        config["name"] = folder.name
        mutate(config, folder)
        (folder / CONFIG_FILE).write_text(json.dumps(config))
    settings = ServeSettings(model=str(encoder_bundles.model_dir), adapters=adapters)
    with TestClient(create_app(settings)) as client:
        names = {row["name"] for row in client.get("/v1/adapters").json()["adapters"]}
    assert names == {"topic", "ner", "qa", "tags", "plain"}


def _http(sock: socket.socket, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request on an open connection; the status and the raw answer."""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    header, _, rest = answer.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in header.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(header.split()[1]), header


def test_refusals_keep_the_connection_alive(encoder_bundles: Served, tmp_path: Path) -> None:  # noqa: F811
    """A real server: bad requests on one keep-alive connection, then a good one on it."""
    args = ["--model", str(encoder_bundles.model_dir), "--adapters", str(encoder_bundles.adapters)]
    with running_server(args, tmp_path / "server.log") as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection((LOOPBACK, port), timeout=30) as sock:
            bad = [
                ("POST", "/v1/predict", b"{"),
                ("POST", "/v1/predict", b'{"adapter": 1e400, "inputs": ["a"]}'),
                ("POST", "/v1/predict", b'{"adapter": "nope", "inputs": ["a"]}'),
                ("POST", "/v1/adapters", b'{"name": "broken"}'),
                ("DELETE", "/v1/adapters/nope", b""),
            ]
            for method, path, body in bad:
                status, header = _http(sock, method, path, body)
                assert 400 <= status < 500 and b"connection: close" not in header.lower()
            good = b'{"adapter": "topic", "inputs": ["the ball"]}'
            assert _http(sock, "POST", "/v1/predict", good)[0] == 200


def test_stale_bundle_copies_are_cleaned(tmp_path: Path) -> None:
    """Interrupted saves left `.bundle.tmp-*` folders, each up to a model's size, forever."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    stale = tmp_path / f".adapter.tmp-{pid}-abc"
    stale.mkdir()
    live = tmp_path / f".adapter.tmp-{os.getpid()}-xyz"  # a save in progress here
    live.mkdir()
    with staged_dir(tmp_path / "adapter") as tmp:
        (tmp / "f").write_text("x")
    assert not stale.exists() and live.exists()
    assert (tmp_path / "adapter" / "f").read_text() == "x"
    stale_file = tmp_path / f".metrics.json.tmp-{pid}-abc"  # a file's staged copy too
    stale_file.write_text("{")
    atomic_write_bytes(tmp_path / "metrics.json", b"{}")
    assert not stale_file.exists()


@pytest.mark.real
def test_real_encoder_is_refused_for_generation(capsys: pytest.CaptureFixture[str]) -> None:
    """MiniLM was loaded as a causal LM with a fresh head and printed random words."""
    from adapterkit.cli import main

    assert main(["generate", "--model", "minilm", "hello there"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("adapterkit: error:") and "no language-model head" in err
    assert len(err.splitlines()) == 1
