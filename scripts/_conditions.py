"""Machine conditions for the benchmarks: as found ("idle") and under load (busy-loop processes).

Timings on a shared machine depend on whether a core is idle when a thread or process wakes up, so the
benchmarks print their ratios under both conditions in one run. ``under_load`` starts one busy-loop process
per core (at the benchmark's own priority) and stops them afterwards.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


@contextlib.contextmanager
def under_load(n: int | None = None):
    """One busy-loop process per core while the block runs."""
    n = n or os.cpu_count() or 1
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    time.sleep(0.5)  # let them take their share of the cores
    try:
        yield n
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def conditions(names: list[str]):
    """Yield ``(name, description)`` with the machine in that condition during the loop body."""
    for name in names:
        if name == "idle":
            yield name, f"as found (no load added; load average {loadavg()}, {os.cpu_count()} cores)"
        elif name == "load":
            with under_load() as n:
                yield name, f"under load ({n} busy-loop processes on {os.cpu_count()} cores; load average {loadavg()})"
        else:
            raise SystemExit(f"unknown condition {name!r}; use idle and/or load")
