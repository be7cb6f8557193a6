"""What machine a run had, and whether anything else was using it meanwhile.

Timings taken while other heavy processes run are worthless, so the orchestrator
samples every process outside its own tree from ``/proc`` while it works and
marks the run "not quiet" when any of them used more than 20 % of a core.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import torch

BUSY_PERCENT = 20.0
_TICKS = os.sysconf("SC_CLK_TCK")


def machine_info(threads: int) -> dict[str, Any]:
    """CPU model and flags that matter, cores, torch build and threads, GPU if any."""
    cpu = platform.processor()
    flags: list[str] = []
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                flags = sorted(present & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_flags": flags,
        "torch": torch.__version__,
        "threads": threads,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_ticks() -> dict[int, tuple[int, int, str]]:
    """pid -> (utime + stime ticks, parent pid, command name) for every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[11]) + int(fields[12]), int(fields[1]), name)
    return found


def _our_tree(ticks: dict[int, tuple[int, int, str]]) -> set[int]:
    ours = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, (_, parent, _) in ticks.items():
            if parent in ours and pid not in ours:
                ours.add(pid)
                changed = True
    return ours


def busy_others(window: float = 1.0) -> list[dict[str, Any]]:
    """Processes outside this process tree that used > BUSY_PERCENT of a core over ``window`` s."""
    before = _cpu_ticks()
    time.sleep(window)
    after = _cpu_ticks()
    ours = _our_tree(after)
    busy = []
    for pid, (ticks, _, name) in after.items():
        if pid in ours or pid not in before:
            continue
        percent = 100.0 * (ticks - before[pid][0]) / _TICKS / window
        if percent > BUSY_PERCENT:
            busy.append({"pid": pid, "name": name, "cpu_percent": round(percent, 1)})
    return busy


class QuietMonitor:
    """Samples other processes' CPU use in a background thread while a run goes on."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.busy: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            for row in busy_others(window=1.0):
                self.busy.append({**row, "at": time.strftime("%H:%M:%S")})

    def __enter__(self) -> QuietMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def quiet(self) -> bool:
        """True when no other process was seen busy."""
        return not self.busy
