"""Every bad command line of the corpus ends in exit code 2 and one line, never a
traceback or a hang, and leaves nothing that looks like a finished run."""

from __future__ import annotations

import contextlib
import io
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fuzz.cli_corpus import CASES, Case
from tests.fuzz.lifecycle_corpus import LIFECYCLE_CASES
from tests.fuzz.methods_corpus import METHOD_CASES

from adapterkit.cli import main

CASE_SECONDS = 60  # a case still running after this is a hang


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``adapterkit ARGV`` run in this process."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code if isinstance(exc.code, int) else 1
    return code, err.getvalue()


def no_serving(*args: object, **kwargs: object) -> None:
    raise AssertionError("the server started on bad settings")


ALL_CASES = [*CASES, *LIFECYCLE_CASES, *METHOD_CASES]


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_bad_command_line(case: Case, env, tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setattr("uvicorn.run", no_serving)
    argv = case.build(env, tmp_path)
    with deadline(CASE_SECONDS):
        code, err = run_cli(argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert code == 2, f"exit {code}: {err[-2000:]}"
    assert lines and lines[-1].startswith("adapterkit"), err
    assert sum("error" in line for line in lines) == 1, err
    finished = [p for p in tmp_path.rglob("adapterkit.json") if "bundle" not in p.parts]
    assert not finished, f"a failed run left {finished}"
