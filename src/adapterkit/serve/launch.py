"""Start ``adapterkit serve`` in a subprocess on a free loopback port (tests, benchmarks).

The server runs exactly as a user would start it (``python -m adapterkit serve``);
this only finds a port, waits until ``/health`` answers, and stops the process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(
    args: list[str],
    log_path: Path,
    threads: int | None = 1,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run ``adapterkit serve ARGS --host 127.0.0.1 --port P``; yields its base URL.

    Args:
        args: Flags after ``serve`` (``--model``, ``--adapters`` ...), without host/port.
        log_path: Where the server's stdout and stderr go (read it to check its log).
        threads: ``$ADAPTERKIT_THREADS`` for the server (None: torch's default).
        timeout: Seconds to wait for ``/health`` before giving up.
        env: Extra environment variables.
    """
    import httpx

    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    if threads is not None:
        environ["ADAPTERKIT_THREADS"] = str(threads)
    command = [sys.executable, "-m", "adapterkit", "serve", *args]
    command += ["--host", LOOPBACK, "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environ)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"server not up after {timeout:.0f} s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
