"""How busy the machine was while a section ran, and how much of that was someone else.

The load average counts the benchmark's own threads (2 busy threads alone make it ~2), so it
cannot say whether others competed. ``LoadMonitor`` therefore also measures *foreign CPU*: all
busy CPU time from ``/proc/stat`` minus the CPU time of this process and its children, in cores.
"""
from __future__ import annotations

import os
import statistics
import threading
import time


def _busy_seconds() -> float:
    """Busy CPU time of the whole machine since boot (user+nice+system+irq+softirq+steal), s."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU time of this process, its finished children and its live descendants, s."""
    import psutil

    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in psutil.Process().children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system
        except psutil.Error:
            pass
    return total


class LoadMonitor:
    """Samples the 1-minute load average and the foreign CPU (cores) in a background thread."""

    def __init__(self, every: float = 2.0):
        self.every = every
        self.load: list[float] = []
        self.foreign: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        last = (time.monotonic(), _busy_seconds(), _own_seconds())
        while not self._stop.wait(self.every):
            now = (time.monotonic(), _busy_seconds(), _own_seconds())
            wall = now[0] - last[0]
            # a child that ended between samples moves its time into children_* at once: clamp at 0
            self.foreign.append(max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / wall))
            self.load.append(os.getloadavg()[0])
            last = now

    def __enter__(self) -> "LoadMonitor":
        self.start = os.getloadavg()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.end = os.getloadavg()

    def summary(self) -> dict[str, float]:
        load = self.load or [self.start[0]]
        foreign = self.foreign or [0.0]
        return {"start_1m": round(self.start[0], 2), "end_1m": round(self.end[0], 2),
                "mean_1m": round(statistics.fmean(load), 2), "max_1m": round(max(load), 2),
                "foreign_cores_mean": round(statistics.fmean(foreign), 2),
                "foreign_cores_p90": round(sorted(foreign)[int(0.9 * (len(foreign) - 1))], 2),
                "foreign_busy_share": round(sum(f > 0.25 for f in foreign) / len(foreign), 2)}
